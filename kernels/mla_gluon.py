"""Hopper (sm_90) split kernel in Gluon: 64 query rows per program, QK^T split across two warpgroups."""
from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, warpgroup_mma, warpgroup_mma_wait

# Why Gluon: plain Triton gives both warpgroups the whole QK^T tile when QK^T feeds the PV dot (chained-dot
# layout), so each tile's largest matmul runs twice. Here the score tile's layout splits its columns across
# the two warpgroups, P goes through shared memory, and each warpgroup owns 256 of the 512 output dims.


@gluon.jit
def _issue_tile(KV, BT, kv_buf, kr_buf, b, t0, end, stride_kb, stride_kt, stride_btb,
                PAGE: gl.constexpr, BLOCK_N: gl.constexpr, DV: gl.constexpr, DR: gl.constexpr,
                ld: gl.constexpr):
    """cp.async one KV tile (latent and rope) into shared memory. Rows past `end` re-read the last live
    token, so the tile holds only finite cache values; their scores are masked."""
    t = t0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, ld))
    t = gl.minimum(t, end - 1)
    blk = gl.load(BT + b * stride_btb + t // PAGE).to(gl.int64)
    row = blk * stride_kb + (t % PAGE).to(gl.int64) * stride_kt
    cv = gl.arange(0, DV, layout=gl.SliceLayout(0, ld))
    cr = gl.arange(0, DR, layout=gl.SliceLayout(0, ld))
    async_copy.async_copy_global_to_shared(kv_buf, KV + gl.expand_dims(row, 1) + gl.expand_dims(cv, 0))
    async_copy.async_copy_global_to_shared(kr_buf, KV + gl.expand_dims(row, 1) + DV + gl.expand_dims(cr, 0))


@gluon.jit(do_not_specialize=["num_splits"])
def split_kernel_sm90(
    Q, KV, BT, SEQ, OP, LP, OUT, LSE,
    scale_log2,
    num_splits, split_len,
    stride_qb, stride_qs, stride_qh,
    stride_kb, stride_kt,
    stride_btb,
    stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
    stride_ob, stride_os, stride_oh,
    stride_lb, stride_lh,
    H, S_Q, PAGE: gl.constexpr,
    BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
    ONE_SPLIT: gl.constexpr, CAUSAL: gl.constexpr,
    DV: gl.constexpr, DR: gl.constexpr,
):
    BLOCK_H: gl.constexpr = 64
    gl.static_assert(gl.num_warps() == 8, "the sm90 Gluon kernel runs two warpgroups (8 warps)")
    dtype: gl.constexpr = Q.dtype.element_ty
    # Scores [64, BLOCK_N]: each warpgroup computes BLOCK_N/2 columns. Output [64, 512]: 256 each.
    s_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 2], instr_shape=[16, BLOCK_N // 2, 16])
    o_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 2], instr_shape=[16, DV // 2, 16])
    ld: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [8, 1], [1, 0])  # 16-byte vectors along dims
    row_s: gl.constexpr = gl.SliceLayout(1, s_l)
    row_o: gl.constexpr = gl.SliceLayout(1, o_l)
    q_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_H, DV], dtype)
    qr_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_H, DR], dtype)
    kv_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, DV], dtype)
    kr_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, DR], dtype)
    p_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_H, BLOCK_N], dtype)

    pid_h = gl.program_id(0)
    split = gl.program_id(1)
    b = gl.program_id(2).to(gl.int64)

    seqlen = gl.load(SEQ + b)
    start = split * split_len
    end = gl.where(split == num_splits - 1, seqlen, gl.minimum(start + split_len, seqlen))
    if not ONE_SPLIT:
        if start >= seqlen:
            return  # the combine skips splits past the sequence's end

    # q rows (row = s * H + h) go to shared memory once; they are the A operand of every QK^T.
    rows_ld = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, ld))
    ok_ld = rows_ld < H * S_Q
    q_off = b * stride_qb + (rows_ld // H).to(gl.int64) * stride_qs + (rows_ld % H).to(gl.int64) * stride_qh
    cv = gl.arange(0, DV, layout=gl.SliceLayout(0, ld))
    cr = gl.arange(0, DR, layout=gl.SliceLayout(0, ld))
    q = gl.load(Q + gl.expand_dims(q_off, 1) + gl.expand_dims(cv, 0), mask=gl.expand_dims(ok_ld, 1), other=0.0)
    qr = gl.load(Q + gl.expand_dims(q_off, 1) + DV + gl.expand_dims(cr, 0), mask=gl.expand_dims(ok_ld, 1), other=0.0)
    q_s = gl.allocate_shared_memory(dtype, [BLOCK_H, DV], q_sl, q)
    qr_s = gl.allocate_shared_memory(dtype, [BLOCK_H, DR], qr_sl, qr)

    kv_s = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, DV], kv_sl)
    kr_s = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, DR], kr_sl)
    p_s = gl.allocate_shared_memory(dtype, [BLOCK_H, BLOCK_N], p_sl)

    rows = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=row_s)
    limit = seqlen - S_Q + 1 + rows // H  # causal: query s sees keys t < seqlen - S_Q + 1 + s
    cols = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_l))

    m_i = gl.full([BLOCK_H], float("-inf"), gl.float32, row_s)
    l_i = gl.zeros([BLOCK_H], gl.float32, row_s)
    acc = gl.zeros([BLOCK_H, DV], gl.float32, o_l)
    s_zero = gl.zeros([BLOCK_H, BLOCK_N], gl.float32, s_l)

    n_tiles = gl.cdiv(end - start, BLOCK_N)
    for i in gl.static_range(STAGES - 1):
        if i < n_tiles:
            _issue_tile(KV, BT, kv_s.index(i), kr_s.index(i), b, start + i * BLOCK_N, end,
                        stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, DV, DR, ld)
        async_copy.commit_group()

    for i in range(n_tiles):
        t0 = start + i * BLOCK_N
        if STAGES == 1:
            _issue_tile(KV, BT, kv_s.index(0), kr_s.index(0), b, t0, end,
                        stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, DV, DR, ld)
            async_copy.commit_group()
        async_copy.wait_group(0 if STAGES == 1 else STAGES - 2)
        fence_async_shared()
        gl.thread_barrier()  # every thread's copies of tile i landed; every warp is done with tile i-1
        if STAGES > 1:
            nxt = i + STAGES - 1
            if nxt < n_tiles:
                _issue_tile(KV, BT, kv_s.index(nxt % STAGES), kr_s.index(nxt % STAGES), b, start + nxt * BLOCK_N, end,
                            stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, DV, DR, ld)
            async_copy.commit_group()
        k = kv_s.index(i % STAGES)
        kr = kr_s.index(i % STAGES)

        s = warpgroup_mma(q_s, k.permute((1, 0)), s_zero, use_acc=False, is_async=True)
        s = warpgroup_mma(qr_s, kr.permute((1, 0)), s, is_async=True)
        s = warpgroup_mma_wait(0, deps=[s])
        s = s * scale_log2
        t = t0 + cols
        keep = gl.expand_dims(t < end, 0)
        if CAUSAL:
            keep = keep & (gl.expand_dims(t, 0) < gl.expand_dims(limit, 1))
        s = gl.where(keep, s, float("-inf"))
        m_new = gl.maximum(m_i, gl.max(s, 1))
        m_use = gl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = gl.exp2(m_i - m_use)
        p = gl.exp2(s - gl.expand_dims(m_use, 1))
        l_i = l_i * alpha + gl.sum(p, 1)
        m_i = m_new

        p_s.store(p.to(dtype))
        fence_async_shared()
        gl.thread_barrier()  # both warpgroups' halves of P are in shared memory
        acc = acc * gl.expand_dims(gl.convert_layout(alpha, row_o), 1)
        acc = warpgroup_mma(p_s, k, acc, is_async=True)
        acc = warpgroup_mma_wait(0, deps=[acc])

    async_copy.wait_group(0)
    empty = l_i == 0.0
    inv = gl.convert_layout(1.0 / gl.where(empty, 1.0, l_i), row_o)
    lse2 = gl.where(empty, float("-inf"), m_i + gl.log2(gl.where(empty, 1.0, l_i)))
    s_idx = rows // H
    h_idx = rows % H
    ok = rows < H * S_Q
    rows_o = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=row_o)
    ok_o = gl.expand_dims(rows_o < H * S_Q, 1)
    dv = gl.expand_dims(gl.arange(0, DV, layout=gl.SliceLayout(0, o_l)), 0)
    out = acc * gl.expand_dims(inv, 1)
    if ONE_SPLIT:
        lse = gl.where(empty, float("inf"), lse2 * 0.6931471805599453)
        gl.store(LSE + b * stride_lb + h_idx * stride_lh + s_idx, lse, mask=ok)
        o_off = b * stride_ob + (rows_o // H).to(gl.int64) * stride_os + (rows_o % H).to(gl.int64) * stride_oh
        gl.store(OUT + gl.expand_dims(o_off, 1) + dv, out.to(OUT.dtype.element_ty), mask=ok_o)
    else:
        gl.store(LP + b * stride_lpb + rows.to(gl.int64) * stride_lpr + split, lse2, mask=ok)
        o_off = b * stride_opb + rows_o.to(gl.int64) * stride_opr + split * stride_ops
        gl.store(OP + gl.expand_dims(o_off, 1) + dv, out, mask=ok_o)
