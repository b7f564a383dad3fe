"""The Triton MLA decode kernel against the fp32 reference: knobs, page sizes, heads, s_q/causal,
variable seqlens, split counts, garbage block tables, fp16, strides; plus CUDA-only 64-bit offset and
CUDA-graph tests.

Every launch writes into NaN-poisoned out/lse/partials (helpers.run_poisoned), and every cache has
NaN in a spare page and in the slots past each sequence's end, which block-table garbage points at.
"""
from __future__ import annotations

import math

import pytest
import torch

import mlatune
from mlatune.kernels import Config, check_config, default_config
from mlatune.kernels.fp8 import dequantize, quantize_flashmla, quantize_per_tensor
from mlatune.kernels.mla_decode import alloc_partials, gluon_runs_on, launch, resolve_splits
from mlatune.workload import Workload, make_inputs

from helpers import DEVICE, compare, make_case, reference, run_poisoned, seed  # noqa: F401 (seed is a fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy deprecation noise from the interpreter

# --- Tolerances -------------------------------------------------------------------------------------
# out: relative L2 error of every (batch, s, head) row of 512 values. The kernel casts P to bf16 before
# the PV product and rounds out to bf16 (8-bit mantissa, unit roundoff 2^-9 ~ 2e-3 per element); we
# measure ~5e-3 per row (max ~7e-3), so 1e-2 leaves headroom while a wrong token, page, scale or
# split weight moves a row by far more (global relative L2 measured ~5e-3).
OUT_TOL_BF16 = 1e-2
# fp16 keeps 11 mantissa bits (unit roundoff 2^-11): measured ~3e-4 worst row, so 5x tighter than bf16.
OUT_TOL_FP16 = 2e-3
# lse: the scores are fp32 sums of exact bf16 products, so only summation order differs from the
# reference (measured < 2e-6); 1e-4 relative to max(1, |lse|).
LSE_TOL = 1e-4

# Interpreter cost: ~20-30 ms per program. The split kernel runs ceil(rows/block_h) * splits * batch
# programs, the combine (splits > 1) one per row (s_q * h_q) and batch: split tests keep rows x batch small.
SPLIT_CFG = dict(block_n=16, block_h=16, num_warps=4, num_stages=2)


def check(case, cfg, causal=False, softmax_scale=None, tag="", **kw):
    out, lse, splits = run_poisoned(case, cfg, causal=causal, softmax_scale=softmax_scale, **kw)
    assert out.dtype == case.q.dtype
    ref_out, ref_lse = reference(case, causal=causal, softmax_scale=softmax_scale)
    tol = OUT_TOL_FP16 if case.q.dtype == torch.float16 else OUT_TOL_BF16
    errs = compare(out, lse, ref_out, ref_lse, tol, LSE_TOL, tag=tag or cfg.key())
    return errs, splits


# --- Knobs at their extremes -----------------------------------------------------------------------
KNOB_CONFIGS = [
    Config(block_n=16, block_h=16, num_splits=1, num_warps=2, num_stages=1),
    Config(block_n=16, block_h=128, num_splits=1, num_warps=16, num_stages=2, trans=1),
    Config(block_n=256, block_h=16, num_splits=1, num_warps=4, num_stages=6),
    Config(block_n=256, block_h=64, num_splits=3, num_warps=16, num_stages=1, trans=1),
    Config(block_n=128, block_h=128, num_splits=2, num_warps=16, num_stages=3),
    Config(block_n=16, block_h=32, num_splits=0, num_warps=8, num_stages=4, trans=1),
    Config(block_n=64, block_h=64, num_splits=5, num_warps=8, num_stages=5),
    Config(block_n=32, block_h=16, num_splits=256, num_warps=4, num_stages=2),  # max splits: see below
]


def test_knob_configs_are_valid_and_cover_extremes():
    for cfg in KNOB_CONFIGS:
        assert check_config(cfg) == [], cfg
    seen = {k: {getattr(c, k) for c in KNOB_CONFIGS} for k in ("block_n", "block_h", "num_splits", "num_warps", "num_stages", "trans")}
    assert {16, 256} <= seen["block_n"] and {16, 128} <= seen["block_h"] and seen["trans"] == {0, 1}
    assert {0, 1, 256} <= seen["num_splits"] and {2, 4, 8, 16} <= seen["num_warps"] and {1, 6} <= seen["num_stages"]


@pytest.mark.parametrize("cfg", KNOB_CONFIGS[:-1], ids=lambda c: c.key())
def test_knob_extremes(cfg, seed):
    # h_q*s_q = 20 rows: a partial row group for every block_h; seqlens hit 0, 1, page +- 1, and a long one.
    case = make_case([37, 0, 17, 150], h_q=10, s_q=2, page=16, seed=seed)
    _, splits = check(case, cfg, causal=True)
    if cfg.num_splits:  # uneven lengths: the grid may grow past num_splits to balance work (up to 256)
        assert cfg.num_splits <= splits <= 256


@pytest.mark.parametrize("trans", [0, 1])
def test_max_splits_more_than_tiles(trans, seed):
    """256 splits (the most check_config allows) over 3 tiles: 253 splits are empty and never written."""
    case = make_case([40], h_q=16, s_q=1, page=16, seed=seed)
    _, splits = check(case, Config(block_n=16, block_h=16, num_splits=256, num_warps=4, trans=trans))
    assert splits == 256


# --- Page sizes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "page,block_n,num_splits",
    [(1, 16, 1), (1, 64, 2), (2, 16, 1), (16, 16, 1), (16, 64, 3), (64, 16, 2), (64, 64, 1), (64, 256, 1),
     (256, 32, 1), (256, 256, 2)],
)
def test_page_sizes(page, block_n, num_splits, seed):
    seqlens = [0, 1, max(page - 1, 1), page + 1, 2 * page + 3] if page < 64 else [1, page - 1, page + 1]
    cfg = Config(block_n=block_n, block_h=16, num_splits=num_splits, num_warps=4, trans=int(page == 64))
    case = make_case(seqlens, h_q=16, s_q=1, page=page, seed=seed)
    check(case, cfg)


# --- Heads and rows ---------------------------------------------------------------------------------
@pytest.mark.parametrize("h_q", [16, 20, 32, 64, 128])
@pytest.mark.parametrize("s_q", [1, 2])
@pytest.mark.parametrize("block_h,trans", [(16, 0), (64, 1)])
def test_heads(h_q, s_q, block_h, trans, seed):
    cfg = Config(block_n=32, block_h=block_h, num_splits=1, num_warps=8, trans=trans)
    case = make_case([45, 3], h_q=h_q, s_q=s_q, page=16, seed=seed)
    check(case, cfg, causal=s_q > 1)


@pytest.mark.parametrize("h_q,s_q,block_h,num_splits", [(16, 2, 64, 2), (20, 1, 16, 2), (24, 3, 32, 1), (1, 1, 16, 1), (7, 2, 16, 3)])
def test_rows_not_multiple_of_block_h(h_q, s_q, block_h, num_splits, seed):
    """Partial row groups; the split path maps rows back to (s, h) with h_q not a power of two."""
    assert (h_q * s_q) % block_h != 0
    case = make_case([33, 0, 70], h_q=h_q, s_q=s_q, page=16, seed=seed)
    check(case, Config(block_n=32, block_h=block_h, num_splits=num_splits, num_warps=8), causal=True)


# --- s_q and causal ---------------------------------------------------------------------------------
@pytest.mark.parametrize("s_q,causal", [(1, False), (1, True), (2, True), (2, False), (3, True), (4, True)])
@pytest.mark.parametrize("num_splits,trans", [(1, 0), (3, 1)])
def test_causal(s_q, causal, num_splits, trans, seed):
    # seqlens below s_q leave the first query rows with no visible key: out 0, lse +inf.
    case = make_case([0, 1, 2, 3, 40], h_q=8, s_q=s_q, page=16, seed=seed)
    check(case, Config(block_n=16, block_h=16, num_splits=num_splits, num_warps=4, trans=trans), causal=causal)


def test_causal_mask_is_applied(seed):
    """Causal and non-causal must differ for s_q 2 (guards against the flag being ignored)."""
    case = make_case([20, 33], h_q=16, s_q=2, page=16, seed=seed)
    cfg = Config(block_n=16, block_h=32, num_splits=1, num_warps=4)
    o_c, l_c, _ = run_poisoned(case, cfg, causal=True)
    o_n, l_n, _ = run_poisoned(case, cfg, causal=False)
    assert torch.equal(o_c[:, -1], o_n[:, -1])  # the last query sees every key either way
    assert (l_c[:, :, 0] < l_n[:, :, 0]).all()  # the first query sees one key fewer


# --- Variable seqlens and split counts -------------------------------------------------------------
@pytest.mark.parametrize("num_splits", [2, 7, 32])
def test_seqlens_shorter_than_split_count(num_splits, seed):
    # at most 3 tiles of 16 per sequence: most splits are empty, some sequences shorter than splits.
    case = make_case([0, 1, 5, 17, 40], h_q=8, s_q=2, page=8, seed=seed)
    _, splits = check(case, Config(num_splits=num_splits, **SPLIT_CFG), causal=True)
    assert num_splits <= splits <= 256


@pytest.mark.parametrize("max_seqlen", [None, 1, 20])
def test_split_sizing_max_seqlen(max_seqlen, seed):
    """launch() sizes splits from max_seqlen: the block table's cover (None) or an underestimate, where
    the last split takes the tail, must give the same answer."""
    case = make_case([0, 50, 9], h_q=16, s_q=1, page=16, seed=seed, extra_cols=2)
    check(case, Config(num_splits=3, **SPLIT_CFG), max_seqlen=max_seqlen)


def test_all_sequences_empty(seed):
    case = make_case([0, 0], h_q=8, s_q=2, page=16, seed=seed)
    for ns in (1, 4):
        out, lse, _ = run_poisoned(case, Config(num_splits=ns, **SPLIT_CFG), causal=True)
        assert (out == 0).all() and (lse == math.inf).all()


@pytest.mark.parametrize("num_splits", [0, 1, 3])
def test_variable_seqlens_random(num_splits, seed):
    g = torch.Generator().manual_seed(seed)
    seqlens = torch.randint(0, 200, (4,), generator=g).tolist() + [0, 1]
    case = make_case(seqlens, h_q=16, s_q=1, page=16, seed=seed)
    _, splits = check(case, Config(block_n=32, block_h=16, num_splits=num_splits, num_warps=8))
    assert splits >= 1


def test_workload_builder_inputs(seed):
    """make_inputs (random page permutation, lognormal seqlens) through the public API."""
    w = Workload(batch=4, seqlen=60, h_q=16, s_q=2, page_size=16, dist="lognormal")
    d = make_inputs(w, device=DEVICE, seed=seed)
    bt = d["block_table"]
    used = torch.cat([bt[b, : -(-int(n) // 16)] for b, n in enumerate(d["cache_seqlens"].tolist())])
    assert used.unique().numel() == used.numel()  # a permutation: no page shared
    cfg = Config(block_n=32, block_h=32, num_splits=1, num_warps=8)
    out, lse = mlatune.mla_decode(d["q"], d["kv_cache"], bt, d["cache_seqlens"], causal=True, config=cfg)
    ref_out, ref_lse = mlatune.kernels.mla_decode_ref(d["q"], d["kv_ref"], bt, d["cache_seqlens"], causal=True)
    compare(out, lse, ref_out, ref_lse, OUT_TOL_BF16, LSE_TOL, tag="workload")


# --- Block table garbage ----------------------------------------------------------------------------
@pytest.mark.parametrize("garbage", ["poison", "neg", "huge", "random"])
@pytest.mark.parametrize("page,block_n", [(1, 16), (16, 64), (64, 16)])
def test_block_table_garbage_past_last_page(garbage, page, block_n, seed):
    seqlens = [0, 1, page + 1, 2 * page - 1] if page > 1 else [0, 1, 5, 20]
    case = make_case(seqlens, h_q=8, s_q=2, page=page, seed=seed, garbage=garbage, extra_cols=3)
    ns = 2 if garbage == "random" else 1
    check(case, Config(block_n=block_n, block_h=16, num_splits=ns, num_warps=4), causal=True)


def test_block_table_with_row_stride(seed):
    """A block table that is a column slice of a wider one (row stride != width) is accepted and used."""
    case = make_case([30, 7, 50], h_q=8, page=16, seed=seed, extra_cols=0)
    wide = torch.full((3, case.block_table.shape[1] + 5), case.poison_page, dtype=torch.int32, device=case.q.device)
    wide[:, : case.block_table.shape[1]] = case.block_table
    case.block_table = wide[:, : case.block_table.shape[1]]
    assert not case.block_table.is_contiguous()
    check(case, Config(block_n=16, block_h=16, num_splits=2, num_warps=4))


# --- dtypes, scale, strides, public API ------------------------------------------------------------
@pytest.mark.parametrize("cfg", [Config(block_n=16, block_h=16, num_splits=1, num_warps=4),
                                 Config(block_n=64, block_h=64, num_splits=3, num_warps=8, trans=1)], ids=lambda c: c.key())
def test_fp16(cfg, seed):
    case = make_case([0, 1, 17, 90], h_q=10, s_q=2, page=16, dtype=torch.float16, seed=seed)
    check(case, cfg, causal=True)


@pytest.mark.parametrize("softmax_scale,q_scale,num_splits", [(0.3, 1.0, 2), (576**-0.5, 8.0, 1), (1e-3, 1.0, 1)])
def test_softmax_scale(softmax_scale, q_scale, num_splits, seed):
    """Peaky (logits std ~7-8) and nearly flat softmax; lse must follow the given scale."""
    case = make_case([50, 9], h_q=16, s_q=1, page=16, seed=seed, q_scale=q_scale)
    check(case, Config(block_n=16, block_h=16, num_splits=num_splits, num_warps=4), softmax_scale=softmax_scale)


def test_q_strided(seed):
    """q as a [b, h, s, d] -> [b, s, h, d] transpose and as a slice of a wider last dim."""
    case = make_case([40, 0, 21], h_q=16, s_q=2, page=16, seed=seed)
    cfg = Config(block_n=16, block_h=16, num_splits=1, num_warps=4)
    ref = reference(case, causal=True)
    qt = case.q.transpose(1, 2).contiguous().transpose(1, 2)
    wide = torch.randn(*case.q.shape[:3], 600, device=case.q.device).to(case.q.dtype)
    wide[..., :576] = case.q
    for q in (qt, wide[..., :576]):
        assert not q.is_contiguous()
        out, lse, _ = run_poisoned(case, cfg, causal=True, q=q)
        compare(out, lse, *ref, OUT_TOL_BF16, LSE_TOL, tag="strided q")


def test_public_entry_default_config(seed):
    """mlatune.mla_decode with config=None, validate on and off: shapes, dtypes, values."""
    case = make_case([0, 1, 63, 65, 130], h_q=128, s_q=1, page=64, seed=seed)
    ref = reference(case)
    for validate in (True, False):
        out, lse = mlatune.mla_decode(*case.args(), config=None, validate=validate)
        assert out.dtype == torch.bfloat16 and lse.dtype == torch.float32
        compare(out, lse, *ref, OUT_TOL_BF16, LSE_TOL, tag=f"default validate={validate}")


@pytest.mark.parametrize("h_q,s_q", [(16, 1), (16, 2), (20, 2), (32, 1), (64, 2), (128, 1), (128, 2)])
def test_default_config_valid(h_q, s_q):
    assert check_config(default_config(h_q, s_q)) == []


def test_deterministic(seed):
    case = make_case([70, 3], h_q=8, s_q=2, page=16, seed=seed)
    cfg = Config(block_n=16, block_h=16, num_splits=3, num_warps=4)
    a = run_poisoned(case, cfg, causal=True)
    b = run_poisoned(case, cfg, causal=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# --- CUDA only --------------------------------------------------------------------------------------
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (cannot run in the CPU interpreter)")

BIG_TOKENS = 4_200_000  # x 576 = 2.42e9 elements > 2**31: 32-bit offsets wrap on the last pages


def _free_bytes() -> int:
    return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else 0


@cuda_only
@pytest.mark.parametrize("kv_format", ["bf16", "fp8", "fp8_flashmla"])
def test_64bit_offsets(kv_format, seed):
    """A ~4.2M-token cache whose last pages sit past 2**31 elements (and bytes): read them correctly.

    Every page not in the block table is NaN, so an offset that wrapped to 32 bits either faults or
    reads NaN. Runs on the GPU only: a CPU can't allocate this in the interpreter's time budget.
    """
    page = 64
    n_pages = BIG_TOKENS // page
    token_bytes = {"bf16": 2 * 576, "fp8": 576, "fp8_flashmla": 656}[kv_format]
    need = n_pages * page * token_bytes
    if _free_bytes() < max(need + 2**30, 8 * 2**30):
        pytest.skip(f"needs {need / 2**30:.1f} GiB + 1 GiB free on the GPU")
    assert n_pages * page * 576 > 2**31
    dev = "cuda"
    g = torch.Generator(device="cpu").manual_seed(seed)
    # seq 0: the last pages (offsets past 2**31); seq 1: last page, first page, a middle page.
    rows = [[n_pages - 1, n_pages - 3, n_pages - 2, n_pages - 5], [n_pages - 4, 0, n_pages // 2, n_pages - 6]]
    seqlens = [4 * page - 5, 3 * page + 7]
    small = torch.randn(8, page, 1, 576, generator=g).to(torch.bfloat16)  # the 8 pages we read
    used = [p for r in rows for p in r]
    idx = torch.tensor(used, device=dev)
    k_scale = None
    if kv_format == "bf16":
        kv = torch.full((n_pages, page, 1, 576), float("nan"), dtype=torch.bfloat16, device=dev)
        kv[idx] = small.to(dev)
        compact = kv[idx].float()
    elif kv_format == "fp8":  # written through a uint8 view (0x7F = e4m3 NaN)
        raw = torch.full((n_pages, page, 1, 576), 0x7F, dtype=torch.uint8, device=dev)
        s8, k_scale = quantize_per_tensor(small)
        raw[idx] = s8.view(torch.uint8).to(dev)
        k_scale = k_scale.to(dev)
        kv = raw.view(torch.float8_e4m3fn)
        compact = dequantize(raw[idx].view(torch.float8_e4m3fn), k_scale)
    else:
        kv = torch.full((n_pages, page, 1, 656), 0x7F, dtype=torch.uint8, device=dev)
        kv[idx] = quantize_flashmla(small).to(dev)
        compact = dequantize(kv[idx])
    bt = torch.tensor(rows, dtype=torch.int32, device=dev)
    sl = torch.tensor(seqlens, dtype=torch.int32, device=dev)
    q = torch.randn(2, 2, 16, 576, generator=g).to(torch.bfloat16).to(dev)
    # the reference on a compact copy of just the used pages (same block table, renumbered)
    bt_c = torch.arange(len(used), dtype=torch.int32, device=dev).reshape(2, 4)
    ref = mlatune.kernels.mla_decode_ref(q, compact, bt_c, sl, causal=True)
    cfgs = [Config(block_n=64, block_h=32, num_splits=ns, num_warps=8) for ns in (1, 4)]
    if kv_format == "bf16" and gluon_runs_on(q.device):  # the Gluon sm_90 kernel's offsets too
        cfgs += [Config(block_n=64, block_h=64, num_splits=ns, num_warps=8, gluon=1) for ns in (1, 4)]
    if kv_format == "fp8" and gluon_runs_on(q.device):  # and the Gluon fp8 kernels'
        cfgs += [Config(block_n=64, block_h=32, num_splits=ns, num_warps=4, num_stages=3, gluon=g)
                 for ns in (1, 4) for g in (4, 6)]
    for cfg in cfgs:
        ns = cfg.num_splits
        out, lse = mlatune.mla_decode(q, kv, bt, sl, causal=True, config=cfg, k_scale=k_scale)
        torch.cuda.synchronize()
        compare(out, lse, *ref, OUT_TOL_BF16, LSE_TOL, tag=f"64-bit {kv_format} {cfg.key()} splits={ns}")
    del kv
    torch.cuda.empty_cache()


@cuda_only
@pytest.mark.parametrize("num_splits", [1, 4])
def test_cuda_graph_replay(num_splits, seed):
    """Capture launch() once (fixed batch/config/splits), replay with new seqlen values in place."""
    case = make_case([100, 37, 0, 64], h_q=32, s_q=2, page=16, seed=seed, extra_cols=4)
    q, kv, bt, sl = case.args()
    batch, s_q, h_q, _ = q.shape
    cfg = Config(block_n=32, block_h=32, num_splits=num_splits, num_warps=8)
    splits = resolve_splits(cfg, batch, s_q * h_q, bt.shape[1] * kv.shape[1], q.device)
    out = torch.full((batch, s_q, h_q, 512), float("nan"), dtype=q.dtype, device=q.device)
    lse = torch.full((batch, h_q, s_q), float("nan"), dtype=torch.float32, device=q.device)
    parts = alloc_partials(batch, s_q * h_q, splits, q.device) if splits > 1 else None
    scale = 576**-0.5
    sl_static = sl.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm up (compile) outside capture
        launch(q, kv, bt, sl_static, out, lse, scale, True, cfg, splits, "bf16", None, parts)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        launch(q, kv, bt, sl_static, out, lse, scale, True, cfg, splits, "bf16", None, parts)
    # new values, all covered by each row's real pages (pages_per from the original seqlens)
    # new values no longer than the captured ones (their tails past that are NaN-poisoned)
    for new in ([100, 37, 0, 64], [1, 32, 0, 17], [96, 1, 0, 63], [0, 0, 0, 0]):
        sl_static.copy_(torch.tensor(new, dtype=torch.int32))
        out.fill_(float("nan"))
        lse.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        eager_out = torch.empty_like(out)
        eager_lse = torch.empty_like(lse)
        launch(q, kv, bt, sl_static.clone(), eager_out, eager_lse, scale, True, cfg, splits, "bf16", None, None)
        torch.cuda.synchronize()
        assert torch.equal(out, eager_out) and torch.equal(lse, eager_lse), f"graph replay != eager for {new}"
        ref = mlatune.kernels.mla_decode_ref(q, case.kv_ref, bt, sl_static, causal=True)
        compare(out, lse, *ref, OUT_TOL_BF16, LSE_TOL, tag=f"graph {new}")


def test_uneven_lengths_grow_the_grid(seed):
    """One long sequence among short ones: splits are sized from the mean length, so the grid grows past
    num_splits and the long sequence gets more programs; equal lengths keep exactly num_splits."""
    from mlatune.kernels.mla_decode import resolve_splits, split_length

    cfg = Config(block_n=16, block_h=16, num_splits=2, num_warps=4)
    lens = [400, 3, 20, 0, 35, 17]
    case = make_case(lens, h_q=16, s_q=1, page=16, seed=seed)
    _, splits = check(case, cfg)
    mean = sum(lens) // len(lens)
    assert splits > cfg.num_splits
    assert split_length(max(lens), splits, 16) <= split_length(mean, cfg.num_splits, 16)  # no split longer than the mean's share
    cpu = torch.device("cpu")
    assert resolve_splits(cfg, 6, 16, 400, cpu, total_tokens=6 * 400) == cfg.num_splits
    assert resolve_splits(cfg, 6, 16, 400, cpu) == cfg.num_splits


def test_schedule_orders_pieces_longest_first():
    """gluon 3 and 6's piece order: a permutation of every (sequence, split) piece, longest first, ties in batch
    order; the last split takes the tail. Other kernels get no order."""
    from mlatune.kernels.mla_decode import schedule, split_length

    cfg = Config(block_n=64, block_h=64, num_splits=2, num_warps=8, num_stages=2, gluon=3)
    lens = torch.tensor([700, 0, 130, 64, 1000, 5], dtype=torch.int32)
    splits, max_seqlen = 3, 900  # an underestimate: the last split of sequence 4 runs past 3 * split_len
    split_len = split_length(max_seqlen, splits, 64)
    order = schedule(cfg, lens, splits, max_seqlen)
    assert order.dtype == torch.int32 and sorted(order.tolist()) == list(range(len(lens) * splits))
    piece = []
    for w in order.tolist():
        b, s = divmod(w, splits)
        start = s * split_len
        end = int(lens[b]) if s == splits - 1 else min(start + split_len, int(lens[b]))
        piece.append((max(end - start, 0), w))
    assert [n for n, _ in piece] == sorted((n for n, _ in piece), reverse=True)
    assert piece[0] == (1000 - 2 * split_len, 4 * splits + 2)  # the tail-taking last split is the longest piece
    ties = [w for n, w in piece if n == 0]
    assert ties == sorted(ties)  # stable: empty pieces keep batch order
    assert sum(n for n, _ in piece) == int(lens.sum())
    for g in (0, 1, 4):
        assert schedule(Config(gluon=g), lens, splits, max_seqlen) is None
    g6 = Config(block_n=64, block_h=16, num_splits=2, num_warps=4, num_stages=2, gluon=6)  # the fp8 kernel takes it too
    assert torch.equal(schedule(g6, lens, splits, max_seqlen), order)
    assert schedule(cfg, torch.full((4,), 300), splits, 300, total_tokens=1200) is None  # equal lengths: batch order
    assert schedule(cfg, lens, splits, max_seqlen, total_tokens=int(lens.sum())) is not None


def test_seesaw_pieces_may_be_one_sms_share():
    """gluon=3 takes pieces longest first, so an uneven batch is cut only where a piece would exceed one SM's
    share of the work (4 pretend SMs on the CPU); the Triton kernel keeps pieces of the mean length."""
    from mlatune.kernels.mla_decode import resolve_splits

    cpu = torch.device("cpu")
    g0 = Config(block_n=64, block_h=64, num_splits=1, num_warps=8)
    g3 = Config(block_n=64, block_h=64, num_splits=1, num_warps=8, num_stages=2, gluon=3)
    lens = [2048] + [500] * 15  # mean 596; one SM's share: 9548 / 4 tokens
    total = sum(lens)
    assert resolve_splits(g0, 16, 64, 2048, cpu, total) == 4  # pieces of 640 (the mean, in whole tiles)
    assert resolve_splits(g3, 16, 64, 2048, cpu, total) == 1  # 2048 <= the 2432-token share
    assert resolve_splits(g3, 16, 128, 2048, cpu, total) == 1  # two row groups: twice the share
    assert resolve_splits(g3, 16, 64, 7000, cpu, 7000 + 15 * 500) == 2  # 7000 > the 3648-token share
    assert resolve_splits(Config(**{**g3.to_dict(), "num_splits": 4}), 16, 64, 2048, cpu, total) == 4  # never below num_splits


def _segment_loads(plan, lens):
    """Per part: its segments as (b, start, end, slot) with end resolved, and its load in tiles plus costs."""
    from mlatune.kernels.mla_decode import SEGMENT_COST_TILES

    table, ptr = plan.table.view(-1, 4).tolist(), plan.ptr.tolist()
    parts = []
    for p in range(plan.parts):
        segs = [(b, s, lens[b] if e < 0 else e, slot) for b, s, e, slot in table[ptr[p]:ptr[p + 1]]]
        parts.append((segs, sum(-(-(e - s) // 64) + SEGMENT_COST_TILES for _, s, e, _ in segs)))
    return parts


@pytest.mark.parametrize("lens,groups", [
    ([700, 0, 130, 64, 1000, 5], 1),
    ([30000], 1),
    ([1024] * 128, 2),
    ([0, 0, 0], 4),
    (list(range(0, 5000, 37)), 4),
])
def test_segment_plan_covers_every_token_once(lens, groups):
    """gluon=5's plan: every sequence has segments whose token ranges tile [0, len) exactly, in slot order
    0..n-1 (-1 for a sequence in one segment, which the combine then skips); cuts fall between pairs of
    64-token tiles; at most sms // groups parts; every part's load within one share of the mean."""
    from mlatune.kernels.mla_decode import SEGMENT_COST_TILES, plan_segments

    sms = 132
    plan = plan_segments(torch.tensor(lens, dtype=torch.int32), groups, sms, "cpu")
    parts = _segment_loads(plan, lens)
    assert 1 <= plan.parts <= sms // groups
    by_seq = {}
    for segs, _ in parts:
        for b, s, e, slot in segs:
            by_seq.setdefault(b, []).append((s, e, slot))
    assert sorted(by_seq) == list(range(len(lens)))
    for b, segs in by_seq.items():
        assert segs[0][0] == 0 and segs[-1][1] == lens[b]
        assert all(x[1] == y[0] for x, y in zip(segs, segs[1:]))  # contiguous, no overlap
        assert all(e % 128 == 0 for _, e, _ in segs[:-1])  # cuts between pairs of tiles
        assert [slot for _, _, slot in segs] == ([-1] if len(segs) == 1 else list(range(len(segs))))
        assert int(plan.counts[b]) == len(segs)
    assert plan.slots == max(len(s) for s in by_seq.values())
    assert plan.combine == (plan.slots > 1)
    loads = [load for _, load in parts]
    share = -(-(sum(-(-L // 64) for L in lens) + len(lens) * SEGMENT_COST_TILES) // (sms // groups))
    assert max(loads) <= share + 2 * SEGMENT_COST_TILES + 2, (max(loads), share)


def test_segment_plan_balances_uneven_batches():
    """One long sequence among short ones is cut across parts, so the busiest part carries about the mean
    load, where whole sequences per program would leave it carrying the long one."""
    from mlatune.kernels.mla_decode import plan_segments

    lens = [20000] + [300] * 30
    plan = plan_segments(lens, 1, 132, "cpu")
    loads = [load for _, load in _segment_loads(plan, lens)]
    assert plan.parts > 100 and int(plan.counts[0]) > 50  # the long one spread over most of the 132 parts
    assert max(loads) <= 1.1 * sum(loads) / len(loads) + 2


def test_combine_takes_per_sequence_slot_counts(seed):
    """gluon=5 runs the combine with the plan's segment counts in place of seqlens (one token per slot):
    count 1 leaves the output the split kernel wrote, 0 gives zeros and +inf, n merges slots 0..n-1 only."""
    from mlatune.kernels.mla_decode import _combine_kernel

    g = torch.Generator().manual_seed(seed)
    batch, h_q, s_q, slots, dv = 4, 2, 1, 3, 512
    rows = h_q * s_q
    counts = torch.tensor([0, 1, 2, 3], dtype=torch.int32, device=DEVICE)
    op = torch.randn(batch, rows, slots, dv, generator=g).to(DEVICE)
    lp = (torch.randn(batch, rows, slots, generator=g) * 3).to(DEVICE)
    op[2, :, 2], lp[2, :, 2] = float("nan"), float("nan")  # slot past sequence 2's count: never read
    out = torch.full((batch, s_q, h_q, dv), 7.0, dtype=torch.bfloat16, device=DEVICE)
    lse = torch.full((batch, h_q, s_q), 7.0, device=DEVICE)
    _combine_kernel[(rows, batch)](op, lp, out, lse, counts, slots, 1, op.stride(0), op.stride(1), op.stride(2),
                                   lp.stride(0), lp.stride(1), out.stride(0), out.stride(1), out.stride(2),
                                   lse.stride(0), lse.stride(1), h_q, BLOCK_S=2, DV=dv, DIRECT=True, num_warps=4)
    assert (out[1] == 7.0).all() and (lse[1] == 7.0).all()  # written by the split kernel: untouched
    assert (out[0] == 0).all() and torch.isinf(lse[0]).all() and (lse[0] > 0).all()
    for b in (2, 3):
        n = int(counts[b])
        w = torch.softmax(lp[b, :, :n] * math.log(2.0), dim=-1)  # partial LSEs are log2
        ref = (w[..., None] * op[b, :, :n]).sum(1)
        torch.testing.assert_close(out[b, 0].float(), ref, rtol=1e-2, atol=1e-2)
        torch.testing.assert_close(lse[b, :, 0], torch.logsumexp(lp[b, :, :n] * math.log(2.0), -1), rtol=1e-5, atol=1e-5)
