"""Runtime: table resolution and fallbacks, plan/run against the direct kernel call, FlashMLA-style API, shipped tables."""
import json
import logging
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mlatune import runtime as rt
from mlatune import table as tbl
from mlatune.kernels import Config, default_config, mla_decode, source_hash
from mlatune.workload import Workload, make_inputs

SHIPPED = sorted((Path(__file__).parents[1] / "results" / "configs").glob("*/*.json"))
TINY = dict(kv_format="bf16", page_size=16, h_q=16, s_q=1)
CFG_A = Config(block_n=16, block_h=16, num_splits=2, num_warps=4, num_stages=1)
CFG_B = Config(block_n=32, block_h=16, num_splits=3, num_warps=4, num_stages=1)
# These run kernels on CPU tensors, through the interpreter that conftest switches on only where there is no GPU.
cpu_kernels = pytest.mark.skipif(torch.cuda.is_available(), reason="runs kernels on CPU tensors (interpreter only)")


def write_table(root, cfg, device="cpu", kernel_hash=None, **shape):
    shape = {**TINY, **shape}
    data = {"schema_version": tbl.SCHEMA_VERSION, "kernel": "mla_decode", "kernel_hash": kernel_hash or source_hash(),
            "device": device, "device_name": device, "torch": torch.__version__, "triton": "x", "sweep": "unit",
            "sweep_date": "2025-01-02", "interpreted": True, **shape,
            "entries": [{"batch": b, "seqlen": l, "config": cfg.to_dict(), "time_us": 1.0} for b in (1, 8) for l in (64, 1024)]}
    path = tbl.table_path(root, device, **shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """An empty 'shipped' folder and an unset $MLATUNE_CONFIG_DIR, with the runtime's caches cleared."""
    shipped, env = tmp_path / "shipped", tmp_path / "env"
    shipped.mkdir()
    monkeypatch.setattr(rt, "shipped_dir", lambda: shipped)
    monkeypatch.delenv(rt.ENV_DIR, raising=False)
    rt.clear_cache()
    yield shipped, env
    rt.clear_cache()


def choose(batch=2, max_seqlen=100, **shape):
    s = {**TINY, **shape}
    return rt.choose_config(batch, s["s_q"], s["h_q"], max_seqlen, s["kv_format"], s["page_size"], "cpu")


def test_env_dir_overrides_shipped(dirs, monkeypatch):
    shipped, env = dirs
    write_table(shipped, CFG_A)
    assert choose() == (CFG_A, str(tbl.table_path(shipped, "cpu", **TINY)))
    write_table(env, CFG_B)
    monkeypatch.setenv(rt.ENV_DIR, str(env))
    rt.clear_cache()
    assert choose() == (CFG_B, str(tbl.table_path(env, "cpu", **TINY)))
    # a family the env folder lacks still comes from the shipped tables
    write_table(shipped, CFG_A, h_q=32)
    assert choose(h_q=32)[0] == CFG_A


def fallbacks(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "no usable tuned table" in r.getMessage()]


def test_fallback_warns_once_per_family(dirs, caplog):
    caplog.set_level(logging.WARNING, logger="mlatune.runtime")
    for batch in (1, 2, 64):
        for seqlen in (10, 5000):
            assert choose(batch, seqlen) == (default_config(16, 1), rt.DEFAULT)
            p = rt.plan(batch, 1, 16, seqlen, page_size=16, device="cpu")
            assert p.source == rt.DEFAULT and p.config == default_config(16, 1)
    assert len(fallbacks(caplog)) == 1
    choose(h_q=32)  # another shape family: its own warning
    assert len(fallbacks(caplog)) == 2
    assert "cpu" in fallbacks(caplog)[0].getMessage()


@pytest.mark.parametrize("bad", ["{oops", "stale_hash", "schema"])
def test_bad_table_warns_naming_file_and_falls_back(dirs, monkeypatch, caplog, bad):
    shipped, env = dirs
    write_table(shipped, CFG_A)
    path = write_table(env, CFG_B, kernel_hash="0123abcd0123" if bad == "stale_hash" else None)
    if bad == "{oops":
        path.write_text(bad)
    elif bad == "schema":
        path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 0}))
    monkeypatch.setenv(rt.ENV_DIR, str(env))
    caplog.set_level(logging.WARNING, logger="mlatune.runtime")
    for _ in range(3):
        assert choose() == (CFG_A, str(tbl.table_path(shipped, "cpu", **TINY)))  # next in line: the shipped table
    msgs = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(msgs) == 1, msgs
    # with no good table anywhere: the default, never an exception
    tbl.table_path(shipped, "cpu", **TINY).write_text("[]")
    rt.clear_cache()
    assert choose() == (default_config(16, 1), rt.DEFAULT)


def test_lookups_are_cached_no_file_io_on_the_hot_path(dirs, monkeypatch):
    shipped, _ = dirs
    write_table(shipped, CFG_A)
    choose()
    monkeypatch.setattr(tbl, "load", lambda *a, **k: pytest.fail("table file read again"))
    monkeypatch.setattr(Path, "is_file", lambda self: pytest.fail("file system touched"))
    for b in (1, 3, 100):
        assert choose(b, 77 * b)[0] == CFG_A
    assert rt.plan(3, 1, 16, 500, page_size=16, device="cpu").config == CFG_A


def inputs(batch=3, seqlen=70, causal=False):
    w = Workload(batch=batch, seqlen=seqlen, h_q=16, s_q=1, page_size=16, dist="normal", causal=causal)
    return make_inputs(w, seed=1)


@cpu_kernels
@pytest.mark.parametrize("tuned", [True, False], ids=["table", "default"])
def test_plan_run_matches_direct_kernel_call(dirs, tuned):
    shipped, _ = dirs
    if tuned:
        write_table(shipped, CFG_A)
    x = inputs()
    max_len = int(x["cache_seqlens"].max())
    p = rt.plan(3, 1, 16, max_len, page_size=16, device="cpu")
    want_cfg = CFG_A if tuned else default_config(16, 1)
    assert p.config == want_cfg and (p.splits == 2 or not tuned)
    args = (x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"])
    out, lse = rt.run(p, *args, causal=True)
    assert out.data_ptr() == p.out.data_ptr() and lse.data_ptr() == p.lse.data_ptr()  # plan's buffers, no allocation
    ref_out, ref_lse = mla_decode(*args, causal=True, config=want_cfg)
    assert torch.equal(out, ref_out) and torch.equal(lse, ref_lse)
    out2, _ = rt.run(p, *args, causal=True)  # second call: the cheap-check path
    assert torch.equal(out2, ref_out)


@cpu_kernels
def test_plan_with_a_stale_max_seqlen_stays_correct(dirs):
    # a CUDA graph replayed over later steps sees longer seqlens than it was planned for
    shipped, _ = dirs
    write_table(shipped, CFG_A)
    x = inputs()
    args = (x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"])
    p = rt.plan(3, 1, 16, 20, page_size=16, device="cpu")
    out, lse = rt.run(p, *args)
    ref_out, ref_lse = mla_decode(*args, config=CFG_A)
    torch.testing.assert_close(out.float(), ref_out.float(), atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(lse, ref_lse, atol=1e-3, rtol=1e-3)


def test_run_rejects_inputs_that_do_not_fit_the_plan(dirs):
    x = inputs()
    p = rt.plan(3, 1, 16, 100, page_size=16, device="cpu")
    with pytest.raises(ValueError, match="plan"):
        rt.run(p, x["q"][:2], x["kv_cache"], x["block_table"][:2], x["cache_seqlens"][:2])
    with pytest.raises(ValueError, match="plan"):
        rt.run(rt.plan(3, 1, 16, 100, page_size=64, device="cpu"), x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"])
    with pytest.raises(ValueError, match="k_scale"):
        rt.run(p, x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"], k_scale=1.0)
    with pytest.raises(ValueError, match="softmax_scale must be finite and > 0"):
        rt.run(p, x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"], softmax_scale=-0.04)


@cpu_kernels
def test_flash_mla_compatible_api(dirs):
    shipped, _ = dirs
    write_table(shipped, CFG_A)
    x = inputs()
    args = (x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"])
    meta, num_splits = rt.get_mla_metadata(x["cache_seqlens"], 1 * 16 // 1, 1, page_size=16)
    assert num_splits == 2
    out, lse = rt.flash_mla_with_kvcache(*args, 512, meta, num_splits, causal=True)
    ref_out, ref_lse = mla_decode(*args, causal=True, config=CFG_A)
    assert torch.equal(out, ref_out) and torch.equal(lse, ref_lse)
    out_again, _ = rt.flash_mla_with_kvcache(*args, 512, meta, num_splits, causal=True)
    assert out_again.data_ptr() != out.data_ptr() and torch.equal(out, ref_out)  # fresh outputs, as FlashMLA
    assert len(meta.plans) == 1  # the plan made in get_mla_metadata was reused
    with pytest.raises(TypeError, match="get_mla_metadata"):
        rt.flash_mla_with_kvcache(*args, 512, object(), num_splits)
    with pytest.raises(ValueError, match="head_dim_v"):
        rt.flash_mla_with_kvcache(*args, 576, meta, num_splits)
    with pytest.raises(ValueError, match="num_heads_k"):
        rt.get_mla_metadata(x["cache_seqlens"], 16, 2)


def test_plan_orders_pieces_from_the_seqlens(dirs, monkeypatch):
    # the piece order of the seesaw and fp8 register kernels is planned once, from the seqlens; other kernels, and
    # equal lengths, get none
    g3 = Config(block_n=64, block_h=64, num_splits=2, num_warps=8, num_stages=2, gluon=3)
    monkeypatch.setattr(rt, "choose_config", lambda *a, **k: (g3, "test"))
    sl = torch.tensor([700, 5, 300, 0], dtype=torch.int32)
    p = rt.plan(4, 1, 16, sl, page_size=64, device="cpu")  # the seqlens tensor as max_seqlen: max and sum read here
    assert p.order is not None and sorted(p.order.tolist()) == list(range(4 * p.splits))
    assert p.order[0].item() // p.splits == 0  # the longest piece belongs to the 700-token sequence
    assert rt.plan(4, 1, 16, 700, page_size=64, device="cpu").order is None  # no seqlens: batch order
    same = torch.full((4,), 300, dtype=torch.int32)
    assert rt.plan(4, 1, 16, 300, total_tokens=1200, cache_seqlens=same, page_size=64, device="cpu").order is None
    with pytest.raises(ValueError, match="cache_seqlens"):
        rt.plan(4, 1, 16, 700, cache_seqlens=sl[:3], page_size=64, device="cpu")
    meta, _ = rt.get_mla_metadata(sl, 16, 1, page_size=64)
    assert next(iter(meta.plans.values())).order is not None
    g6 = Config(block_n=64, block_h=16, num_splits=2, num_warps=4, num_stages=2, gluon=6)  # the fp8 kernel: the same
    monkeypatch.setattr(rt, "choose_config", lambda *a, **k: (g6, "test"))
    p6 = rt.plan(4, 1, 16, sl, kv_format="fp8", page_size=64, device="cpu")
    assert p6.order is not None and p6.order[0].item() // p6.splits == 0
    monkeypatch.setattr(rt, "choose_config", lambda *a, **k: (Config(), "test"))
    assert rt.plan(4, 1, 16, sl, page_size=64, device="cpu").order is None


def test_plan_of_the_persistent_kernel(dirs, monkeypatch):
    # gluon=5 gets its segment plan (and partials for its split sequences) from the seqlens; without them
    # the same pick runs as gluon=3, whose split count plan() can size from max_seqlen alone
    g5 = Config(block_n=64, block_h=64, num_splits=0, num_warps=8, num_stages=2, gluon=5)
    monkeypatch.setattr(rt, "choose_config", lambda *a, **k: (g5, "test"))
    sl = torch.tensor([5000, 5, 300, 0], dtype=torch.int32)
    p = rt.plan(4, 1, 16, sl, page_size=64, device="cpu")
    assert p.config.gluon == 5 and p.order.combine and p.order.slots >= 2  # 4 pretend SMs: the long one is cut
    assert p.partials is not None and p.partials[0].shape[2] == p.order.slots
    assert p.order.counts.tolist()[1:] == [1, 1, 1]
    q = rt.plan(4, 1, 16, 5000, page_size=64, device="cpu")
    assert q.config.gluon == 3 and q.config.num_splits == 0 and q.order is None


def test_device_key_on_cpu():
    assert rt.device_key("cpu") == rt.CPU_DEVICE


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(p.parents[1])) for p in SHIPPED])
def test_shipped_tables_pass_check_table(path):
    import click

    from mlatune.cli_tables import register

    @click.group()
    def main():
        pass

    register(main)
    r = CliRunner().invoke(main, ["check-table", str(path)])
    assert r.exit_code == 0, r.output
