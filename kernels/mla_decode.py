"""Split-KV MLA decode in Triton: the two kernels, input checks, and the launcher."""
from __future__ import annotations

import functools
import math
import numbers
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .config import D_LATENT, D_QK, D_ROPE, FP8_LAYOUT_BYTES, Config, auto_splits, check_config, persistent, takes_order

# The Gluon sm_90 kernels: Triton 3.6 or later
split_kernel_sm90 = split_kernel_ws = split_kernel_ss = split_kernel_ps = split_kernel_fp8 = split_kernel_fp8r = None
gluon_descriptors = None
if tuple(int(x) for x in triton.__version__.split(".")[:2] if x.isdigit()) >= (3, 6):
    try:
        from .mla_gluon import split_kernel_sm90
        from .mla_gluon_fp8 import split_kernel_fp8
        from .mla_gluon_fp8r import split_kernel_fp8r
        from .mla_gluon_ps import split_kernel_ps
        from .mla_gluon_ss import descriptors as gluon_descriptors
        from .mla_gluon_ss import split_kernel_ss
        from .mla_gluon_ws import split_kernel_ws
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - a Triton without this API
        split_kernel_sm90 = split_kernel_ws = split_kernel_ss = split_kernel_ps = None
        split_kernel_fp8 = split_kernel_fp8r = gluon_descriptors = None

KV_FORMATS = ("bf16", "fp8", "fp8_flashmla")  # bf16 also covers fp16 caches (same dtype as q)
_FMT_ID = {"bf16": 0, "fp8": 1, "fp8_flashmla": 2}
LN2 = math.log(2.0)
LAST_COMPILED: dict = {}  # the last compiled split kernel, for register/spill reports
LOG2E = 1.0 / LN2


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


INTERPRETED = tl.constexpr(interpreted())  # the interpreter runs no inline asm


@triton.jit
def _e4m3_to_f16(x):
    """uint8 e4m3 bit patterns -> float16, exactly. On the GPU one cvt per pair, as inline asm with side
    effects: Triton then converts right after the load instead of fusing the upcast into the MMA operand
    load, which reads shared memory byte by byte."""
    if INTERPRETED:
        return x.to(tl.float8e4nv, bitcast=True).to(tl.float16)
    else:
        return tl.inline_asm_elementwise(
            "{ .reg .b16 lo, hi; mov.b32 {lo, hi}, $2; cvt.rn.f16x2.e4m3x2 $0, lo; cvt.rn.f16x2.e4m3x2 $1, hi; }",
            "=r,=r,r", [x], dtype=tl.float16, is_pure=False, pack=4)


@triton.jit
def _q_chunk(Q, q_off, row_ok, c: tl.constexpr, q_scale, QK_FP8: tl.constexpr):
    """Dims [128c, 128c + 128) of the q rows, scaled per row, in the fp8 path's MMA type."""
    dc = tl.arange(0, 128)
    x = tl.load(Q + q_off[:, None] + c * 128 + dc[None, :], mask=row_ok[:, None], other=0.0).to(tl.float32)
    x = x / q_scale[:, None]
    if QK_FP8:
        return x.to(tl.float8e4nv)
    else:
        return x.to(tl.float16)


@triton.jit
def _k_chunk(KV, KS, k_off, s_off, t_ok, c: tl.constexpr, KV_FORMAT: tl.constexpr):
    """Dims [128c, 128c + 128) of an fp8 KV tile: the raw bytes and their fp16 values (with the FlashMLA
    layout's per-128 scale applied)."""
    dc = tl.arange(0, 128)
    k8 = tl.load(KV + k_off[:, None] + c * 128 + dc[None, :], mask=t_ok[:, None], other=0)
    k = _e4m3_to_f16(k8)
    if KV_FORMAT == 2:
        sc = tl.load(KS + s_off + c, mask=t_ok, other=0.0)
        k = k * sc.to(tl.float16)[:, None]
    return k8, k


@triton.jit(do_not_specialize=["num_splits"])
def _split_kernel(
    Q, KV, KR, KS, BT, SEQ, KSCALE, OP, LP, OUT, LSE,
    scale_log2,
    num_splits, split_len,
    stride_qb, stride_qs, stride_qh,
    stride_kb, stride_kt, stride_rb, stride_rt, stride_sb, stride_st,
    stride_btb,
    stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
    stride_ob, stride_os, stride_oh,
    stride_lb, stride_lh,
    H, S_Q, PAGE: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr,
    ONE_SPLIT: tl.constexpr, CAUSAL: tl.constexpr, KV_FORMAT: tl.constexpr, TRANS: tl.constexpr,
    QK_FP8: tl.constexpr,
    DV: tl.constexpr, DR: tl.constexpr,
):
    pid_h = tl.program_id(0)
    split = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    dtype = Q.dtype.element_ty

    rows = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)  # row = s * H + h
    row_ok = rows < H * S_Q
    s_idx = rows // H
    h_idx = rows % H
    dv = tl.arange(0, DV)
    dr = tl.arange(0, DR)

    q_off = b * stride_qb + s_idx.to(tl.int64) * stride_qs + h_idx.to(tl.int64) * stride_qh
    q = tl.load(Q + q_off[:, None] + dv[None, :], mask=row_ok[:, None], other=0.0)
    qr = tl.load(Q + q_off[:, None] + DV + dr[None, :], mask=row_ok[:, None], other=0.0)

    seqlen = tl.load(SEQ + b)
    # Every split covers split_len tokens (sized from the max seqlen), so programs carry equal work
    # however seqlens vary; the last split also takes any tail beyond num_splits * split_len.
    start = split * split_len
    end = tl.where(split == num_splits - 1, seqlen, tl.minimum(start + split_len, seqlen))
    if not ONE_SPLIT:
        if start >= seqlen:
            return  # the combine skips splits past the sequence's end
    # causal: query s sees keys t < seqlen - S_Q + 1 + s
    limit = seqlen - S_Q + 1 + s_idx

    qk_scale = scale_log2
    if KV_FORMAT == 1:
        qk_scale = qk_scale * tl.load(KSCALE)

    # fp8 caches run their matmuls in fp16: e4m3 -> fp16 is exact and one instruction per pair (bf16 takes
    # a bit-twiddling sequence), and fp16 keeps 3 more mantissa bits of P. q gets a power-of-two scale per row
    # that keeps it inside fp16's range; the scale is undone on the scores.
    cdt = dtype
    if KV_FORMAT != 0:
        cdt = tl.float16
        amax = tl.maximum(tl.max(tl.abs(q.to(tl.float32)), 1), tl.max(tl.abs(qr.to(tl.float32)), 1))
        if QK_FP8:
            # q to e4m3 with one scale per row (token, head); QK^T then runs on fp8 tensor cores.
            q_scale = tl.maximum(amax, 1e-12) / 448.0
            q = (q.to(tl.float32) / q_scale[:, None]).to(tl.float8e4nv)
            qr = (qr.to(tl.float32) / q_scale[:, None]).to(tl.float8e4nv)
        else:
            q_scale = tl.maximum(tl.exp2(tl.ceil(tl.log2(tl.maximum(amax, 1e-30) / 32768.0))), 1.0)
            qr = (qr.to(tl.float32) / q_scale[:, None]).to(tl.float16)
        # fp8 tiles are converted 128 dims at a time, each chunk with its own QK^T partial dot and PV
        # accumulator: the side-effecting conversions keep the chunks in order, so one is live at a time.
        q0 = _q_chunk(Q, q_off, row_ok, 0, q_scale, QK_FP8)
        q1 = _q_chunk(Q, q_off, row_ok, 1, q_scale, QK_FP8)
        q2 = _q_chunk(Q, q_off, row_ok, 2, q_scale, QK_FP8)
        q3 = _q_chunk(Q, q_off, row_ok, 3, q_scale, QK_FP8)

    m_i = tl.full([BLOCK_H], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_H], tl.float32)
    if TRANS:
        # Transposed form: S^T = K Q^T puts the KV tile on the MMA's M axis, so 8 warps
        # split BLOCK_N rows instead of duplicating a 64-row head block (Triton's chained-dot layout).
        acc = tl.zeros([DV, BLOCK_H], tl.float32)
        qt = tl.trans(q)
        qrt = tl.trans(qr)
    elif KV_FORMAT != 0:
        acc0 = tl.zeros([BLOCK_H, DV // 4], tl.float32)
        acc1 = tl.zeros([BLOCK_H, DV // 4], tl.float32)
        acc2 = tl.zeros([BLOCK_H, DV // 4], tl.float32)
        acc3 = tl.zeros([BLOCK_H, DV // 4], tl.float32)
    else:
        acc = tl.zeros([BLOCK_H, DV], tl.float32)

    for t0 in range(start, end, BLOCK_N):
        t = t0 + tl.arange(0, BLOCK_N)
        t_ok = t < end
        if PAGE >= BLOCK_N:
            blk = tl.load(BT + b * stride_btb + t0 // PAGE).to(tl.int64)
        else:
            blk = tl.load(BT + b * stride_btb + t // PAGE, mask=t_ok, other=0).to(tl.int64)
        slot = (t % PAGE).to(tl.int64)
        k_off = blk * stride_kb + slot * stride_kt
        r_off = blk * stride_rb + slot * stride_rt
        if KV_FORMAT == 0:
            kn = tl.load(KV + k_off[:, None] + dv[None, :], mask=t_ok[:, None], other=0.0)
            kr = tl.load(KR + r_off[:, None] + dr[None, :], mask=t_ok[:, None], other=0.0)
            kq = kn
            krq = kr
        else:
            s_off = blk * stride_sb + slot * stride_st
            k8_0, k0 = _k_chunk(KV, KS, k_off, s_off, t_ok, 0, KV_FORMAT)
            k8_1, k1 = _k_chunk(KV, KS, k_off, s_off, t_ok, 1, KV_FORMAT)
            k8_2, k2 = _k_chunk(KV, KS, k_off, s_off, t_ok, 2, KV_FORMAT)
            k8_3, k3 = _k_chunk(KV, KS, k_off, s_off, t_ok, 3, KV_FORMAT)
            if KV_FORMAT == 2:  # FlashMLA layout: the rope is bf16
                krq = tl.load(KR + r_off[:, None] + dr[None, :], mask=t_ok[:, None], other=0.0).to(tl.float16)
            else:
                kr8 = tl.load(KR + r_off[:, None] + dr[None, :], mask=t_ok[:, None], other=0)
                if QK_FP8:
                    krq = kr8.to(tl.float8e4nv, bitcast=True)
                else:
                    krq = _e4m3_to_f16(kr8)
            if QK_FP8:
                qk = tl.dot(q0, tl.trans(k8_0.to(tl.float8e4nv, bitcast=True)))
                qk = tl.dot(q1, tl.trans(k8_1.to(tl.float8e4nv, bitcast=True)), qk)
                qk = tl.dot(q2, tl.trans(k8_2.to(tl.float8e4nv, bitcast=True)), qk)
                qk = tl.dot(q3, tl.trans(k8_3.to(tl.float8e4nv, bitcast=True)), qk)
            else:
                qk = tl.dot(q0, tl.trans(k0))
                qk = tl.dot(q1, tl.trans(k1), qk)
                qk = tl.dot(q2, tl.trans(k2), qk)
                qk = tl.dot(q3, tl.trans(k3), qk)
            qk = tl.dot(qr, tl.trans(krq), qk)

        if TRANS:
            st = tl.dot(kq, qt)
            st = tl.dot(krq, qrt, st)
            s = st * qk_scale  # [BLOCK_N, BLOCK_H]; bf16/fp16 caches only
            keep = t_ok[:, None]
            if CAUSAL:
                keep = keep & (t[:, None] < limit[None, :])
            s = tl.where(keep, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 0))
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m_i - m_use)
            p = tl.exp2(s - m_use[None, :])
            l_i = l_i * alpha + tl.sum(p, 0)
            acc = acc * alpha[None, :]
            acc = tl.dot(tl.trans(kn), p.to(cdt), acc)
        else:
            if KV_FORMAT == 0:
                qk = tl.dot(q, tl.trans(kq))
                qk = tl.dot(qr, tl.trans(krq), qk)
            s = qk * qk_scale  # [BLOCK_H, BLOCK_N]
            if KV_FORMAT != 0:
                s = s * q_scale[:, None]
            keep = t_ok[None, :]
            if CAUSAL:
                keep = keep & (t[None, :] < limit[:, None])
            s = tl.where(keep, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m_i - m_use)
            p = tl.exp2(s - m_use[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            if KV_FORMAT == 0:
                acc = tl.dot(p.to(cdt), kn, acc * alpha[:, None])
            else:
                pc = p.to(cdt)
                acc0 = tl.dot(pc, k0, acc0 * alpha[:, None])
                acc1 = tl.dot(pc, k1, acc1 * alpha[:, None])
                acc2 = tl.dot(pc, k2, acc2 * alpha[:, None])
                acc3 = tl.dot(pc, k3, acc3 * alpha[:, None])
        m_i = m_new

    if TRANS:
        acc = tl.trans(acc)
    empty = l_i == 0.0
    inv = 1.0 / tl.where(empty, 1.0, l_i)
    if KV_FORMAT == 1:
        inv = inv * tl.load(KSCALE)
    lse2 = tl.where(empty, float("-inf"), m_i + tl.log2(tl.where(empty, 1.0, l_i)))
    if ONE_SPLIT:
        o_ptr = OUT + (b * stride_ob + s_idx.to(tl.int64) * stride_os + h_idx.to(tl.int64) * stride_oh)[:, None]
        lse = tl.where(empty, float("inf"), lse2 * 0.6931471805599453)
        tl.store(LSE + b * stride_lb + h_idx * stride_lh + s_idx, lse, mask=row_ok)
    else:
        o_ptr = OP + (b * stride_opb + rows.to(tl.int64) * stride_opr + split * stride_ops)[:, None]
        tl.store(LP + b * stride_lpb + rows.to(tl.int64) * stride_lpr + split, lse2, mask=row_ok)
    if KV_FORMAT == 0:
        tl.store(o_ptr + dv[None, :], (acc * inv[:, None]).to(o_ptr.dtype.element_ty), mask=row_ok[:, None])
    else:
        dc = tl.arange(0, DV // 4)[None, :]
        tl.store(o_ptr + dc, (acc0 * inv[:, None]).to(o_ptr.dtype.element_ty), mask=row_ok[:, None])
        tl.store(o_ptr + DV // 4 + dc, (acc1 * inv[:, None]).to(o_ptr.dtype.element_ty), mask=row_ok[:, None])
        tl.store(o_ptr + DV // 2 + dc, (acc2 * inv[:, None]).to(o_ptr.dtype.element_ty), mask=row_ok[:, None])
        tl.store(o_ptr + 3 * DV // 4 + dc, (acc3 * inv[:, None]).to(o_ptr.dtype.element_ty), mask=row_ok[:, None])


@triton.jit(do_not_specialize=["num_splits"])
def _combine_kernel(
    OP, LP, OUT, LSE, SEQ,
    num_splits, split_len,
    stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
    stride_ob, stride_os, stride_oh,
    stride_lb, stride_lh,
    H, BLOCK_S: tl.constexpr, DV: tl.constexpr, DIRECT: tl.constexpr, PDL: tl.constexpr = False,
):
    # PDL (gluon=5 and 7): launched as a programmatic dependent of the split kernel, which lets it start early; SEQ (the
    # plan's slot counts, not written by the split kernel) is read before the wait for the split kernel's partials, and
    # the partials are loaded beside their LSEs, not after them (a slot the plan gives a sequence is always written).
    r = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    s_idx = r // H
    h_idx = r % H
    dv = tl.arange(0, DV)
    seqlen = tl.load(SEQ + b)
    n_live = tl.minimum(num_splits, tl.cdiv(seqlen, split_len))  # splits past the end wrote nothing
    if DIRECT:
        if n_live == 1:
            return  # a sequence in one piece: the split kernel (gluon=3) wrote its output itself
    if PDL:
        tl.extra.cuda.gdc_wait()
    m = tl.full([1], float("-inf"), tl.float32)
    denom = tl.zeros([1], tl.float32)
    acc = tl.zeros([DV], tl.float32)
    for c0 in range(0, n_live, BLOCK_S):
        sp = c0 + tl.arange(0, BLOCK_S)
        ok = sp < n_live
        lse2 = tl.load(LP + b * stride_lpb + r * stride_lpr + sp, mask=ok, other=float("-inf"))
        m_new = tl.maximum(m, tl.max(lse2, 0))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        scale = tl.exp2(m - m_use)
        w = tl.exp2(lse2 - m_use)
        live = ok & (w > 0.0)
        o = tl.load(OP + b * stride_opb + r * stride_opr + sp[:, None] * stride_ops + dv[None, :],
                    mask=(ok if PDL else live)[:, None], other=0.0)
        acc = acc * scale + tl.sum(tl.where(live[:, None], w[:, None] * o, 0.0), 0)
        denom = denom * scale + tl.sum(w, 0)
        m = m_new
    empty = denom == 0.0
    out = acc / tl.where(empty, 1.0, denom)
    tl.store(OUT + b * stride_ob + s_idx * stride_os + h_idx * stride_oh + dv, out.to(OUT.dtype.element_ty))
    m_use = tl.where(m == float("-inf"), 0.0, m)
    lse = tl.where(empty, float("inf"), (m_use + tl.log2(tl.where(empty, 1.0, denom))) * 0.6931471805599453)
    tl.store(LSE + b * stride_lb + h_idx * stride_lh + s_idx + tl.arange(0, 1), lse)


if interpreted():
    from .interp import patch_interpreter_dot

    patch_interpreter_dot()


@functools.lru_cache(maxsize=None)
def num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # interpreter: a small pretend grid


def gluon_runs_on(device: torch.device) -> bool:
    """Whether the Gluon sm_90 kernels can run on this device (a Hopper GPU, compiled, not interpreted)."""
    if split_kernel_sm90 is None or interpreted() or device.type != "cuda":
        return False
    return torch.cuda.get_device_capability(device) == (9, 0)


def kv_format_of(kv_cache: torch.Tensor, q_dtype: torch.dtype) -> str:
    """Infer the KV format from the cache's dtype and last dim; raise ValueError if none fits."""
    d = kv_cache.shape[-1]
    if kv_cache.dtype == q_dtype:
        if d != D_QK:
            raise ValueError(f"kv_cache last dim is {d}; a {q_dtype} cache needs {D_QK} (512 latent + 64 rope)")
        return "bf16"
    if kv_cache.dtype == torch.float8_e4m3fn:
        if d != D_QK:
            raise ValueError(f"kv_cache last dim is {d}; a per-tensor fp8 cache needs {D_QK}")
        return "fp8"
    if kv_cache.dtype == torch.uint8:
        if d != FP8_LAYOUT_BYTES:
            raise ValueError(f"kv_cache last dim is {d}; FlashMLA's fp8 layout (uint8) needs {FP8_LAYOUT_BYTES} bytes")
        return "fp8_flashmla"
    raise ValueError(
        f"kv_cache dtype {kv_cache.dtype} does not fit q dtype {q_dtype}: expected {q_dtype}, "
        f"torch.float8_e4m3fn (per-tensor fp8 with k_scale) or torch.uint8 (FlashMLA fp8 layout, {FP8_LAYOUT_BYTES} bytes)"
    )


def check_inputs(q, kv_cache, block_table, cache_seqlens, head_dim_v=D_LATENT, k_scale=None, causal=False):
    """Validate shapes, dtypes, devices and layout without touching tensor values. Returns the KV format."""
    for name, t in (("q", q), ("kv_cache", kv_cache), ("block_table", block_table), ("cache_seqlens", cache_seqlens)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if q.dim() != 4:
        raise ValueError(f"q must be 4-D [batch, s_q, h_q, {D_QK}], got shape {tuple(q.shape)}")
    if q.dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"q dtype must be bfloat16 or float16, got {q.dtype}")
    if q.shape[-1] != D_QK:
        raise ValueError(f"q last dim must be {D_QK} (512 latent + 64 rope), got {q.shape[-1]}")
    if q.stride(-1) != 1:
        raise ValueError("q must be contiguous in its last dim")
    batch, s_q, h_q, _ = q.shape
    if batch == 0 or s_q == 0 or h_q == 0:
        raise ValueError(f"q has an empty dim: shape {tuple(q.shape)}")
    if head_dim_v != D_LATENT:
        raise ValueError(f"head_dim_v must be {D_LATENT}, got {head_dim_v}")
    if kv_cache.dim() != 4 or kv_cache.shape[2] != 1:
        raise ValueError(f"kv_cache must be [num_blocks, page_size, 1, {D_QK}], got shape {tuple(kv_cache.shape)}")
    fmt = kv_format_of(kv_cache, q.dtype)
    page = kv_cache.shape[1]
    if page < 1 or page > 256 or page & (page - 1):
        raise ValueError(f"page size (kv_cache dim 1) must be a power of two from 1 to 256, got {page}")
    if not kv_cache.is_contiguous():
        raise ValueError("kv_cache must be contiguous")
    if fmt == "fp8":
        if k_scale is None:
            raise ValueError("a float8_e4m3fn kv_cache needs k_scale (its per-tensor dequant scale)")
        if isinstance(k_scale, torch.Tensor) and (k_scale.numel() != 1 or k_scale.dtype != torch.float32):
            raise ValueError(f"k_scale must be one float32 element, got {k_scale.numel()} x {k_scale.dtype}")
        if isinstance(k_scale, (int, float)) and not (math.isfinite(k_scale) and k_scale > 0):
            raise ValueError(f"k_scale must be a positive finite number, got {k_scale}")
    elif k_scale is not None:
        raise ValueError(f"k_scale is only for a per-tensor fp8 cache, not for {fmt}")
    if block_table.dtype != torch.int32 or block_table.dim() != 2:
        raise ValueError(f"block_table must be 2-D int32 [batch, max_blocks], got {block_table.dtype} {tuple(block_table.shape)}")
    if block_table.shape[0] != batch:
        raise ValueError(f"block_table has {block_table.shape[0]} rows but q has batch {batch}")
    if block_table.stride(-1) != 1:
        raise ValueError("block_table must be contiguous in its last dim")
    if cache_seqlens.dtype != torch.int32 or tuple(cache_seqlens.shape) != (batch,):
        raise ValueError(f"cache_seqlens must be int32 of shape ({batch},), got {cache_seqlens.dtype} {tuple(cache_seqlens.shape)}")
    if not cache_seqlens.is_contiguous():
        raise ValueError("cache_seqlens must be contiguous")
    devs = {t.device for t in (q, kv_cache, block_table, cache_seqlens, k_scale) if isinstance(t, torch.Tensor)}
    if len(devs) != 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devs))}")
    dev = q.device
    if dev.type == "cpu" and not interpreted():
        raise ValueError("CPU tensors run only through the Triton interpreter: set TRITON_INTERPRET=1")
    return fmt


def causal_mode(causal: bool, s_q: int) -> int:
    """The seesaw kernels' CAUSAL: 0 no mask; 1 (s_q 2) only the last key can be hidden, so only a split's last pair
    is masked; 2 every pair is masked."""
    return 0 if not causal or s_q == 1 else (1 if s_q == 2 else 2)


def check_scale(softmax_scale) -> float:
    """softmax_scale (None: 576 ** -0.5) as a float; it must be finite and positive (the kernels take the row
    maximum of unscaled scores)."""
    if softmax_scale is None:
        return D_QK ** -0.5
    if isinstance(softmax_scale, bool) or not isinstance(softmax_scale, numbers.Real):
        raise TypeError(f"softmax_scale must be a real number (a float), got {type(softmax_scale).__name__}")
    if not (math.isfinite(softmax_scale) and softmax_scale > 0):
        raise ValueError(f"softmax_scale must be finite and > 0, got {softmax_scale}")
    return float(softmax_scale)


def check_seqlens(cache_seqlens, block_table, page_size):
    """Value checks (one host sync): seqlens non-negative and covered by the block table.
    Returns (max, total) of the seqlens."""
    s64 = cache_seqlens.to(torch.int64)
    lo, hi, total = (int(v) for v in torch.stack([s64.min(), s64.max(), s64.sum()]).tolist())
    cap = block_table.shape[1] * page_size
    if lo < 0:
        raise ValueError(f"cache_seqlens has a negative entry ({lo})")
    if hi > cap:
        raise ValueError(f"cache_seqlens max {hi} exceeds what the block table covers ({block_table.shape[1]} blocks x page {page_size} = {cap})")
    return hi, total


def default_config(h_q: int, s_q: int) -> Config:
    """Heuristic config used when no tuned table applies."""
    rows = h_q * s_q
    block_h = 64 if rows >= 64 else max(16, triton.next_power_of_2(rows))
    return Config(block_n=32 if block_h >= 64 else 64, block_h=block_h, num_splits=0, num_warps=8 if block_h >= 64 else 4, num_stages=2)


MAX_GRID_SPLITS = 256


def resolve_splits(cfg: Config, batch: int, rows: int, max_seqlen: int, device: torch.device,
                   total_tokens: int | None = None) -> int:
    """Split programs per sequence in the grid. cfg.num_splits (or the auto count) is the splits of an
    average sequence; with total_tokens known and lengths uneven, the grid grows so that each split holds
    about total / (batch * per_seq) tokens and long sequences get more programs, as FlashMLA's scheduler
    balances them. Host-side only: call it at plan time."""
    if persistent(cfg):
        return 1  # its segment plan (schedule()) sizes the partials
    mean = max_seqlen if total_tokens is None else max(1, total_tokens // max(batch, 1))
    groups, sms = triton.cdiv(rows, cfg.block_h), num_sms(device)
    per_seq = cfg.num_splits or auto_splits(batch, groups, mean, sms, cfg.block_n)
    if total_tokens is None or total_tokens >= batch * max_seqlen:
        return per_seq
    target = split_length(mean, per_seq, cfg.block_n)
    if cfg.gluon == 3:
        # Its programs take the pieces longest first (schedule()), so a piece up to one SM's share of the
        # work keeps the SMs balanced; fewer, longer pieces cost fewer prologues and partials.
        target = max(target, split_length(total_tokens * groups, sms, cfg.block_n))
    return int(min(MAX_GRID_SPLITS, max(per_seq, triton.cdiv(max(max_seqlen, 1), target))))


def kv_views(kv_cache: torch.Tensor, fmt: str):
    """(main, rope, scales) views of the cache and their (block, token) strides, in elements. fp8 values are
    viewed as uint8: the kernel converts the bit patterns itself."""
    if fmt == "bf16":
        return kv_cache, kv_cache[..., D_LATENT:], kv_cache
    if fmt == "fp8":
        main = kv_cache.view(torch.uint8)
        return main, main[..., D_LATENT:], kv_cache
    main = kv_cache[..., :D_LATENT]
    scales = kv_cache.view(torch.float32)[..., D_LATENT // 4 : D_LATENT // 4 + 4]
    rope = kv_cache.view(torch.bfloat16)[..., (D_LATENT + 16) // 2 :]
    return main, rope, scales


def alloc_partials(batch: int, rows: int, splits: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    op = torch.empty((batch, rows, splits, D_LATENT), dtype=torch.float32, device=device)
    lp = torch.empty((batch, rows, splits), dtype=torch.float32, device=device)
    return op, lp


def split_length(max_seqlen: int, splits: int, block_n: int) -> int:
    """Tokens per split: max_seqlen over splits, rounded up to whole tiles."""
    return max(1, triton.cdiv(triton.cdiv(max(max_seqlen, 1), splits), block_n)) * block_n


def schedule(cfg: Config, cache_seqlens: torch.Tensor, splits: int, max_seqlen: int,
             total_tokens: int | None = None, rows: int | None = None):
    """The order in which the programs of gluon 3 and 6 take the (sequence, split) pieces: longest first, so that
    the short pieces fill the last wave (list scheduling, as FlashMLA's metadata balances its SMs). An
    int32 tensor of piece indices b * splits + split, built on the device (no host sync) once per decode
    step; None for kernels that take the grid in its natural order, and where total_tokens says the lengths
    are equal. Any permutation is correct: an order built from other seqlens or another max_seqlen only
    balances worse. For gluon=5 and 7 (rows = s_q * h_q needed): its Segments plan, built on the host from the
    seqlens (one host sync); it balances these seqlens and stays correct for any others."""
    if persistent(cfg):
        if rows is None:
            raise ValueError(f"schedule() needs rows (s_q * h_q) for gluon={cfg.gluon}")
        return plan_segments(cache_seqlens, triton.cdiv(rows, 64), num_sms(cache_seqlens.device), cache_seqlens.device)
    if not takes_order(cfg) or (total_tokens is not None and total_tokens >= cache_seqlens.shape[0] * max_seqlen):
        return None
    split_len = split_length(max_seqlen, splits, cfg.block_n)
    sl = cache_seqlens.to(torch.int64)[:, None]
    start = torch.arange(splits, device=sl.device) * split_len
    end = torch.minimum(start + split_len, sl)
    end[:, -1:] = sl  # the last split takes the rest, as in the kernels
    return torch.argsort((end - start).clamp_min(0).flatten(), descending=True, stable=True).to(torch.int32)


SEGMENT_COST_TILES = 5  # a segment's fixed cost (q, first tiles, epilogue) in 64-token tiles, as FlashMLA's scheduler counts it


@dataclass(frozen=True)
class Segments:
    """gluon=5's plan: the (sequence, token range) segments that the programs of each SM part walk."""

    table: torch.Tensor  # int32 [n, 4]: sequence, start, end (-1: its length at run time), slot (-1: its only segment)
    ptr: torch.Tensor  # int32 [parts + 1]: part p walks table[ptr[p]:ptr[p + 1]]
    counts: torch.Tensor  # int32 [batch]: segments per sequence (1: written whole by the split kernel)
    parts: int
    slots: int  # the most segments of one sequence: the partial buffers' slot count
    combine: bool  # some sequence is split, so the combine runs


def plan_segments(seqlens, groups: int, sms: int, device, block_n: int = 64) -> Segments:
    """Cut the batch's tiles, plus SEGMENT_COST_TILES per segment, into one equal share for each of
    sms // groups parts, walking the sequences in order (FlashMLA's metadata does the same on the device).
    A cut inside a sequence falls between pairs of tiles. Every sequence gets a segment, an empty one too, and
    its last segment runs to the sequence's length at run time, so the plan is correct for any seqlens the
    block table reaches; it balances the ones it was made from. Host-side: a tensor of seqlens costs one sync."""
    lens = [int(x) for x in (seqlens.tolist() if isinstance(seqlens, torch.Tensor) else seqlens)]
    parts = max(1, sms // max(1, groups))
    tiles = [-(-max(L, 0) // block_n) for L in lens]
    share = -(-(sum(tiles) + len(lens) * SEGMENT_COST_TILES) // parts) + SEGMENT_COST_TILES  # FlashMLA's payload
    while True:  # the cuts' costs and rounding can overfill the last part: then grow the share a little
        segs, ptr, counts, last = _cut(tiles, share, parts, block_n)
        if last <= share or share > 2 * SEGMENT_COST_TILES + max(tiles, default=0):
            break
        share += 1
    for seg in segs:
        if counts[seg[0]] == 1:
            seg[3] = -1
    i32 = dict(dtype=torch.int32, device=device)
    return Segments(torch.tensor(segs or [[0, 0, 0, 0]], **i32).flatten(), torch.tensor(ptr, **i32),
                    torch.tensor(counts, **i32), len(ptr) - 1, max(counts, default=0), any(c > 1 for c in counts))


def _cut(tiles: list[int], share: int, parts: int, block_n: int):
    """plan_segments' walk at one share: (segments [b, start, end, slot], part offsets, counts, last part's load);
    end -1 marks a sequence's last segment."""
    segs, ptr, counts = [], [0], [0] * len(tiles)
    part, used = 0, 0
    for b, tb in enumerate(tiles):
        t = 0
        while t < tb or counts[b] == 0:
            room = share - used - SEGMENT_COST_TILES
            if room < min(2, tb - t) and part < parts - 1:
                part, used = part + 1, 0
                ptr.append(len(segs))
                continue
            take = tb - t if part == parts - 1 else min(tb - t, room)
            if take < tb - t:
                take -= take % 2
            segs.append([b, t * block_n, -1 if t + take == tb else (t + take) * block_n, counts[b]])
            counts[b] += 1
            used += take + SEGMENT_COST_TILES
            t += take
    ptr.append(len(segs))
    return segs, ptr, counts, used


def _launch_persistent(q, main, block_table, cache_seqlens, out, lse, softmax_scale, causal, plan: Segments | None,
                       partials, chunks: bool):
    """gluon=5 and 7 (chunks): the persistent seesaw kernel over a segment plan (built here, with a host sync, if not
    given), then the combine for the sequences it split (their slot counts stand in for seqlens, one token per slot)."""
    batch, s_q, h_q, _ = q.shape
    rows, groups = s_q * h_q, triton.cdiv(s_q * h_q, 64)
    if plan is None:
        plan = plan_segments(cache_seqlens, groups, num_sms(q.device), q.device)
    if plan.combine and (partials is None or partials[0].shape[2] < plan.slots):
        partials = alloc_partials(batch, rows, max(plan.slots, 1), q.device)
    op, lp = partials if plan.combine else (out, lse)
    kd, rd, use_tma = gluon_descriptors(main)
    LAST_COMPILED["split"] = split_kernel_ps[(plan.parts * groups,)](
        q, main, kd, rd, block_table, cache_seqlens, plan.table, plan.ptr, op, lp, out, lse,
        softmax_scale * LOG2E,
        q.stride(0), q.stride(1), q.stride(2), main.stride(0), main.stride(1), block_table.stride(0),
        *(op.stride()[:3] + lp.stride()[:2] if plan.combine else (0,) * 5),
        out.stride(0), out.stride(1), out.stride(2), lse.stride(0), lse.stride(1),
        h_q, s_q, PAGE=main.shape[1], CAUSAL=causal_mode(causal, s_q), DV=D_LATENT, DR=D_ROPE, USE_TMA=use_tma,
        CHUNKS=chunks and use_tma, num_warps=4,
    )
    if plan.combine:
        _combine_kernel[(rows, batch)](
            op, lp, out, lse, plan.counts, max(plan.slots, 1), 1,
            op.stride(0), op.stride(1), op.stride(2), lp.stride(0), lp.stride(1),
            out.stride(0), out.stride(1), out.stride(2), lse.stride(0), lse.stride(1),
            h_q, BLOCK_S=min(16, max(2, triton.next_power_of_2(max(plan.slots, 1)))), DV=D_LATENT, DIRECT=True,
            PDL=True, num_warps=4, launch_pdl=True,
        )
    return out, lse


def launch(q, kv_cache, block_table, cache_seqlens, out, lse, softmax_scale, causal, cfg: Config, splits: int,
           fmt: str, k_scale=None, partials=None, max_seqlen=None, order=None):
    """Enqueue the kernels. No checks, no host syncs; allocates partials only if not given.
    max_seqlen sizes the splits (default: what the block table covers); an underestimate stays
    correct, as the last split takes the rest. order (from schedule(), gluon 3 and 6, else ignored) is the
    order in which programs take the pieces; without it they go in batch order. For gluon=5 and 7 it is the
    segment plan (schedule()); without one, launch builds it, which costs a host sync."""
    batch, s_q, h_q, _ = q.shape
    rows = s_q * h_q
    page = kv_cache.shape[1]
    main, rope, scales = kv_views(kv_cache, fmt)
    if persistent(cfg):
        return _launch_persistent(q, main, block_table, cache_seqlens, out, lse, softmax_scale, causal, order, partials,
                                  cfg.gluon == 7)
    split_len = split_length(block_table.shape[1] * page if max_seqlen is None else max_seqlen, splits, cfg.block_n)
    if partials is None and splits > 1:
        partials = alloc_partials(batch, rows, splits, q.device)
    op, lp = partials if splits > 1 else (out, lse)
    if k_scale is None:
        ks = lse  # unused pointer
    else:
        ks = k_scale
    grid = (triton.cdiv(rows, cfg.block_h), splits, batch)
    if cfg.gluon == 4:
        # per-tensor fp8 (mla_gluon_fp8.py): one warpgroup; the cache as e4m3 bytes, k_scale by pointer
        LAST_COMPILED["split"] = split_kernel_fp8[grid](
            q, main, block_table, cache_seqlens, ks, op, lp, out, lse,
            softmax_scale * LOG2E, splits, split_len,
            q.stride(0), q.stride(1), q.stride(2), main.stride(0), main.stride(1), block_table.stride(0),
            *(op.stride()[:3] + lp.stride()[:2] if splits > 1 else (0,) * 5),
            out.stride(0), out.stride(1), out.stride(2), lse.stride(0), lse.stride(1),
            h_q, s_q, PAGE=page, BLOCK_H=cfg.block_h, BLOCK_N=cfg.block_n, STAGES=cfg.num_stages,
            ONE_SPLIT=splits == 1, CAUSAL=bool(causal) and s_q > 1, DV=D_LATENT, DR=D_ROPE, num_warps=cfg.num_warps,
        )
    elif cfg.gluon == 6:
        # per-tensor fp8 (mla_gluon_fp8r.py): one warpgroup, two at 64 rows; the cache as e4m3 bytes, k_scale by
        # pointer; with an order, a 1-D grid over the pieces (an unused pointer without one)
        if order is not None:
            grid = (grid[0] * splits * batch,)
        LAST_COMPILED["split"] = split_kernel_fp8r[grid](
            q, main, block_table, cache_seqlens, cache_seqlens if order is None else order, ks, op, lp, out, lse,
            softmax_scale * LOG2E, splits, split_len,
            q.stride(0), q.stride(1), q.stride(2), main.stride(0), main.stride(1), block_table.stride(0),
            *(op.stride()[:3] + lp.stride()[:2] if splits > 1 else (0,) * 5),
            out.stride(0), out.stride(1), out.stride(2), lse.stride(0), lse.stride(1),
            h_q, s_q, PAGE=page, BLOCK_H=cfg.block_h, BLOCK_N=cfg.block_n, STAGES=cfg.num_stages,
            ONE_SPLIT=splits == 1, CAUSAL=bool(causal) and s_q > 1, DV=D_LATENT, DR=D_ROPE, ORDERED=order is not None,
            num_warps=cfg.num_warps,
        )
    elif cfg.gluon:
        # gluon 2 and 3: 4 warps here plus a 4-warp worker partition; 3 also takes TMA descriptors over the cache
        kernel, warps = {1: (split_kernel_sm90, 8), 2: (split_kernel_ws, 4), 3: (split_kernel_ss, 4)}[cfg.gluon]
        extra, tma, ords = {}, (), ()
        if cfg.gluon == 3:
            kd, rd, use_tma = gluon_descriptors(main)
            extra, tma = dict(USE_TMA=use_tma, ORDERED=order is not None), (kd, rd)
            ords = (cache_seqlens if order is None else order,)  # an unused pointer without an order
            if order is not None:
                grid = (grid[0] * splits * batch,)
        LAST_COMPILED["split"] = kernel[grid](
            q, main, *tma, block_table, cache_seqlens, *ords, op, lp, out, lse,
            softmax_scale * LOG2E, splits, split_len,
            q.stride(0), q.stride(1), q.stride(2), main.stride(0), main.stride(1), block_table.stride(0),
            *(op.stride()[:3] + lp.stride()[:2] if splits > 1 else (0,) * 5),
            out.stride(0), out.stride(1), out.stride(2), lse.stride(0), lse.stride(1),
            h_q, s_q, PAGE=page, BLOCK_N=cfg.block_n, STAGES=cfg.num_stages,
            ONE_SPLIT=splits == 1, CAUSAL=causal_mode(causal, s_q) if cfg.gluon == 3 else bool(causal) and s_q > 1,
            DV=D_LATENT, DR=D_ROPE, num_warps=warps, **extra,
        )
    else:
        LAST_COMPILED["split"] = _split_kernel[grid](
            q, main, rope, scales, block_table, cache_seqlens, ks, op, lp, out, lse,
            softmax_scale * LOG2E, splits, split_len,
            q.stride(0), q.stride(1), q.stride(2),
            main.stride(0), main.stride(1), rope.stride(0), rope.stride(1), scales.stride(0), scales.stride(1),
            block_table.stride(0),
            *(op.stride()[:3] + lp.stride()[:2] if splits > 1 else (0,) * 5),
            out.stride(0), out.stride(1), out.stride(2),
            lse.stride(0), lse.stride(1),
            h_q, s_q, PAGE=page, BLOCK_H=cfg.block_h, BLOCK_N=cfg.block_n,
            ONE_SPLIT=splits == 1, CAUSAL=bool(causal) and s_q > 1, KV_FORMAT=_FMT_ID[fmt], TRANS=bool(cfg.trans), QK_FP8=bool(cfg.qk_fp8),
            DV=D_LATENT, DR=D_ROPE, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        )
    if splits > 1:
        _combine_kernel[(rows, batch)](
            op, lp, out, lse, cache_seqlens, splits, split_len,
            op.stride(0), op.stride(1), op.stride(2), lp.stride(0), lp.stride(1),
            out.stride(0), out.stride(1), out.stride(2),
            lse.stride(0), lse.stride(1),
            h_q, BLOCK_S=min(16, max(2, triton.next_power_of_2(splits))), DV=D_LATENT, DIRECT=cfg.gluon == 3, num_warps=4,
        )
    return out, lse


def mla_decode(q, kv_cache, block_table, cache_seqlens, head_dim_v=D_LATENT, softmax_scale=None, causal=False,
               config: Config | None = None, k_scale=None, validate=True):
    """FlashMLA-style decode: returns (out [b, s_q, h_q, 512] in q.dtype, lse [b, h_q, s_q] fp32).

    validate=True also checks seqlen values against the block table, which costs one host sync.
    """
    fmt = check_inputs(q, kv_cache, block_table, cache_seqlens, head_dim_v, k_scale, causal)
    batch, s_q, h_q, _ = q.shape
    page = kv_cache.shape[1]
    cfg = config or default_config(h_q, s_q)
    bad = check_config(cfg, fmt, sm90=gluon_runs_on(q.device) if cfg.gluon else None)
    if bad:
        raise ValueError("invalid config " + cfg.key() + ": " + "; ".join(bad))
    if validate:
        max_seqlen, total = check_seqlens(cache_seqlens, block_table, page)
    else:
        max_seqlen, total = block_table.shape[1] * page, None
    softmax_scale = check_scale(softmax_scale)
    if isinstance(k_scale, (int, float)):
        k_scale = torch.tensor([float(k_scale)], dtype=torch.float32, device=q.device)
    splits = resolve_splits(cfg, batch, s_q * h_q, max(max_seqlen, 1), q.device, total)
    out = torch.empty((batch, s_q, h_q, D_LATENT), dtype=q.dtype, device=q.device)
    lse = torch.empty((batch, h_q, s_q), dtype=torch.float32, device=q.device)
    order = schedule(cfg, cache_seqlens, splits, max_seqlen, total, rows=s_q * h_q)
    return launch(q, kv_cache, block_table, cache_seqlens, out, lse, softmax_scale, causal, cfg, splits, fmt, k_scale,
                  max_seqlen=max_seqlen, order=order)
