"""Sweeps end to end through the interpreter: quick spec, resume after SIGKILL, crash and hang isolation."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlatune.kernels import Config
from mlatune.spec import load_spec, parse_spec
from mlatune.store import results
from mlatune.sweep import Options, SweepFailed, run_sweep
from mlatune.worker import Worker, WorkerDied

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

TINY = """
name = "tiny"
[workloads]
batch = [1]
seqlen = [40]
h_q = [16]
page_size = [16]
[space]
block_n = [16, 32]
block_h = [16, 32]
num_splits = [0, 1, 2]
num_warps = [4]
num_stages = [1]
constraints = ["not (block_n == 32 and num_splits > 0)", "block_h == 16 or (block_n == 16 and num_splits == 0)"]
[timing]
min_reps = 1
timeout_s = {timeout}
"""


def K(n, s):
    return Config(block_n=n, block_h=16, num_splits=s, num_warps=4, num_stages=1).key()


@pytest.fixture
def env_with_runners(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MLATUNE_CACHE_DIR", "/nonexistent-mlatune-cache")


def test_quick_sweep_end_to_end_and_resume(tmp_path):
    spec = load_spec(ROOT / "sweeps" / "quick.toml")
    db = tmp_path / "q.db"
    s = run_sweep(spec, Options(db=str(db)))
    df = results(db)
    assert len(df) == 6 and set(df.status) == {"ok"}
    assert df.interpreted.all() and (df.err_rel < 2e-2).all() and (df.time_us > 0).all()
    assert s.interpreted and s.measured == 6 and len(s.best) == 2
    assert sqlite3.connect(db).execute("SELECT outcome, interpreted FROM runs").fetchall() == [("done", 1)]
    s2 = run_sweep(spec, Options(db=str(db)))  # same command again: nothing to do
    assert s2.measured == 0 and s2.skipped == 6 and len(s2.best) == 2
    assert len(results(db)) == 6 and set(results(db).run_id) == {1}


def test_limit_then_resume_then_fresh(tmp_path):
    spec = parse_spec(TINY.format(timeout=60), "tiny.toml")
    db = str(tmp_path / "t.db")
    s = run_sweep(spec, Options(db=db, limit=2))
    assert s.stopped and s.measured == 2
    s = run_sweep(spec, Options(db=db))
    assert s.measured == 3 and s.skipped == 2 and not s.stopped
    df = results(db)
    assert len(df) == 5 and sorted(df.run_id) == [1, 1, 2, 2, 2]
    s = run_sweep(spec, Options(db=db, fresh=True, limit=1))
    assert s.measured == 1 and len(results(db)) == 1


def test_resume_after_sigkill(tmp_path, env_with_runners):
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(TINY.format(timeout=60).replace("num_splits = [0, 1, 2]", "num_splits = [0, 1, 2, 4, 8]"))
    db = tmp_path / "k.db"
    cmd = [sys.executable, "-m", "mlatune.cli", "sweep", str(spec_path), "--db", str(db), "--quiet"]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n, t_end = 0, time.time() + 120
    while time.time() < t_end and p.poll() is None:
        if db.exists():
            try:
                n = sqlite3.connect(db).execute("SELECT count(*) FROM measurements").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= 2:
                break
        time.sleep(0.1)
    assert p.poll() is None, "the sweep finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = results(db)
    assert 2 <= len(before) < 7 and set(before.status) == {"ok"}
    # the orphaned worker sees its stdin close and exits by itself
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    after = results(db)
    assert len(after) == 7 and set(after.status) == {"ok"}
    kept = after[after.config_key.isin(before.config_key)]
    assert (kept.run_id == 1).all() and list(kept.created_at) == list(before.created_at)  # nothing redone
    assert (after[~after.config_key.isin(before.config_key)].run_id == 2).all()
    assert f"new measurements: {7 - len(before)} " in r.stdout
    runs = sqlite3.connect(db).execute("SELECT id, outcome FROM runs ORDER BY id").fetchall()
    assert runs == [(1, None), (2, "done")]


def test_crash_and_hang_are_isolated(tmp_path, env_with_runners):
    # planted runner: block_n 32 aborts the worker, num_splits 2 sleeps forever
    spec = parse_spec(TINY.format(timeout=8), "tiny.toml")
    db = str(tmp_path / "c.db")
    s = run_sweep(spec, Options(db=db, runner="runners.planted_runner"))
    df = results(db).set_index("config_key")
    assert df.loc[K(32, 0), "status"] == "crashed"
    assert "SIGABRT" in df.loc[K(32, 0), "reason"]
    assert df.loc[K(16, 2), "status"] == "timeout"
    assert "8 s" in df.loc[K(16, 2), "reason"]
    assert (df.loc[[K(16, 0), K(16, 1)], "status"] == "ok").all()
    assert s.counts == {"ok": 2, "crashed": 1, "timeout": 1, "incorrect": 1}
    kh32 = Config(block_n=16, block_h=32, num_splits=0, num_warps=4, num_stages=1).key()
    assert df.loc[kh32, "status"] == "incorrect" and "relative L2 error" in df.loc[kh32, "reason"]
    assert 0.02 < df.loc[kh32, "err_rel"] < 0.05
    assert df.kernel_hash.iloc[0].count("+") == 1  # planted runner results never mix with the real kernel's


@pytest.mark.parametrize("mode,expect", [("segfault", "SIGSEGV"), ("exit", "code 7")])
def test_worker_dies_and_restarts(env_with_runners, monkeypatch, mode, expect):
    monkeypatch.setenv("MLATUNE_TEST_CRASH", mode)
    w = Worker("cpu", runner="runners.planted_runner", interpret=True)
    try:
        wl = {"batch": 1, "seqlen": 20, "h_q": 16, "s_q": 1, "kv_format": "bf16", "page_size": 16, "dist": "fixed", "causal": True}
        timing = {"warmup": 0, "min_reps": 1, "max_reps": 1, "target_noise": 0.1, "time_cap_s": 1, "graph": False, "short_reps": 1}
        cfg = {"block_n": 32, "block_h": 16, "num_splits": 1, "num_warps": 4, "num_stages": 1}
        assert w.call({"op": "prepare", "workload": wl, "seed": 0}, 60)["ok"]
        with pytest.raises(WorkerDied, match=expect):
            w.call({"op": "measure", "config": cfg, "timing": timing}, 60)
        assert w.call({"op": "prepare", "workload": wl, "seed": 0}, 60)["ok"]  # a fresh worker
        r = w.call({"op": "measure", "config": {**cfg, "block_n": 16}, "timing": timing}, 60)
        assert r["status"] == "ok" and w.starts == 2
    finally:
        w.close()


def test_bad_runner_fails_the_sweep(tmp_path, env_with_runners):
    spec = parse_spec(TINY.format(timeout=8), "tiny.toml")
    with pytest.raises(SweepFailed, match="not found"):
        run_sweep(spec, Options(db=str(tmp_path / "x.db"), runner="runners.no_such_runner"))


def test_cli_exit_codes(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mlatune.cli import main

    cli = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text("[workloads]\nbatch = []\nseqlen = [1]\n")
    r = cli.invoke(main, ["sweep", str(bad)])
    assert r.exit_code == 2 and "bad.toml: [workloads.batch] empty grid" in r.output
    monkeypatch.chdir(ROOT)
    r = cli.invoke(main, ["sweep", "sweeps/quick.toml", "--dry-run", "--db", str(tmp_path / "d.db")])
    assert r.exit_code == 0 and "6 measurements planned" in r.output
    assert cli.invoke(main, ["sweep", "--devices", "x"]).exit_code == 2
    assert cli.invoke(main, ["sweep", "sweeps/quick.toml", "--devices", "0"]).exit_code == 2  # no GPU here
    r = cli.invoke(main, ["check", "--seqlen", "50"])
    assert r.exit_code == 0 and "PASS" in r.output, r.output
    r = cli.invoke(main, ["results", "--db", str(tmp_path / "none.db")])
    assert r.exit_code == 1
    r = cli.invoke(main, ["--help"])
    assert r.exit_code == 0 and "Exit codes" in r.output and "sweep" in r.output


def test_timing_seqlens_are_the_workloads_not_the_runs(env_with_runners):
    """Every prepare of a workload times the same seqlens whatever the seed (runs, restarts and sweeps
    compare), while its values are fresh; another workload draws other lengths."""
    from mlatune.workload import Workload, timing_seqlens

    w = Workload(16, 500, 16, 1, page_size=16, dist="lognormal")
    assert timing_seqlens(w).tolist() == timing_seqlens(w).tolist()
    assert timing_seqlens(w).tolist() != timing_seqlens(Workload(16, 500, 16, 2, page_size=16, dist="lognormal")).tolist()
    worker = Worker("cpu", runner="runners.planted_runner", interpret=True)
    try:
        totals = {worker.call({"op": "prepare", "workload": w.to_dict(), "seed": s}, 60)["total_tokens"] for s in (0, 12345)}
        assert totals == {int(timing_seqlens(w).sum())}
    finally:
        worker.close()
