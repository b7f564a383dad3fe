"""Hopper (sm_90) split kernel in Gluon for per-tensor fp8 caches (gluon=4): bf16 tiles dequantized in shared memory."""
from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, warpgroup_mma, warpgroup_mma_wait

# Design (for the memory-bound shapes: 16 or 32 query rows per sequence). One warpgroup, one partition.
# - The KV tokens are the MMAs' M axis (transposed form): S^T [64 tokens, BLOCK_H rows] = K . Q^T, and
#   O^T [512 dims, BLOCK_H] += V^T . P^T, so the 16 or 32 query rows are the N of m64nBLOCK_Hk16 wgmma instead of
#   being padded to M = 64. M = 64 is also why a tile holds 64 tokens.
# - q (BLOCK_H rows x 576 dims) goes to shared memory once: the B operand of every S^T (q^T, K-major).
# - fp8 tiles of 64 tokens (576 bytes each) arrive by cp.async into a ring of STAGES buffers (tile i+STAGES-1 is
#   requested before tile i is worked on); rows past the split's end re-read its last live token, so only finite
#   cache values are ever loaded; any page size.
# - Each tile is dequantized once, by all 128 threads: 8-byte vectors of e4m3 read from shared memory, converted
#   exactly (_e4m3x4_to: bit moves and one bf16 multiply per pair; no k_scale) and stored as the bf16 tile (latent
#   as two [64, 256] halves, rope [64, 64]; NVMMA layouts). The scores of the first half start (async wgmma) while
#   the second half is converted. The bf16 tile is the A operand of S^T (K-major) and, permuted, of O^T (V^T,
#   MN-major). The MMAs run in bf16 with fp32 accumulation (in fp16 when q is fp16: e4m3 is exact in both).
# - The per-tensor k_scale is a scalar: it multiplies the scores' scale and the output, never the tile.
# - Online softmax along the tokens (axis 0), one running max and sum per query row (a column); P^T goes to shared
#   memory.
# - Epilogue as the other split kernels: out and lse (natural log, +inf for empty rows) with one split, else fp32
#   partials and the log2-unit lse that _combine_kernel reads.
# Shared memory: the 16-bit tile 72 KB, q 18 or 36 KB, P^T 2 or 4 KB, STAGES x 36 KB of fp8; one program per SM.

NEG_INIT = gl.constexpr(-1.0e30)  # the running max starts finite, so a row with every key masked gives p = 0, not NaN


@gluon.jit
def _e4m3x4_to(x, dtype: gl.constexpr):
    """uint8 e4m3 codes -> bf16 (or fp16, for fp16 q), exactly; four codes per 32-bit register. fp16: one cvt per pair.
    bf16: per pair, a byte permute that also replicates each sign, a shift and a mask give the bf16 bits of
    value * 2^-120 (a bf16 subnormal for an e4m3 subnormal), and a bf16 multiply by 2^120 (denormals kept) restores
    the value. Triton's own e4m3 -> bf16 takes one F2F per element, a slow conversion unit. The two NaN codes give
    +-480 on the bf16 path; the kernel never loads a code outside the live tokens."""
    if dtype == gl.float16:
        return gl.inline_asm_elementwise(
            "{ .reg .b16 lo, hi; mov.b32 {lo, hi}, $2; cvt.rn.f16x2.e4m3x2 $0, lo; cvt.rn.f16x2.e4m3x2 $1, hi; }",
            "=r,=r,r", [x], dtype=gl.float16, is_pure=True, pack=4)
    else:
        return gl.inline_asm_elementwise(
            "{ .reg .b32 a, b, c; mov.b32 c, 0x7B807B80;"
            " prmt.b32 a, $2, 0, 0x9180; prmt.b32 b, $2, 0, 0xB3A2;"
            " shl.b32 a, a, 4; shl.b32 b, b, 4;"
            " and.b32 a, a, 0x87F087F0; and.b32 b, b, 0x87F087F0;"
            " mul.rn.bf16x2 $0, a, c; mul.rn.bf16x2 $1, b, c; }",
            "=r,=r,r", [x], dtype=gl.bfloat16, is_pure=True, pack=4)


@gluon.jit
def _zero(j):
    """0, made at run time from j. Buffers indexed with it get their wgmma descriptors built in the loop: built
    once before it, the loop-invariant 64-bit descriptors fill the registers (as in mla_gluon_ss.py)."""
    return gl.inline_asm_elementwise("mov.u32 $0, 0;", "=r,r", [j], dtype=gl.int32, is_pure=False, pack=1)


@gluon.jit
def _issue_tile(KV, BT, lat8, rope8, b, t0, end, stride_kb, stride_kt, stride_btb,
                PAGE: gl.constexpr, BLOCK_N: gl.constexpr, cpl: gl.constexpr, cpr: gl.constexpr):
    """cp.async one fp8 tile (512 latent and 64 rope bytes per token) into shared memory. Rows past `end` re-read
    the last live token, so the tile holds only finite cache values; their scores are masked."""
    cv = gl.arange(0, 512, layout=gl.SliceLayout(0, cpl))
    cr = gl.arange(0, 64, layout=gl.SliceLayout(0, cpr))
    if PAGE % BLOCK_N == 0:
        # The tile lies in one page (t0 is a multiple of BLOCK_N), and so does its last live token: one block-table
        # entry, one 64-bit base, 32-bit row offsets.
        blk = gl.load(BT + b * stride_btb + t0 // PAGE).to(gl.int64)
        base = KV + blk * stride_kb + (t0 % PAGE).to(gl.int64) * stride_kt
        r = gl.minimum(gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, cpl)), end - 1 - t0)
        async_copy.async_copy_global_to_shared(lat8, base + gl.expand_dims(r * stride_kt, 1) + gl.expand_dims(cv, 0))
        rr = gl.minimum(gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, cpr)), end - 1 - t0)
        async_copy.async_copy_global_to_shared(rope8, base + 512 + gl.expand_dims(rr * stride_kt, 1)
                                               + gl.expand_dims(cr, 0))
    else:
        t = gl.minimum(t0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, cpl)), end - 1)
        blk = gl.load(BT + b * stride_btb + t // PAGE).to(gl.int64)
        row = blk * stride_kb + (t % PAGE).to(gl.int64) * stride_kt
        async_copy.async_copy_global_to_shared(lat8, KV + gl.expand_dims(row, 1) + gl.expand_dims(cv, 0))
        tr = gl.minimum(t0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, cpr)), end - 1)
        blkr = gl.load(BT + b * stride_btb + tr // PAGE).to(gl.int64)
        rowr = blkr * stride_kb + (tr % PAGE).to(gl.int64) * stride_kt + 512
        async_copy.async_copy_global_to_shared(rope8, KV + gl.expand_dims(rowr, 1) + gl.expand_dims(cr, 0))


@gluon.jit
def _bounds(SEQ, ORD, num_splits, split_len, groups, ORDERED: gl.constexpr):
    """This program's row group, sequence and split, the sequence's length and the split's tokens [start, end): the
    last split takes the rest. A 3-D grid (row group, split, sequence), or with ORDERED a 1-D grid whose program i
    takes row group i % groups of the piece b * num_splits + split listed at ORD[i // groups]."""
    if ORDERED:
        pid_h = gl.program_id(0) % groups
        piece = gl.load(ORD + gl.program_id(0) // groups)
        split = piece % num_splits
        b = (piece // num_splits).to(gl.int64)
    else:
        pid_h = gl.program_id(0)
        split = gl.program_id(1)
        b = gl.program_id(2).to(gl.int64)
    seqlen = gl.load(SEQ + b)
    start = split * split_len
    end = gl.where(split == num_splits - 1, seqlen, gl.minimum(start + split_len, seqlen))
    return pid_h, b, split, seqlen, start, end


@gluon.jit
def _prefetch(KV, BT, lat8, rope8, b, start, end, n_tiles, stride_kb, stride_kt, stride_btb,
              PAGE: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr, cpl: gl.constexpr, cpr: gl.constexpr):
    """Request the first STAGES - 1 tiles (one commit group each, empty past the split's end)."""
    for i in gl.static_range(STAGES - 1):
        if i < n_tiles:
            _issue_tile(KV, BT, lat8.index(i), rope8.index(i), b, start + i * BLOCK_N, end,
                        stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, cpl, cpr)
        async_copy.commit_group()


@gluon.jit
def _tile_ready(KV, BT, lat8, rope8, b, start, end, i, n_tiles, stride_kb, stride_kt, stride_btb,
                PAGE: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr, cpl: gl.constexpr,
                cpr: gl.constexpr):
    """Wait for tile i's copies (with one stage, request it first), then request tile i + STAGES - 1 into the stage
    that tile i - 1 used."""
    if STAGES == 1:
        _issue_tile(KV, BT, lat8.index(0), rope8.index(0), b, start + i * BLOCK_N, end,
                    stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, cpl, cpr)
        async_copy.commit_group()
    async_copy.wait_group(0 if STAGES == 1 else STAGES - 2)
    # Every thread's copies of tile i landed; every warp is done with tile i-1 (each waited for its matmuls).
    gl.thread_barrier()
    if STAGES > 1:
        nxt = i + STAGES - 1
        if nxt < n_tiles:
            _issue_tile(KV, BT, lat8.index(nxt % STAGES), rope8.index(nxt % STAGES), b, start + nxt * BLOCK_N, end,
                        stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, cpl, cpr)
        async_copy.commit_group()


@gluon.jit
def _softmax_step(s, qk_scale, t, end, limit, m_i, CAUSAL: gl.constexpr):
    """Online softmax along the tokens (axis 0) of the scores S^T: (P^T, each row's rescale factor, its new max).
    Keys past the split's end, and with CAUSAL those past a query row's limit, get p = 0."""
    keep = gl.expand_dims(t < end, 1)
    if CAUSAL:
        keep = keep & (gl.expand_dims(t, 1) < gl.expand_dims(limit, 0))
    x = gl.where(keep, s * qk_scale, float("-inf"))
    m_new = gl.maximum(m_i, gl.max(x, 0))
    alpha = gl.exp2(m_i - m_new)
    p = gl.exp2(x - gl.expand_dims(m_new, 0))
    return p, alpha, m_new


@gluon.jit
def _finish(l_i, m_i, k_scale, rows, pid_h, b, split, OUT, LSE, OP, LP,
            stride_ob, stride_os, stride_oh, stride_lb, stride_lh, stride_opb, stride_opr, stride_ops, stride_lpb,
            stride_lpr, H, S_Q, BLOCK_H: gl.constexpr, DW: gl.constexpr, ONE_SPLIT: gl.constexpr,
            out_l: gl.constexpr):
    """Store the rows' lse (natural log, +inf for empty rows) with one split, else the log2-unit lse that
    _combine_kernel reads; return where the output's first DW dims go (out, or the fp32 partials), their row mask,
    and the factor (k_scale / row sum) that finishes O^T. out_l has 4 consecutive dims per thread and a warp on 128
    dims of one row, so each store is 16-byte (fp32) or 8-byte (16-bit) vectors, coalesced along the dims (the MMA
    layout spreads a row's dims over 8 lanes and 2-element column pairs)."""
    empty = l_i == 0.0
    inv = gl.expand_dims(gl.where(empty, 0.0, k_scale / gl.where(empty, 1.0, l_i)), 0)
    lse2 = gl.where(empty, float("-inf"), m_i + gl.log2(gl.where(empty, 1.0, l_i)))
    rows_o = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(0, out_l))
    ok = rows < H * S_Q
    ok2 = gl.expand_dims(rows_o < H * S_Q, 0)
    dv = gl.expand_dims(gl.arange(0, DW, layout=gl.SliceLayout(1, out_l)), 1)
    if ONE_SPLIT:
        s_idx = rows // H
        h_idx = rows % H
        lse = gl.where(empty, float("inf"), lse2 * 0.6931471805599453)
        gl.store(LSE + b * stride_lb + h_idx * stride_lh + s_idx, lse, mask=ok)
        o_off = b * stride_ob + (rows_o // H).to(gl.int64) * stride_os + (rows_o % H).to(gl.int64) * stride_oh
        o_ptr = OUT + gl.expand_dims(o_off, 0) + dv
    else:
        gl.store(LP + b * stride_lpb + rows.to(gl.int64) * stride_lpr + split, lse2, mask=ok)
        o_ptr = OP + gl.expand_dims(b * stride_opb + rows_o.to(gl.int64) * stride_opr + split * stride_ops, 0) + dv
    return o_ptr, ok2, inv


@gluon.jit
def _dequant_half(lat8, k_half, H2: gl.constexpr, dq: gl.constexpr):
    """Latent dims [256 * H2, 256 * H2 + 256) of the fp8 tile in shared memory -> a 16-bit half, 128 dims at a time."""
    for c in gl.static_range(2):
        x = lat8.slice(H2 * 256 + c * 128, 128, dim=1).load(dq)
        k_half.slice(c * 128, 128, dim=1).store(_e4m3x4_to(x, k_half.dtype))


@gluon.jit(do_not_specialize=["num_splits"])
def split_kernel_fp8(
    Q, KV, BT, SEQ, KSCALE, OP, LP, OUT, LSE,
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
    DV: gl.constexpr, DR: gl.constexpr,
):
    gl.static_assert(gl.num_warps() == 4, "the fp8 Gluon kernel runs one warpgroup (4 warps)")
    gl.static_assert((DV == 512) and (DR == 64) and (BLOCK_N == 64), "written for 512 + 64 dims and 64-token tiles")
    gl.static_assert((BLOCK_H == 16) or (BLOCK_H == 32), "BLOCK_H is the wgmma N: 16 or 32 query rows")
    dtype: gl.constexpr = Q.dtype.element_ty  # the MMAs' type: bf16, or fp16 for an fp16 q (e4m3 is exact in both)
    # S^T [64, BLOCK_H] and each O^T half [256, BLOCK_H]: one warpgroup, 16 tokens (dims) per warp per instruction.
    mma_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BLOCK_H, 16])
    col_l: gl.constexpr = gl.SliceLayout(0, mma_l)  # one value per query row
    tok_l: gl.constexpr = gl.SliceLayout(1, mma_l)  # one value per token (or output dim)
    lat_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, 256], dtype)
    rope_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, DR], dtype)
    ql_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_H, 256], dtype)
    qr_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_H, DR], dtype)
    p_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, BLOCK_H], dtype)
    f8_sl: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [1, 0])  # plain rows: 16-byte copies and loads
    # cp.async: 16-byte copies, a warp's 8 threads on 128 bytes of a token, so each thread's copies lie in 4 tokens
    # (4 64-bit addresses, the rest immediate offsets)
    cpl: gl.constexpr = gl.BlockedLayout([1, 16], [4, 8], [4, 1], [1, 0])
    cpr: gl.constexpr = gl.BlockedLayout([1, 16], [8, 4], [4, 1], [1, 0])  # 8 tokens' 64 rope bytes
    # Dequant: 8 codes per thread and load, a warp's 16 threads on one token; each 8 threads' bf16 stores fill one
    # 128-byte swizzled row, so neither the loads nor the stores conflict (gl.bank_conflicts: 0). Rope: 16 codes.
    dq: gl.constexpr = gl.BlockedLayout([1, 8], [2, 16], [4, 1], [1, 0])
    dqr: gl.constexpr = gl.BlockedLayout([1, 16], [8, 4], [4, 1], [1, 0])
    ldq: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])

    pid_h, b, split, seqlen, start, end = _bounds(SEQ, SEQ, num_splits, split_len, 1, False)
    if not ONE_SPLIT:
        if start >= seqlen:
            return  # the combine skips splits past the sequence's end
    k_scale = gl.load(KSCALE)

    lat8 = gl.allocate_shared_memory(gl.uint8, [STAGES, BLOCK_N, DV], f8_sl)
    rope8 = gl.allocate_shared_memory(gl.uint8, [STAGES, BLOCK_N, DR], f8_sl)
    n_tiles = gl.cdiv(end - start, BLOCK_N)
    # the first tiles' copies start before q's load
    _prefetch(KV, BT, lat8, rope8, b, start, end, n_tiles, stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, STAGES, cpl,
              cpr)

    # q rows (row = s * H + h) go to shared memory once: two latent halves and the rope dims.
    rq = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, ldq))
    q_off = b * stride_qb + (rq // H).to(gl.int64) * stride_qs + (rq % H).to(gl.int64) * stride_qh
    q_ok = gl.expand_dims(rq < H * S_Q, 1)
    q_ptr = Q + gl.expand_dims(q_off, 1) + gl.expand_dims(gl.arange(0, 256, layout=gl.SliceLayout(0, ldq)), 0)
    q_lat = gl.allocate_shared_memory(dtype, [2, BLOCK_H, 256], ql_sl)
    q_lat.index(0).store(gl.load(q_ptr, mask=q_ok, other=0.0))
    q_lat.index(1).store(gl.load(q_ptr + 256, mask=q_ok, other=0.0))
    qr_ptr = Q + gl.expand_dims(q_off, 1) + DV + gl.expand_dims(gl.arange(0, DR, layout=gl.SliceLayout(0, ldq)), 0)
    q_rope = gl.allocate_shared_memory(dtype, [1, BLOCK_H, DR], qr_sl)
    q_rope.index(0).store(gl.load(qr_ptr, mask=q_ok, other=0.0))

    k_lat = gl.allocate_shared_memory(dtype, [2, BLOCK_N, 256], lat_sl)
    k_rope = gl.allocate_shared_memory(dtype, [1, BLOCK_N, DR], rope_sl)
    p_s = gl.allocate_shared_memory(dtype, [1, BLOCK_N, BLOCK_H], p_sl)

    rows = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=col_l)
    limit = seqlen - S_Q + 1 + rows // H  # causal: query s sees keys t < seqlen - S_Q + 1 + s
    toks = gl.arange(0, BLOCK_N, layout=tok_l)
    qk_scale = scale_log2 * k_scale

    m_i = gl.full([BLOCK_H], NEG_INIT, gl.float32, col_l)
    l_i = gl.zeros([BLOCK_H], gl.float32, col_l)
    o0 = gl.zeros([256, BLOCK_H], gl.float32, mma_l)
    o1 = gl.zeros([256, BLOCK_H], gl.float32, mma_l)
    s_zero = gl.zeros([BLOCK_N, BLOCK_H], gl.float32, mma_l)

    for i in range(n_tiles):
        t0 = start + i * BLOCK_N
        # tile i's fp8 stage is ready; tile i-1's stage, the bf16 tile and P^T are free
        _tile_ready(KV, BT, lat8, rope8, b, start, end, i, n_tiles, stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N,
                    STAGES, cpl, cpr)
        # Dequantize the first latent half, start its scores, and dequantize the rest while they run.
        z = _zero(i)
        _dequant_half(lat8.index(i % STAGES), k_lat.index(z), 0, dq)
        fence_async_shared()
        gl.thread_barrier()
        s = warpgroup_mma(k_lat.index(z), q_lat.index(z).permute((1, 0)), s_zero, use_acc=False, is_async=True)
        _dequant_half(lat8.index(i % STAGES), k_lat.index(1 + z), 1, dq)
        k_rope.index(z).store(_e4m3x4_to(rope8.index(i % STAGES).load(dqr), dtype))
        fence_async_shared()
        gl.thread_barrier()  # the whole bf16 tile is in shared memory, visible to the wgmma
        s = warpgroup_mma(k_lat.index(1 + z), q_lat.index(1 + z).permute((1, 0)), s, is_async=True)
        s = warpgroup_mma(k_rope.index(z), q_rope.index(z).permute((1, 0)), s, is_async=True)
        s = warpgroup_mma_wait(0, deps=[s])

        p, alpha, m_i = _softmax_step(s, qk_scale, t0 + toks, end, limit, m_i, CAUSAL)
        l_i = l_i * alpha + gl.sum(p, 0)

        p_s.index(z).store(p.to(dtype))
        fence_async_shared()
        gl.thread_barrier()  # all four warps' rows of P^T are in shared memory
        a2 = gl.expand_dims(alpha, 0)
        o0 = warpgroup_mma(k_lat.index(z).permute((1, 0)), p_s.index(z), o0 * a2, is_async=True)
        o1 = warpgroup_mma(k_lat.index(1 + z).permute((1, 0)), p_s.index(z), o1 * a2, is_async=True)
        o0, o1 = warpgroup_mma_wait(0, deps=[o0, o1])

    async_copy.wait_group(0)
    out_l: gl.constexpr = gl.BlockedLayout([4, 1], [32, 1], [1, 4], [0, 1])
    o_ptr, ok2, inv = _finish(l_i, m_i, k_scale, rows, pid_h, b, split, OUT, LSE, OP, LP, stride_ob, stride_os,
                              stride_oh, stride_lb, stride_lh, stride_opb, stride_opr, stride_ops, stride_lpb,
                              stride_lpr, H, S_Q, BLOCK_H, 256, ONE_SPLIT, out_l)
    # one half at a time, so the two layouts of a half are live together, not of both
    gl.store(o_ptr, gl.convert_layout(o0 * inv, out_l).to(o_ptr.dtype.element_ty), mask=ok2)
    gl.store(o_ptr + 256, gl.convert_layout(o1 * inv, out_l).to(o_ptr.dtype.element_ty), mask=ok2)
