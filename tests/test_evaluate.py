"""Table evaluation (fixed config vs tables, lookup vs oracle, search replay) and the FlashMLA comparison,
on a synthetic store whose best configs are known by construction."""
import math
import sys

import pytest

from mlatune import anchors, evaluate
from mlatune import table as tbl
from mlatune.kernels import Config, source_hash
from mlatune.spec import wkey
from mlatune.store import Store, results
from mlatune.workload import Workload

FAST, SLOW = Config(64, 16, 4, 4, 2), Config(32, 16, 2, 4, 2)


def _time(cfg, w):
    # FAST wins at long seqlens, SLOW at short ones: no single fixed config is best everywhere
    if cfg == FAST:
        return 100.0 if w.seqlen >= 4096 else 60.0
    return 80.0 if w.seqlen >= 4096 else 50.0


def _db(tmp_path, grid, offgrid):
    db = tmp_path / "e.db"
    st = Store(db)
    for sweep, ws in (("grid", grid), ("off", offgrid)):
        run = st.start_run(sweep=sweep, device="NVIDIA H200", torch="t", triton="tr", kernel_hash=source_hash(),
                           interpreted=0)
        for w in ws:
            for c in (FAST, SLOW):
                t = _time(c, w)
                st.record(run, "NVIDIA H200", source_hash(), w, wkey(w), c, "ok", time_us=t, p20_us=t * 0.99,
                          p80_us=t * 1.01, reps=20, fidelity=1, gbps=1.0, tflops=1.0, err_rel=1e-3, interpreted=0)
        st.finish_run(run, "done")
    return db


GRID = [Workload(b, l, 16, 1, dist="fixed") for b in (1, 128) for l in (1024, 16384)]


def test_fixed_vs_tables_and_oracle(tmp_path):
    off = [Workload(8, 2000, 16, 1, dist="fixed")]
    db = _db(tmp_path, GRID, off)
    out = tmp_path / "configs"
    tbl.write_tables(tbl.build_tables(results(db), sweep="grid"), out)
    f = evaluate.fixed_vs_tables(db, out, ["grid"])
    # SLOW is faster at every grid shape: it is the best fixed config and every table entry
    assert len(f) == 4 and set(f.fixed_cfg) == {"32_16_2_4_2_0_0_0"}
    assert f.speedup.tolist() == pytest.approx([1.0] * 4)
    o = evaluate.runtime_vs_oracle(db, out, ["off"])
    assert len(o) == 1 and o.of_oracle.iloc[0] == pytest.approx(1.0)


def test_tables_beat_a_fixed_config_when_winners_differ(tmp_path, monkeypatch):
    # make FAST win at long seqlens only: tables switch configs, the best fixed one cannot
    monkeypatch.setattr(sys.modules[__name__], "_time", lambda c, w: (70.0 if c == FAST else 80.0) if w.seqlen >= 4096
                        else (60.0 if c == FAST else 50.0))
    db = _db(tmp_path, GRID, [Workload(8, 12000, 16, 1, dist="fixed"), Workload(8, 1500, 16, 1, dist="fixed")])
    out = tmp_path / "configs"
    tbl.write_tables(tbl.build_tables(results(db), sweep="grid"), out)
    f = evaluate.fixed_vs_tables(db, out, ["grid"])
    # per shape the table is never slower than the fixed config, and strictly faster somewhere
    assert (f.speedup >= 1 - 1e-9).all() and f.speedup.max() == pytest.approx(80 / 70)
    o = evaluate.runtime_vs_oracle(db, out, ["off"])
    assert o.of_oracle.tolist() == pytest.approx([1.0, 1.0])  # nearest buckets pick each off-grid shape's winner


def test_replay_search_exhaustive_is_exact(tmp_path):
    db = _db(tmp_path, GRID, [])
    r = evaluate.replay_search(db, "grid", "exhaustive")
    assert (r.ratio == 1.0).all() and (r.calls == r.space).all()
    r = evaluate.replay_search(db, "grid", "random", budget=1)
    assert (r.calls == 1).all() and (r.ratio >= 1.0).all()


def test_versus_flashmla(tmp_path):
    w = Workload(128, 4096, 16, 1, dist="fixed")
    db = _db(tmp_path, [w], [])
    anc = tmp_path / "anc.csv"
    anc.write_text("device,batch,s_q,h_q,seqlen_k,varlen,flashmla_us,flashmla_tflops,flashmla_gbps,sglang_triton_default_us\n"
                   "NVIDIA H200,128,1,16,4096,0,40.0,1,1,160.0\nNVIDIA H200,128,1,16,1024,0,10.0,1,1,\n")
    m = anchors.versus_flashmla(db, sweep="grid", anchors=anc)
    assert len(m) == 1  # only measured shapes are compared
    row = m.iloc[0]
    assert row.time_us == 80.0 and row.ratio == pytest.approx(0.5) and row.vs_sglang == pytest.approx(2.0)
    assert math.isclose(row.block_n, 32)


def test_compare_measure_and_grid_on_cpu():
    from mlatune import compare

    cfgs = compare.grid_configs(16, grid=dict(block_n=[16, 32], block_h=[16, 64], num_splits=[1, 2], num_warps=[4],
                                              num_stages=[1]))
    assert cfgs and all(c.block_h == 16 for c in cfgs)  # no more rows than h_q*s_q needs
    w = Workload(2, 40, 16, 1, page_size=16)
    rows = compare.measure(w, cfgs[:2], device="cpu")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(0 < r["err_rel"] < 2e-2 and r["time_us"] > 0 and r["gbps"] > 0 for r in rows)
    assert rows[0]["total_tokens"] == 80


def test_parallel_compile_items_cover_each_variant_once():
    from mlatune.compile import sweep_items
    from mlatune.spec import load_spec
    from mlatune.sweep import make_plan

    spec = load_spec("sweeps/flashmla-bench.toml")
    items = sweep_items(make_plan(spec, None, sm90=True))
    # 8 (h_q, s_q) families x 10 Triton configs, plus 2 x 5 Gluon configs (gluon 1 and 3, five split counts)
    # for the 7 families with >= 32 rows and 5 (gluon 3) for h_q 16 s_q 1, plus one gluon 5 and one gluon 7 for each
    # family; fixed and normal, and the three seqlens, compile the same binaries
    assert len(items) == 80 + 70 + 5 + 8 + 8
    assert all(w["seqlen"] <= 4096 and w["dist"] == "fixed" for w, _ in items)
    assert len({(w["h_q"], w["s_q"], tuple(sorted(c.items()))) for w, c in items}) == 171
    assert len(sweep_items(make_plan(spec, None, sm90=False))) == 80  # not Hopper: no Gluon variants


def test_fp8_vs_bf16_and_families_by_format(tmp_path):
    """fp8 workloads are compared with bf16 on the same shape, and the fixed-config search keeps each
    kv format's table family apart."""
    ws = [Workload(128, 4096, 16, 1, kv_format=f, dist="fixed") for f in ("bf16", "fp8", "fp8_flashmla")]
    db = tmp_path / "f.db"
    st = Store(db)
    run = st.start_run(sweep="grid", device="NVIDIA H200", torch="t", triton="tr", kernel_hash=source_hash(), interpreted=0)
    times = {("bf16", 0): 100.0, ("fp8", 0): 80.0, ("fp8", 1): 60.0, ("fp8_flashmla", 0): 120.0}
    for w in ws:
        for qk in ((0, 1) if w.kv_format == "fp8" else (0,)):
            c = Config(64, 16, 4, 4, 2, qk_fp8=qk)
            t = times[(w.kv_format, qk)]
            st.record(run, "NVIDIA H200", source_hash(), w, wkey(w), c, "ok", time_us=t, p20_us=t, p80_us=t, reps=20,
                      fidelity=1, gbps=1.0, tflops=1000.0 / t, err_rel=1e-3, interpreted=0)
    st.finish_run(run, "done")
    v = evaluate.fp8_vs_bf16(db)
    assert len(v) == 1
    r = v.iloc[0]
    assert (r.bf16, r.fp8, r.fp8_qk0, r.fp8_qk1, r.fp8_flashmla) == (100.0, 60.0, 80.0, 60.0, 120.0)
    assert r.fp8_over_bf16 == pytest.approx(0.6) and r.fp8_flashmla_over_bf16 == pytest.approx(1.2)
    out = tmp_path / "configs"
    tbl.write_tables(tbl.build_tables(results(db), sweep="grid"), out)
    f = evaluate.fixed_vs_tables(db, out, ["grid"])
    assert sorted(f.kv_format) == ["bf16", "fp8", "fp8_flashmla"]
    assert f.set_index("kv_format").fixed_us.to_dict() == {"bf16": 100.0, "fp8": 60.0, "fp8_flashmla": 120.0}


def test_rows_of_other_kernels_are_left_out(tmp_path):
    # a faster measurement stored under an older kernel hash must not become the oracle or a FlashMLA best
    from mlatune import anchors

    db = _db(tmp_path, GRID, [Workload(8, 2000, 16, 1, dist="fixed")])
    st = Store(db)
    run = st.start_run(sweep="off", device="NVIDIA H200", torch="t", triton="tr", kernel_hash="0ld0ld0ld0ld", interpreted=0)
    w = Workload(8, 2000, 16, 1, dist="fixed")
    st.record(run, "NVIDIA H200", "0ld0ld0ld0ld", w, wkey(w), FAST, "ok", time_us=1.0, p20_us=1.0, p80_us=1.0, reps=20,
              fidelity=1, gbps=1.0, tflops=1.0, err_rel=1e-3, interpreted=0)
    fm = Workload(128, 1024, 16, 1, dist="fixed", causal=True)
    run = st.start_run(sweep="flashmla-bench", device="NVIDIA H200", torch="t", triton="tr", kernel_hash="0ld0ld0ld0ld",
                       interpreted=0)
    st.record(run, "NVIDIA H200", "0ld0ld0ld0ld", fm, wkey(fm), FAST, "ok", time_us=1.0, p20_us=1.0, p80_us=1.0, reps=20,
              fidelity=1, gbps=1.0, tflops=1.0, err_rel=1e-3, interpreted=0)
    out = tmp_path / "configs"
    tbl.write_tables(tbl.build_tables(results(db), sweep="grid"), out)
    o = evaluate.runtime_vs_oracle(db, out, ["off"])
    assert o.of_oracle.iloc[0] == pytest.approx(1.0)  # the oracle is 50 us (current kernels), not 1 us
    assert len(anchors.versus_flashmla(db)) == 0  # the only flashmla-bench row is another kernel's
