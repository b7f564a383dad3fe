"""Shared test helpers: random paged inputs with poisoned memory, a NaN-poisoned launch, and the
comparison against the fp32 reference.

Imported by the test modules after tests/conftest.py has set TRITON_INTERPRET (CPU machines).
"""
from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass

import pytest
import torch

from mlatune.kernels import Config, check_config, mla_decode_ref
from mlatune.kernels.fp8 import dequantize, quantize_flashmla, quantize_per_tensor
from mlatune.kernels.mla_decode import check_inputs, check_seqlens, launch, resolve_splits, schedule

D_QK, D_V = 576, 512
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
NAN = float("nan")

# Block-table fillers for the entries past each sequence's last page. The kernel must never read them.
GARBAGE = {"neg": -1, "huge": 2**31 - 1}


@pytest.fixture
def seed(request) -> int:
    """A fresh seed per test (from its node id), shifted by $MLATUNE_TEST_SEED to draw new inputs."""
    return (zlib.crc32(request.node.nodeid.encode()) + int(os.environ.get("MLATUNE_TEST_SEED", "0"))) % 2**31


@dataclass
class Case:
    q: torch.Tensor
    kv_cache: torch.Tensor
    block_table: torch.Tensor
    cache_seqlens: torch.Tensor
    k_scale: torch.Tensor | None
    kv_ref: torch.Tensor  # the cache as the kernel should see it (dequantized for fp8), fp32
    kv_orig: torch.Tensor  # the bf16/fp16 cache before quantization
    kv_format: str
    poison_page: int

    def args(self):
        return self.q, self.kv_cache, self.block_table, self.cache_seqlens


def poison(kv: torch.Tensor, fmt: str, page: int, slots: slice | int = slice(None)) -> None:
    """Fill cache tokens with NaN in whatever encoding the format uses."""
    if fmt == "bf16":
        kv[page, slots] = NAN
    elif fmt == "fp8":
        kv.view(torch.uint8)[page, slots] = 0x7F  # e4m3fn NaN
    else:  # FlashMLA layout: e4m3 NaN bytes, NaN scales, NaN bf16 rope
        raw = kv[page, slots]
        raw[..., :512] = 0x7F
        raw[..., 512:528] = torch.tensor([NAN] * 4, dtype=torch.float32).view(torch.uint8)
        raw[..., 528:] = torch.tensor([NAN] * 64, dtype=torch.bfloat16).view(torch.uint8)
        kv[page, slots] = raw


def make_case(
    seqlens,
    *,
    h_q: int = 16,
    s_q: int = 1,
    page: int = 16,
    dtype=torch.bfloat16,
    kv_format: str = "bf16",
    seed: int = 0,
    garbage="poison",
    extra_cols: int = 1,
    poison_tail: bool = True,
    q_scale: float = 1.0,
    device: str = DEVICE,
) -> Case:
    """Random q and cache (never zeros), block table a random permutation of pages.

    The cache holds one extra page filled with NaN. Block-table entries past each sequence's last page
    are `garbage`: "poison" (the NaN page's index), "neg" (-1), "huge" (2**31-1) or "random" (any
    int32), and the table has `extra_cols` more columns than the longest sequence needs. With
    poison_tail, the slots after seqlen in each sequence's last page are NaN too. So any read past a
    sequence's end shows up as NaN (or as a crash, for -1/huge).
    """
    gen = torch.Generator().manual_seed(seed)
    seqlens = [int(n) for n in seqlens]
    batch = len(seqlens)
    pages_per = [-(-n // page) for n in seqlens]
    total = sum(pages_per)
    perm = torch.randperm(total + 1, generator=gen).to(torch.int32)
    poison_page = int(perm[-1])
    width = max(1, max(pages_per) + extra_cols)
    if garbage == "poison":
        bt = torch.full((batch, width), poison_page, dtype=torch.int32)
    elif garbage == "random":
        bt = torch.randint(-(2**31), 2**31 - 1, (batch, width), generator=gen, dtype=torch.int64).to(torch.int32)
    else:
        bt = torch.full((batch, width), GARBAGE[garbage], dtype=torch.int32)
    at = 0
    for b, n in enumerate(pages_per):
        bt[b, :n] = perm[at : at + n]
        at += n
    kv_orig = torch.randn(total + 1, page, 1, D_QK, generator=gen).to(dtype)
    q = (torch.randn(batch, s_q, h_q, D_QK, generator=gen) * q_scale).to(dtype)
    k_scale = None
    if kv_format == "bf16":
        kv = kv_orig.clone()
    elif kv_format == "fp8":
        kv, k_scale = quantize_per_tensor(kv_orig)
    elif kv_format == "fp8_flashmla":
        kv = quantize_flashmla(kv_orig)
    else:
        raise ValueError(kv_format)
    poison(kv, kv_format, poison_page)
    if poison_tail:
        for b, n in enumerate(seqlens):
            if n % page:
                poison(kv, kv_format, int(bt[b, pages_per[b] - 1]), slice(n % page, None))
    kv_ref = dequantize(kv, k_scale)
    sl = torch.tensor(seqlens, dtype=torch.int32)
    dev = lambda t: None if t is None else t.to(device)  # noqa: E731
    return Case(dev(q), dev(kv), dev(bt), dev(sl), dev(k_scale), dev(kv_ref), dev(kv_orig), kv_format, poison_page)


def run_poisoned(case: Case, cfg: Config, *, causal=False, softmax_scale=None, q=None, max_seqlen="exact", order="schedule"):
    """Launch with NaN-filled out, lse and split partials, each a view of a buffer one batch row
    longer; checks the guard row is still NaN (no write out of bounds). Returns (out, lse, splits).

    max_seqlen sizes the splits as launch() takes it: "exact" (what mla_decode passes), None (what the
    block table covers) or a number (an underestimate must stay correct). order: "schedule" (what the
    runtime passes), None (batch order) or a permutation of the pieces (any must be correct)."""
    q = case.q if q is None else q
    kv, bt, sl = case.kv_cache, case.block_table, case.cache_seqlens
    fmt = check_inputs(q, kv, bt, sl, 512, case.k_scale, causal)
    assert fmt == case.kv_format
    assert check_config(cfg, fmt) == [], check_config(cfg, fmt)
    if q.is_cuda:  # some knob extremes are for the interpreter only: a real GPU has less shared memory
        too_big = check_config(cfg, fmt, smem_limit=torch.cuda.get_device_properties(q.device).shared_memory_per_block_optin)
        if too_big:
            pytest.skip(f"{cfg.key()} does not fit this GPU: " + "; ".join(too_big))
    batch, s_q, h_q, _ = q.shape
    true_max, total = check_seqlens(sl, bt, kv.shape[1])
    splits = resolve_splits(cfg, batch, s_q * h_q, max(true_max, 1), q.device, total)
    if max_seqlen == "exact":
        max_seqlen = true_max
    out_buf = torch.full((batch + 1, s_q, h_q, D_V), NAN, dtype=q.dtype, device=q.device)
    lse_buf = torch.full((batch + 1, h_q, s_q), NAN, dtype=torch.float32, device=q.device)
    partials = None
    if splits > 1:
        partials = (
            torch.full((batch, s_q * h_q, splits, D_V), NAN, dtype=torch.float32, device=q.device),
            torch.full((batch, s_q * h_q, splits), NAN, dtype=torch.float32, device=q.device),
        )
    scale = D_QK**-0.5 if softmax_scale is None else softmax_scale
    if isinstance(order, str):
        order = schedule(cfg, sl, splits, bt.shape[1] * kv.shape[1] if max_seqlen is None else max_seqlen, total,
                         rows=s_q * h_q)
    if cfg.gluon in (5, 7) and order is not None and order.combine:  # its plan sizes the partials
        partials = (torch.full((batch, s_q * h_q, order.slots, D_V), NAN, dtype=torch.float32, device=q.device),
                    torch.full((batch, s_q * h_q, order.slots), NAN, dtype=torch.float32, device=q.device))
    out, lse = launch(q, kv, bt, sl, out_buf[:batch], lse_buf[:batch], scale, causal, cfg, splits, fmt, case.k_scale, partials,
                      max_seqlen=max_seqlen, order=order)
    assert out.data_ptr() == out_buf.data_ptr() and lse.data_ptr() == lse_buf.data_ptr()
    assert out_buf[batch].isnan().all() and lse_buf[batch].isnan().all(), "kernel wrote past the last batch row"
    return out, lse, splits


def reference(case: Case, *, causal=False, softmax_scale=None, kv=None, q=None):
    q = case.q if q is None else q
    return mla_decode_ref(q, case.kv_ref if kv is None else kv, case.block_table, case.cache_seqlens,
                          softmax_scale=softmax_scale, causal=causal)


def compare(out, lse, ref_out, ref_lse, out_tol: float, lse_tol: float, tag: str = "") -> dict:
    """Assert out/lse match the reference; returns the measured errors.

    out: every element finite; rows the reference marks empty (lse +inf) exactly 0; every other
    (batch, s, head) row has relative L2 error < out_tol. lse: never NaN; +inf exactly where the
    reference has +inf; elsewhere |lse - ref| <= lse_tol * max(1, |ref|).
    """
    batch, s_q, h_q, dv = ref_out.shape
    assert tuple(out.shape) == (batch, s_q, h_q, dv), out.shape
    assert tuple(lse.shape) == (batch, h_q, s_q), lse.shape
    assert lse.dtype == torch.float32
    out, lse = out.float().cpu(), lse.cpu()
    ref_out, ref_lse = ref_out.cpu(), ref_lse.cpu()
    bad = ~torch.isfinite(out)
    assert not bad.any(), f"{tag}: {int(bad.sum())} non-finite out elements, first at {bad.nonzero()[0].tolist()}"
    assert not lse.isnan().any(), f"{tag}: NaN in lse at {lse.isnan().nonzero()[0].tolist()}"
    assert not (lse == -math.inf).any(), f"{tag}: -inf in lse"
    ref_inf = torch.isinf(ref_lse)
    got_inf = torch.isinf(lse)
    assert torch.equal(ref_inf, got_inf), (
        f"{tag}: lse +inf positions differ: ref {ref_inf.nonzero().tolist()} got {got_inf.nonzero().tolist()}")
    empty = ref_inf.permute(0, 2, 1)  # [b, s, h]
    if empty.any():
        assert (out[empty] == 0).all(), f"{tag}: empty rows must give out == 0"
    live = ~ref_inf
    lse_err = ((lse[live] - ref_lse[live]).abs() / ref_lse[live].abs().clamp_min(1.0)) if live.any() else torch.zeros(1)
    lse_max = float(lse_err.max())
    assert lse_max <= lse_tol, f"{tag}: lse error {lse_max:.3g} > {lse_tol}"
    errs = {"lse": lse_max, "out_row_max": 0.0, "out_global": 0.0}
    alive = ~empty
    if alive.any():
        o, r = out[alive], ref_out[alive]  # [rows, dv]
        row = (o - r).norm(dim=-1) / r.norm(dim=-1).clamp_min(1e-30)
        errs["out_row_max"] = float(row.max())
        errs["out_global"] = float((o - r).norm() / r.norm())
        worst = int(row.argmax())
        assert errs["out_row_max"] < out_tol, (
            f"{tag}: out relative L2 error {errs['out_row_max']:.3g} >= {out_tol} (worst live row {worst}); "
            f"global {errs['out_global']:.3g}")
    log = os.environ.get("MLATUNE_TEST_ERRLOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"tag": tag, "test": os.environ.get("PYTEST_CURRENT_TEST", ""), **errs}) + "\n")
    return errs
