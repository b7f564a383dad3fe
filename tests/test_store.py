"""Results store: schema, upsert per pair, resume lookups, results() columns and filters, WAL durability."""
import sqlite3

import pytest

from mlatune.kernels import Config
from mlatune.spec import wkey
from mlatune.store import COLUMNS, Store, results
from mlatune.workload import Workload

W1 = Workload(2, 64, 16, 1, page_size=16)
W2 = Workload(4, 128, 32, 2, page_size=16, dist="normal", causal=False)
C1, C2 = Config(16, 16, 0, 4, 1), Config(32, 16, 2, 4, 2)


def fill(path):
    st = Store(path)
    run = st.start_run(sweep="s", device="dev", torch="t", triton="tr", kernel_hash="h", interpreted=1,
                       clocks=[{"sm": 1980}])
    st.record(run, "dev", "h", W1, wkey(W1), C1, "ok", time_us=10.0, p20_us=9.0, p80_us=11.0, reps=20, fidelity=1,
              gbps=100.0, tflops=1.0, err_rel=1e-3, err_lse=1e-6, interpreted=1)
    st.record(run, "dev", "h", W1, wkey(W1), C2, "incorrect", reason="out relative L2 error 0.05", err_rel=0.05)
    st.record(run, "dev", "h", W2, wkey(W2), C1, "crashed", reason="worker killed by signal SIGABRT")
    st.record(run, "dev", "h", W2, wkey(W2), C2, "invalid", reason="shared memory")
    st.finish_run(run, "done", clocks=[{"sm": 1900}])
    return st, run


def test_roundtrip_and_columns(tmp_path):
    db = tmp_path / "r.db"
    st, run = fill(db)
    df = results(db)
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert len(df) == 4
    assert sorted(df.status) == ["crashed", "incorrect", "invalid", "ok"]
    ok = df[df.status == "ok"].iloc[0]
    assert (ok.batch, ok.seqlen, ok.h_q, ok.block_n, ok.time_us, ok.sweep, ok.torch) == (2, 64, 16, 16, 10.0, "s", "t")
    assert ok.interpreted == True and ok.causal == True  # noqa: E712
    assert not df[df.h_q == 32].causal.any()
    assert st.lookup("dev", "h", wkey(W2), C1.key())["status"] == "crashed"
    assert st.lookup("dev", "other", wkey(W2), C1.key()) is None
    assert st.best("dev", "h") == {wkey(W1): [(10.0, C1.key())]}
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_filters(tmp_path):
    db = tmp_path / "r.db"
    fill(db)
    assert len(results(db, status="ok")) == 1
    assert len(results(db, h_q=[16, 32], status=["ok", "crashed"])) == 2
    assert len(results(db, causal=False)) == 2
    assert len(results(db, device="nope")) == 0
    with pytest.raises(ValueError, match="unknown filter"):
        results(db, colour="red")
    with pytest.raises(FileNotFoundError):
        results(tmp_path / "none.db")


def test_unique_pair_upserts(tmp_path):
    db = tmp_path / "r.db"
    st, run = fill(db)
    st.record(run, "dev", "h", W1, wkey(W1), C1, "ok", time_us=8.0, fidelity=1)
    df = results(db)
    assert len(df) == 4 and df[df.status == "ok"].time_us.tolist() == [8.0]
    st.record(run, "dev2", "h", W1, wkey(W1), C1, "ok", time_us=5.0)  # other device: its own row
    assert len(results(db)) == 5
    assert st.forget("dev", "h", [wkey(W1)]) == 2
    assert len(results(db)) == 3


def test_each_record_is_committed(tmp_path):
    db = tmp_path / "r.db"
    st, run = fill(db)  # no close: another connection must already see everything
    assert sqlite3.connect(db).execute("SELECT count(*) FROM measurements").fetchone()[0] == 4
    with pytest.raises(ValueError):
        st.record(run, "dev", "h", W1, wkey(W1), C1, "weird")
