"""Hopper (sm_90) split kernel in Gluon for per-tensor fp8 caches (gluon=6): fp8 tiles dequantized into registers."""
from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, warpgroup_mma, warpgroup_mma_wait

from .mla_gluon_fp8 import NEG_INIT, _bounds, _e4m3x4_to, _finish, _prefetch, _softmax_step, _tile_ready, _zero

# Design: gluon=4's (tokens on the wgmma M axis, S^T = K Q^T and O^T = V^T P^T, 16 or 32 query rows as the N, fp8
# tiles by cp.async into STAGES buffers), but no bf16 tile: both matmuls take their A operand from registers. With 8
# warps it runs 64 rows: a tile is 128 tokens, each warpgroup converts and multiplies 64 of them for S^T and 256 of
# the 512 output dims for O^T (the wgmma layout's warps [8, 1] split both), one stage.
# - Each thread reads 16-byte vectors of e4m3 codes from shared memory, converts them to fp16 (_e4m3x4_to: one cvt per
#   pair, where bf16 takes four instructions) and the result is relabelled, in registers only, into the wgmma
#   A-fragment layout. So the MMAs run in fp16 for any q: q is staged as fp16 scaled by a power of two per row (exact
#   for a bf16 q, whose 8-bit significands fit fp16's 11), the scale goes back into the row's score scale, and P^T is
#   fp16 (finer than bf16 on [0, 1]). Per tile that is 36 KB + 32 KB of shared-memory
#   reads, where gluon=4 also writes a 72 KB bf16 tile and the wgmma reads it twice. Small shared memory (36 KB a
#   stage, no tile) lets two or three programs share an SM, so one's conversion overlaps another's copies and MMAs.
# - The relabelling permutes dims, not tokens. A thread's 16 bytes of a token are logical dims of the fragment:
#   * S^T: within each 128-dim group (and the 64 rope dims), logical k = kappa*16 + f*8 + tq*2 + e sits at physical
#     dim e + 2f + 4kappa + 32tq (16tq for rope). q is staged in shared memory in the same logical order (a gather,
#     once per program), so the scores are unchanged.
#   * O^T: logical row m = c*64 + w*16 + j*8 + g holds physical dim 128w + 16g + 2c + j; the epilogue undoes it.
#   With 8 warps: logical m = c*128 + w*16 + j*8 + g holds physical dim 64w + 8g + 2c + j (8 codes a token).
# - The fp8 buffer is XOR-swizzled in 16-byte units (row r's unit u at u ^ (r % 8)): the S^T reads (8 lanes: two
#   tokens, four units) and the V^T reads (four tokens, two units; with 8 warps 16 lanes of 8 bytes) are free of
#   bank conflicts.
# Shared memory: STAGES x 36 KB of fp8 (72 KB at 64 rows), q 18, 36 or 72 KB, P^T 2, 4 or 16 KB.

# Register-side loads: thread (warp w, lane 4g + tq) takes 16 consecutive codes of each of its tokens.
# S^T, one 128-dim group of the tile [64 tokens, 128 codes]: tokens 16w + g (+8), codes 32tq .. 32tq + 31.
K_LOAD = gl.DistributedLinearLayout(
    reg_bases=[[0, 1], [0, 2], [0, 4], [0, 8], [0, 16], [8, 0]], lane_bases=[[0, 32], [0, 64], [1, 0], [2, 0], [4, 0]],
    warp_bases=[[16, 0], [32, 0]], block_bases=[], shape=[64, 128])
# S^T, the rope dims [64 tokens, 64 codes]: tokens 16w + g (+8), codes 16tq .. 16tq + 15.
R_LOAD = gl.DistributedLinearLayout(
    reg_bases=[[0, 1], [0, 2], [0, 4], [0, 8], [8, 0]], lane_bases=[[0, 16], [0, 32], [1, 0], [2, 0], [4, 0]],
    warp_bases=[[16, 0], [32, 0]], block_bases=[], shape=[64, 64])
# O^T, 16 tokens of the tile [16 tokens, 512 codes]: tokens 2tq (+1, +8), codes 128w + 16g .. + 15.
V_LOAD = gl.DistributedLinearLayout(
    reg_bases=[[0, 1], [0, 2], [0, 4], [0, 8], [1, 0], [8, 0]], lane_bases=[[2, 0], [4, 0], [0, 16], [0, 32], [0, 64]],
    warp_bases=[[0, 128], [0, 256]], block_bases=[], shape=[16, 512])
# The same codes with each dim's two tokens (2tq, 2tq + 1) side by side, so that a converted pair is already an
# A-fragment register (one byte permute per four codes, before the conversion, instead of one per two after it).
V_PAIRS = gl.DistributedLinearLayout(
    reg_bases=[[1, 0], [0, 1], [0, 2], [0, 4], [0, 8], [8, 0]], lane_bases=[[2, 0], [4, 0], [0, 16], [0, 32], [0, 64]],
    warp_bases=[[0, 128], [0, 256]], block_bases=[], shape=[16, 512])
# 64 rows on two warpgroups (8 warps): 128-token tiles (warp w on tokens 16w ..), and O^T's 512 rows as four blocks of
# 128, so a thread holds 8 codes of a token for V^T: codes 64w + 8g .. + 7.
K_LOAD8 = gl.DistributedLinearLayout(
    reg_bases=[[0, 1], [0, 2], [0, 4], [0, 8], [0, 16], [8, 0]], lane_bases=[[0, 32], [0, 64], [1, 0], [2, 0], [4, 0]],
    warp_bases=[[16, 0], [32, 0], [64, 0]], block_bases=[], shape=[128, 128])
R_LOAD8 = gl.DistributedLinearLayout(
    reg_bases=[[0, 1], [0, 2], [0, 4], [0, 8], [8, 0]], lane_bases=[[0, 16], [0, 32], [1, 0], [2, 0], [4, 0]],
    warp_bases=[[16, 0], [32, 0], [64, 0]], block_bases=[], shape=[128, 64])
V_LOAD8 = gl.DistributedLinearLayout(
    reg_bases=[[0, 1], [0, 2], [0, 4], [1, 0], [8, 0]], lane_bases=[[2, 0], [4, 0], [0, 8], [0, 16], [0, 32]],
    warp_bases=[[0, 64], [0, 128], [0, 256]], block_bases=[], shape=[16, 512])
V_PAIRS8 = gl.DistributedLinearLayout(
    reg_bases=[[1, 0], [0, 1], [0, 2], [0, 4], [8, 0]], lane_bases=[[2, 0], [4, 0], [0, 8], [0, 16], [0, 32]],
    warp_bases=[[0, 64], [0, 128], [0, 256]], block_bases=[], shape=[16, 512])


@gluon.jit
def _softmax_w(s, qk_scale, t, end, limit, m_i, red, mx_l: gl.constexpr, col_l: gl.constexpr, CAUSAL: gl.constexpr,
               BLOCK_N: gl.constexpr, BLOCK_H: gl.constexpr):
    """_softmax_step with the row maxima across the four warps exchanged through red ([4, BLOCK_H] fp32 in shared
    memory; the kernel alternates two by tile parity) behind one barrier."""
    keep = gl.expand_dims(t < end, 1)
    if CAUSAL:
        keep = keep & (gl.expand_dims(t, 1) < gl.expand_dims(limit, 0))
    x = gl.where(keep, s * qk_scale, float("-inf"))
    red.store(gl.max(gl.reshape(x, [4, BLOCK_N // 4, BLOCK_H]), 1))
    gl.thread_barrier()
    m_new = gl.maximum(m_i, gl.convert_layout(gl.max(red.load(mx_l), 0), col_l))
    alpha = gl.exp2(m_i - m_new)
    p = gl.exp2(x - gl.expand_dims(m_new, 0))
    return p, alpha, m_new


@gluon.jit
def _to_k(v, T: gl.constexpr, W: gl.constexpr, a_l: gl.constexpr):
    """Relabel a converted [T tokens, W] tile from physical to logical dims (e + 2f + 4kappa + (W/4)tq ->
    16kappa + 8f + 2tq + e) and hand it to the wgmma as its A operand: no data moves between threads."""
    v = gl.reshape(v, [T, 4, W // 16, 2, 2])  # token, tq, kappa, f, e
    v = gl.permute(v, (0, 2, 3, 1, 4))  # token, kappa, f, tq, e
    return gl.convert_layout(gl.reshape(v, [T, W]), a_l)


@gluon.jit
def _to_v(v, a_l: gl.constexpr, WG: gl.constexpr):
    """Relabel a converted [16 tokens, 512 physical dims] slice as V^T [512 logical rows, 16 tokens], the O^T A
    operand: physical 128w + 16g + 2c + j -> logical 64c + 16w + 8j + g on one warpgroup (WG 1), physical
    64w + 8g + 2c + j -> logical 128c + 16w + 8j + g on two."""
    v = gl.reshape(gl.permute(v, (1, 0)), [4 * WG, 8, 8 // WG, 2, 16])  # w, g, c, j, token
    v = gl.permute(v, (2, 0, 3, 1, 4))  # c, w, j, g, token
    return gl.convert_layout(gl.reshape(v, [512, 16]), a_l)


@gluon.jit
def _from_v(o, BLOCK_H: gl.constexpr, WG: gl.constexpr):
    """O^T [512 logical rows, BLOCK_H] back to physical dim order."""
    o = gl.reshape(o, [8 // WG, 4 * WG, 2, 8, BLOCK_H])  # c, w, j, g, row
    o = gl.permute(o, (1, 3, 0, 2, 4))  # w, g, c, j, row
    return gl.reshape(o, [512, BLOCK_H])


@gluon.jit
def _perm(k, W: gl.constexpr):
    """Physical dim of logical dim k within a W-dim group (the S^T relabelling, for staging q)."""
    KB: gl.constexpr = 3 if W == 128 else 2  # kappa's bits
    return (k & 1) | (((k >> 3) & 1) << 1) | (((k >> 4) & (W // 16 - 1)) << 2) | (((k >> 1) & 3) << (2 + KB))


@gluon.jit(do_not_specialize=["num_splits"])
def split_kernel_fp8r(
    Q, KV, BT, SEQ, ORD, KSCALE, OP, LP, OUT, LSE,
    scale_log2,
    num_splits, split_len,
    stride_qb, stride_qs, stride_qh,
    stride_kb, stride_kt,
    stride_btb,
    stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
    stride_ob, stride_os, stride_oh,
    stride_lb, stride_lh,
    H, S_Q, PAGE: gl.constexpr,
    BLOCK_H: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
    ONE_SPLIT: gl.constexpr, CAUSAL: gl.constexpr,
    DV: gl.constexpr, DR: gl.constexpr, ORDERED: gl.constexpr,
):
    """One program per (row group, split, sequence): a 3-D grid, or with ORDERED a 1-D grid that takes the
    (sequence, split) pieces in the order ORD lists them (schedule(): longest first), a piece's row groups side by
    side."""
    WG: gl.constexpr = gl.num_warps() // 4  # warpgroups: each takes 64 of a tile's tokens for S^T
    gl.static_assert((DV == 512) and (DR == 64), "written for 512 + 64 dims")
    gl.static_assert((WG == 1 and (BLOCK_H == 16 or BLOCK_H == 32) and BLOCK_N == 64)
                     or (WG == 2 and BLOCK_H == 64 and BLOCK_N == 128),
                     "BLOCK_H is the wgmma N: 16 or 32 query rows on 4 warps (64-token tiles), 64 on 8 (128-token tiles)")
    mt: gl.constexpr = gl.float16  # the MMAs' type for any q: e4m3 -> fp16 is one cvt per pair, exact
    mma_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4 * WG, 1],
                                                    instr_shape=[16, BLOCK_H, 16])
    k_ld: gl.constexpr = K_LOAD if WG == 1 else K_LOAD8
    r_ld: gl.constexpr = R_LOAD if WG == 1 else R_LOAD8
    v_ld: gl.constexpr = V_LOAD if WG == 1 else V_LOAD8
    v_pairs: gl.constexpr = V_PAIRS if WG == 1 else V_PAIRS8
    a_l: gl.constexpr = gl.DotOperandLayout(0, mma_l, 2)
    col_l: gl.constexpr = gl.SliceLayout(0, mma_l)  # one value per query row
    tok_l: gl.constexpr = gl.SliceLayout(1, mma_l)  # one value per token
    ql_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_H, 128], mt)
    qr_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_H, DR], mt)
    p_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, BLOCK_H], mt)
    lat_sl: gl.constexpr = gl.SwizzledSharedLayout(16, 1, 8, [1, 0])  # 16-byte units, XOR-swizzled by token
    rope_sl: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [1, 0])  # 64-byte rows: two tokens per 128 bytes
    cpl: gl.constexpr = gl.BlockedLayout([1, 16], [4, 8], [4 * WG, 1], [1, 0])
    cpr: gl.constexpr = gl.BlockedLayout([1, 16], [8, 4], [4 * WG, 1], [1, 0])
    ldq: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4 * WG, 1], [1, 0])

    pid_h, b, split, seqlen, start, end = _bounds(SEQ, ORD, num_splits, split_len, (H * S_Q + BLOCK_H - 1) // BLOCK_H,
                                                  ORDERED)
    if not ONE_SPLIT:
        if start >= seqlen:
            return  # the combine skips splits past the sequence's end
    k_scale = gl.load(KSCALE)

    lat8 = gl.allocate_shared_memory(gl.uint8, [STAGES, BLOCK_N, DV], lat_sl)
    rope8 = gl.allocate_shared_memory(gl.uint8, [STAGES, BLOCK_N, DR], rope_sl)
    n_tiles = gl.cdiv(end - start, BLOCK_N)
    # the first tiles' copies start before q's load
    _prefetch(KV, BT, lat8, rope8, b, start, end, n_tiles, stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, STAGES, cpl,
              cpr)

    # q rows (row = s * H + h), each 128-dim group (and the rope dims) in the S^T operand's logical dim order, as fp16
    # scaled by a power of two per row (sc: the row's largest |q| lands in [128, 256)), so that any bf16 q is exact.
    rq = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, ldq))
    q_off = b * stride_qb + (rq // H).to(gl.int64) * stride_qs + (rq % H).to(gl.int64) * stride_qh
    q_ok = gl.expand_dims(rq < H * S_Q, 1)
    q_row = Q + gl.expand_dims(q_off, 1)
    kq = gl.arange(0, 128, layout=gl.SliceLayout(0, ldq))
    q0 = gl.load(q_row + gl.expand_dims(_perm(kq, 128), 0), mask=q_ok, other=0.0).to(gl.float32)
    q1 = gl.load(q_row + gl.expand_dims(128 + _perm(kq, 128), 0), mask=q_ok, other=0.0).to(gl.float32)
    q2 = gl.load(q_row + gl.expand_dims(256 + _perm(kq, 128), 0), mask=q_ok, other=0.0).to(gl.float32)
    q3 = gl.load(q_row + gl.expand_dims(384 + _perm(kq, 128), 0), mask=q_ok, other=0.0).to(gl.float32)
    kr = gl.arange(0, DR, layout=gl.SliceLayout(0, ldq))
    q4 = gl.load(q_row + gl.expand_dims(DV + _perm(kr, DR), 0), mask=q_ok, other=0.0).to(gl.float32)
    qmax = gl.maximum(gl.maximum(gl.max(gl.abs(q0), 1), gl.max(gl.abs(q1), 1)),
                      gl.maximum(gl.maximum(gl.max(gl.abs(q2), 1), gl.max(gl.abs(q3), 1)), gl.max(gl.abs(q4), 1)))
    sc = (qmax.to(gl.int32, bitcast=True) & 0x7F800000).to(gl.float32, bitcast=True) * 0.0078125  # 2^(e - 7)
    sc = gl.where(sc > 0.0, sc, 1.0)  # zero rows (and those past the heads)
    inv_sc = gl.expand_dims(1.0 / sc, 1)  # exact: a power of two
    q_lat = gl.allocate_shared_memory(mt, [4, BLOCK_H, 128], ql_sl)
    q_lat.index(0).store((q0 * inv_sc).to(mt))
    q_lat.index(1).store((q1 * inv_sc).to(mt))
    q_lat.index(2).store((q2 * inv_sc).to(mt))
    q_lat.index(3).store((q3 * inv_sc).to(mt))
    q_rope = gl.allocate_shared_memory(mt, [1, BLOCK_H, DR], qr_sl)
    q_rope.index(0).store((q4 * inv_sc).to(mt))
    p_s = gl.allocate_shared_memory(mt, [1, BLOCK_N, BLOCK_H], p_sl)
    fence_async_shared()

    rows = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=col_l)
    limit = seqlen - S_Q + 1 + rows // H  # causal: query s sees keys t < seqlen - S_Q + 1 + s
    toks = gl.arange(0, BLOCK_N, layout=tok_l)
    qk_scale = gl.expand_dims(gl.convert_layout(sc, col_l) * (scale_log2 * k_scale), 0)  # per row: q's scale undone

    m_i = gl.full([BLOCK_H], NEG_INIT, gl.float32, col_l)
    o = gl.zeros([DV, BLOCK_H], gl.float32, mma_l)
    s_zero = gl.zeros([BLOCK_N, BLOCK_H], gl.float32, mma_l)
    # On one warpgroup no row sum or maximum crosses the warps through the compiler's reductions (two barriers
    # each): row sums are kept per warp (a warp holds 16 of a tile's tokens; one cross-warp sum at the end), and the
    # tile's row maxima go through shared memory behind one barrier (_softmax_w). Together 6% faster at 16 and 32
    # rows (runs/2026-11-28-fp8-prefetch).
    WSUM: gl.constexpr = WG == 1
    # At 16 rows (QUEUE) S^T's MMAs are queued one group deep: it costs registers, which 32 rows do not have to spare
    # (they spill; measured slower there, faster at 16 rows, runs/2026-11-28-fp8-registers).
    QUEUE: gl.constexpr = BLOCK_H == 16
    # At 64 rows (two warpgroups) the O^T accumulator takes 128 registers a thread: one S^T operand at a time.
    SERIAL: gl.constexpr = WG == 2
    w_l: gl.constexpr = gl.SliceLayout(1, gl.reshape(s_zero, [4, BLOCK_N // 4, BLOCK_H]).type.layout)
    if WSUM:
        l_w = gl.zeros([4, BLOCK_H], gl.float32, w_l)
    else:
        l_i = gl.zeros([BLOCK_H], gl.float32, col_l)

    # At 16 rows the next S^T group's and V^T chunk's codes are read from shared memory before the current ones are
    # converted, so the reads' latency hides behind the conversions (about 7 registers; 4-6% faster at 16 rows,
    # runs/2026-11-28-fp8-prefetch; at 32 rows it spills and gains nothing).
    PF: gl.constexpr = QUEUE
    if WSUM:
        red = gl.allocate_shared_memory(gl.float32, [2, 4, BLOCK_H], gl.SwizzledSharedLayout(1, 1, 1, [1, 0]))
        # [4 warps, BLOCK_H rows], a thread holding the four warps' values of its rows (as col_l holds the rows)
        mx_l: gl.constexpr = gl.DistributedLinearLayout(
            reg_bases=[[0, 1], [0, 8]] + ([[0, 16]] if BLOCK_H == 32 else []) + [[1, 0], [2, 0]],
            lane_bases=[[0, 2], [0, 4], [0, 0], [0, 0], [0, 0]], warp_bases=[[0, 0], [0, 0]], block_bases=[],
            shape=[4, BLOCK_H])
    for i in range(n_tiles):
        t0 = start + i * BLOCK_N
        # tile i's fp8 stage is ready; tile i-1's stage and P^T are free
        _tile_ready(KV, BT, lat8, rope8, b, start, end, i, n_tiles, stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N,
                    STAGES, cpl, cpr)
        lat = lat8.index(i % STAGES)
        z = _zero(i)
        # S^T: one 128-dim group at a time, converted while the previous group's MMAs run; with QUEUE its MMAs are
        # queued behind those, whose operand is then released (wait(1)).
        xk = lat.slice(0, 128, dim=1).load(k_ld)
        if PF:
            xk_n = lat.slice(128, 128, dim=1).load(k_ld)
        a = _to_k(_e4m3x4_to(xk, mt), BLOCK_N, 128, a_l)
        s = warpgroup_mma(a, q_lat.index(z).permute((1, 0)), s_zero, use_acc=False, is_async=True)
        for g in gl.static_range(1, 4):
            if SERIAL:
                s, a = warpgroup_mma_wait(0, deps=[s, a])
            if PF:
                if g < 3:
                    xk_nn = lat.slice((g + 1) * 128, 128, dim=1).load(k_ld)
                else:
                    xr = rope8.index(i % STAGES).load(r_ld)
                a_n = _to_k(_e4m3x4_to(xk_n, mt), BLOCK_N, 128, a_l)
                if g < 3:
                    xk_n = xk_nn
            else:
                a_n = _to_k(_e4m3x4_to(lat.slice(g * 128, 128, dim=1).load(k_ld), mt), BLOCK_N, 128, a_l)
            if QUEUE:
                s = warpgroup_mma(a_n, q_lat.index(g + z).permute((1, 0)), s, is_async=True)
                s, a = warpgroup_mma_wait(1, deps=[s, a])
            elif SERIAL:
                s = warpgroup_mma(a_n, q_lat.index(g + z).permute((1, 0)), s, is_async=True)
            else:
                s, a = warpgroup_mma_wait(0, deps=[s, a])
                s = warpgroup_mma(a_n, q_lat.index(g + z).permute((1, 0)), s, is_async=True)
            a = a_n
        if SERIAL:
            s, a = warpgroup_mma_wait(0, deps=[s, a])
        if not PF:
            xr = rope8.index(i % STAGES).load(r_ld)
        a_r = _to_k(_e4m3x4_to(xr, mt), BLOCK_N, DR, a_l)
        if QUEUE:
            s = warpgroup_mma(a_r, q_rope.index(z).permute((1, 0)), s, is_async=True)
            s, a = warpgroup_mma_wait(1, deps=[s, a])
        elif SERIAL:
            s = warpgroup_mma(a_r, q_rope.index(z).permute((1, 0)), s, is_async=True)
        else:
            s, a = warpgroup_mma_wait(0, deps=[s, a])
            s = warpgroup_mma(a_r, q_rope.index(z).permute((1, 0)), s, is_async=True)
        s, a_r = warpgroup_mma_wait(0, deps=[s, a_r])
        if PF:
            yv = lat.slice(0, 16, dim=0).load(v_ld)  # V^T's first chunk, read while the softmax runs

        if WSUM:
            p, alpha, m_i = _softmax_w(s, qk_scale, t0 + toks, end, limit, m_i, red.index(i % 2), mx_l, col_l, CAUSAL,
                                       BLOCK_N, BLOCK_H)
        else:
            p, alpha, m_i = _softmax_step(s, qk_scale, t0 + toks, end, limit, m_i, CAUSAL)
        if WSUM:
            l_w = l_w * gl.expand_dims(gl.convert_layout(alpha, gl.SliceLayout(0, w_l)), 0) \
                + gl.sum(gl.reshape(p, [4, BLOCK_N // 4, BLOCK_H]), 1)
        else:
            l_i = l_i * alpha + gl.sum(p, 0)

        p_s.index(z).store(p.to(mt))
        fence_async_shared()
        gl.thread_barrier()  # all four warps' rows of P^T are in shared memory
        # O^T += V^T P^T, 16 tokens at a time (an A operand of 512 x 16 is 32 registers a thread), queued as S^T's.
        o = o * gl.expand_dims(alpha, 0)
        if PF:
            yv_n = lat.slice(16, 16, dim=0).load(v_ld)
        else:
            yv = lat.slice(0, 16, dim=0).load(v_ld)
        v = _to_v(_e4m3x4_to(gl.convert_layout(yv, v_pairs), mt), a_l, WG)
        o = warpgroup_mma(v, p_s.index(z).slice(0, 16, dim=0), o, is_async=True)
        for c in gl.static_range(1, BLOCK_N // 16):
            if PF:
                if c < BLOCK_N // 16 - 1:
                    yv_nn = lat.slice((c + 1) * 16, 16, dim=0).load(v_ld)
                v_n = _to_v(_e4m3x4_to(gl.convert_layout(yv_n, v_pairs), mt), a_l, WG)
                if c < BLOCK_N // 16 - 1:
                    yv_n = yv_nn
            else:
                v_n = _to_v(_e4m3x4_to(gl.convert_layout(lat.slice(c * 16, 16, dim=0).load(v_ld), v_pairs), mt), a_l,
                            WG)
            o, v = warpgroup_mma_wait(0, deps=[o, v])
            o = warpgroup_mma(v_n, p_s.index(z).slice(c * 16, 16, dim=0), o, is_async=True)
            v = v_n
        o, v = warpgroup_mma_wait(0, deps=[o, v])

    async_copy.wait_group(0)
    if WSUM:
        l_i = gl.convert_layout(gl.sum(l_w, 0), col_l)
    out_l: gl.constexpr = gl.BlockedLayout([4, 1], [32, 1], [1, 4 * WG], [0, 1])
    o_ptr, ok2, inv = _finish(l_i, m_i, k_scale, rows, pid_h, b, split, OUT, LSE, OP, LP, stride_ob, stride_os,
                              stride_oh, stride_lb, stride_lh, stride_opb, stride_opr, stride_ops, stride_lpb,
                              stride_lpr, H, S_Q, BLOCK_H, DV, ONE_SPLIT, out_l)
    gl.store(o_ptr, gl.convert_layout(_from_v(o * inv, BLOCK_H, WG), out_l).to(o_ptr.dtype.element_ty), mask=ok2)
