"""Hopper (sm_90) split kernel in Gluon, warp-specialized (gluon=2): QK^T split by dims across two warpgroups."""
from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, warpgroup_mma, warpgroup_mma_wait


# Warp-specialized, QK^T split by dims. Each warpgroup is its own partition. It keeps its
# 256 latent dims of q in registers and loads only its own slice of each KV tile (latent dims [256w, 256w+256),
# rope dims [32w, 32w+32)), so its partial score tile covers 288 of the 576 dims. The partials meet in shared
# memory; warpgroup w sums and softmaxes rows [32w, 32w+32) only (exp2 is scarce: no row is done twice),
# writes its rows of P and their rescale factors back, and both warpgroups multiply all of P by their 256 V
# dims. No q reads from shared memory and no cross-warpgroup reductions; two mbarriers per tile.
#
# Measured on the H200 (results/runs/2026-11-28-gluon-ws/): correct, but 1.10-1.13x the time of gluon=1 on
# FlashMLA's shapes, so the shipped sweeps leave it out. Both kernels run the two warpgroups in lockstep, one
# tile at a time, with the tensor cores idle during the softmax and the hand-offs; that, not shared-memory
# traffic, is what this kernel shows to be the cost. It is the scaffolding (partitions, mbarrier hand-offs,
# q in registers) for FlashMLA's schedule, where the warpgroups take alternate tiles.


@gluon.jit
def _issue_slice(KV, BT, kv_buf, kr_buf, b, t0, end, stride_kb, stride_kt, stride_btb,
                 PAGE: gl.constexpr, BLOCK_N: gl.constexpr, WG: gl.constexpr, ld: gl.constexpr, ldr: gl.constexpr):
    """cp.async one warpgroup's slice of a KV tile: 256 latent dims and 32 rope dims. Rows past `end`
    re-read the last live token (their scores are masked)."""
    t = gl.minimum(t0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, ld)), end - 1)
    blk = gl.load(BT + b * stride_btb + t // PAGE).to(gl.int64)
    row = blk * stride_kb + (t % PAGE).to(gl.int64) * stride_kt + WG * 256
    cv = gl.arange(0, 256, layout=gl.SliceLayout(0, ld))
    async_copy.async_copy_global_to_shared(kv_buf, KV + gl.expand_dims(row, 1) + gl.expand_dims(cv, 0))
    tr = gl.minimum(t0 + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, ldr)), end - 1)
    blkr = gl.load(BT + b * stride_btb + tr // PAGE).to(gl.int64)
    rowr = blkr * stride_kb + (tr % PAGE).to(gl.int64) * stride_kt + (512 + WG * 32)
    cr = gl.arange(0, 32, layout=gl.SliceLayout(0, ldr))
    async_copy.async_copy_global_to_shared(kr_buf, KV + gl.expand_dims(rowr, 1) + gl.expand_dims(cr, 0))


@gluon.jit
def _wg_partition(a, config: gl.constexpr, WG: gl.constexpr):
    """One warpgroup's share of a split: partial scores over its 288 dims, softmax, its 256 output dims."""
    (Q, KV, BT, OP, LP, OUT, LSE, kv_s, kr_s, qr_s, xs, p_s, a_s, bars, scale_log2, b, split, seqlen, start, end, pid_h,
     stride_qb, stride_qs, stride_qh, stride_kb, stride_kt, stride_btb,
     stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
     stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q) = a
    PAGE: gl.constexpr = config[0]
    BLOCK_N: gl.constexpr = config[1]
    STAGES: gl.constexpr = config[2]
    ONE_SPLIT: gl.constexpr = config[3]
    CAUSAL: gl.constexpr = config[4]
    BLOCK_H: gl.constexpr = 64
    HALF: gl.constexpr = 32  # score rows this warpgroup owns
    dtype: gl.constexpr = Q.dtype.element_ty
    s_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, BLOCK_N, 16])
    o_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, 256, 16])
    q_dot: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=s_l, k_width=2)
    r_l: gl.constexpr = gl.BlockedLayout([1, BLOCK_N // 8], [4, 8], [4, 1], [1, 0])  # the owned rows' scores
    ld: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
    ldr: gl.constexpr = gl.BlockedLayout([1, 8], [8, 4], [4, 1], [1, 0])
    row_r: gl.constexpr = gl.SliceLayout(1, r_l)
    row_o: gl.constexpr = gl.SliceLayout(1, o_l)

    # This warpgroup's 256 latent dims of q, straight into registers as the A operand of every QK^T.
    rq = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, q_dot))
    q_off = b * stride_qb + (rq // H).to(gl.int64) * stride_qs + (rq % H).to(gl.int64) * stride_qh + WG * 256
    cq = gl.arange(0, 256, layout=gl.SliceLayout(0, q_dot))
    q = gl.load(Q + gl.expand_dims(q_off, 1) + gl.expand_dims(cq, 0), mask=gl.expand_dims(rq < H * S_Q, 1), other=0.0)
    qr = qr_s.index(WG)

    rows = pid_h * BLOCK_H + WG * HALF + gl.arange(0, HALF, layout=row_r)  # the rows this warpgroup softmaxes
    limit = seqlen - S_Q + 1 + rows // H  # causal: query s sees keys t < seqlen - S_Q + 1 + s
    cols = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, r_l))
    m_i = gl.full([HALF], float("-inf"), gl.float32, row_r)
    l_i = gl.zeros([HALF], gl.float32, row_r)
    acc = gl.zeros([BLOCK_H, 256], gl.float32, o_l)
    s_zero = gl.zeros([BLOCK_H, BLOCK_N], gl.float32, s_l)
    mine = xs.index(WG)
    sum_a = xs.index(0).slice(WG * HALF, HALF, dim=0)
    sum_b = xs.index(1).slice(WG * HALF, HALF, dim=0)
    p_mine = p_s.slice(WG * HALF, HALF, dim=0)
    a_mine = a_s.slice(WG * HALF, HALF, dim=0)
    s_bar = bars.index(0)
    p_bar = bars.index(1)

    n_tiles = gl.cdiv(end - start, BLOCK_N)
    for i in gl.static_range(STAGES - 1):
        if i < n_tiles:
            _issue_slice(KV, BT, kv_s.index(WG * STAGES + i), kr_s.index(WG * STAGES + i), b, start + i * BLOCK_N,
                         end, stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, WG, ld, ldr)
        async_copy.commit_group()

    for i in range(n_tiles):
        t0 = start + i * BLOCK_N
        if STAGES == 1:
            _issue_slice(KV, BT, kv_s.index(WG), kr_s.index(WG), b, t0, end,
                         stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, WG, ld, ldr)
            async_copy.commit_group()
        async_copy.wait_group(0 if STAGES == 1 else STAGES - 2)
        fence_async_shared()
        gl.thread_barrier()  # this warpgroup's copies of tile i landed; its warps are done with tile i-1
        if STAGES > 1:
            nxt = i + STAGES - 1
            if nxt < n_tiles:
                _issue_slice(KV, BT, kv_s.index(WG * STAGES + nxt % STAGES), kr_s.index(WG * STAGES + nxt % STAGES),
                             b, start + nxt * BLOCK_N, end, stride_kb, stride_kt, stride_btb, PAGE, BLOCK_N, WG, ld, ldr)
            async_copy.commit_group()
        k = kv_s.index(WG * STAGES + i % STAGES)
        kr = kr_s.index(WG * STAGES + i % STAGES)

        s = warpgroup_mma(q, k.permute((1, 0)), s_zero, use_acc=False, is_async=True)
        s = warpgroup_mma(qr, kr.permute((1, 0)), s, is_async=True)
        s = warpgroup_mma_wait(0, deps=[s])

        # Partials meet: each warpgroup sums the two halves of its own 32 rows. The other warpgroup read
        # this buffer (and P) for tile i-1 before it arrived on p_bar, which this one waited on.
        mine.store(s)
        gl.thread_barrier()
        mbarrier.arrive(s_bar, count=1)
        mbarrier.wait(s_bar, i & 1)
        s = (sum_a.load(r_l) + sum_b.load(r_l)) * scale_log2

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
        p_mine.store(p.to(dtype))
        a_mine.store(alpha)
        fence_async_shared()  # P is read by the other warpgroup's wgmma (the async proxy)
        gl.thread_barrier()
        mbarrier.arrive(p_bar, count=1)
        mbarrier.wait(p_bar, i & 1)

        acc = acc * gl.expand_dims(a_s.load(row_o), 1)
        acc = warpgroup_mma(p_s, k, acc, is_async=True)
        acc = warpgroup_mma_wait(0, deps=[acc])

    async_copy.wait_group(0)
    # Row sums meet the same way (a third round on p_bar) so each warpgroup can normalize its 256 dims.
    empty = l_i == 0.0
    a_mine.store(gl.where(empty, 0.0, 1.0 / gl.where(empty, 1.0, l_i)))
    gl.thread_barrier()
    mbarrier.arrive(p_bar, count=1)
    mbarrier.wait(p_bar, n_tiles & 1)
    out = acc * gl.expand_dims(a_s.load(row_o), 1)

    lse2 = gl.where(empty, float("-inf"), m_i + gl.log2(gl.where(empty, 1.0, l_i)))
    s_idx = rows // H
    h_idx = rows % H
    ok = rows < H * S_Q
    rows_o = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=row_o)
    ok_o = gl.expand_dims(rows_o < H * S_Q, 1)
    dv = gl.expand_dims(WG * 256 + gl.arange(0, 256, layout=gl.SliceLayout(0, o_l)), 0)
    if ONE_SPLIT:
        lse = gl.where(empty, float("inf"), lse2 * 0.6931471805599453)
        gl.store(LSE + b * stride_lb + h_idx * stride_lh + s_idx, lse, mask=ok)
        o_off = b * stride_ob + (rows_o // H).to(gl.int64) * stride_os + (rows_o % H).to(gl.int64) * stride_oh
        gl.store(OUT + gl.expand_dims(o_off, 1) + dv, out.to(OUT.dtype.element_ty), mask=ok_o)
    else:
        gl.store(LP + b * stride_lpb + rows.to(gl.int64) * stride_lpr + split, lse2, mask=ok)
        o_off = b * stride_opb + rows_o.to(gl.int64) * stride_opr + split * stride_ops
        gl.store(OP + gl.expand_dims(o_off, 1) + dv, out, mask=ok_o)


@gluon.jit(do_not_specialize=["num_splits"])
def split_kernel_ws(
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
    gl.static_assert(gl.num_warps() == 4, "the warp-specialized kernel runs one warpgroup per partition")
    gl.static_assert((DV == 512) and (DR == 64), "the dim split is written for 512 latent + 64 rope dims")
    dtype: gl.constexpr = Q.dtype.element_ty
    kv_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, 256], dtype)
    kr_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, 32], dtype)
    qr_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_H, 32], dtype)
    xs_sl: gl.constexpr = gl.SwizzledSharedLayout(vec=2, per_phase=1, max_phase=8, order=[1, 0])
    p_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_H, BLOCK_N], dtype)
    ldq: gl.constexpr = gl.BlockedLayout([1, 8], [8, 4], [4, 1], [1, 0])

    pid_h = gl.program_id(0)
    split = gl.program_id(1)
    b = gl.program_id(2).to(gl.int64)
    seqlen = gl.load(SEQ + b)
    start = split * split_len
    end = gl.where(split == num_splits - 1, seqlen, gl.minimum(start + split_len, seqlen))
    if not ONE_SPLIT:
        if start >= seqlen:
            return  # the combine skips splits past the sequence's end

    # q's rope dims go to shared memory, 32 per warpgroup (the A operand of the small rope QK^T).
    rq = pid_h * BLOCK_H + gl.arange(0, BLOCK_H, layout=gl.SliceLayout(1, ldq))
    q_off = b * stride_qb + (rq // H).to(gl.int64) * stride_qs + (rq % H).to(gl.int64) * stride_qh + DV
    cr = gl.arange(0, 32, layout=gl.SliceLayout(0, ldq))
    qr_s = gl.allocate_shared_memory(dtype, [2, BLOCK_H, 32], qr_sl)
    for w in gl.static_range(2):
        qr = gl.load(Q + gl.expand_dims(q_off, 1) + w * 32 + gl.expand_dims(cr, 0), mask=gl.expand_dims(rq < H * S_Q, 1),
                     other=0.0)
        qr_s.index(w).store(qr)
    fence_async_shared()

    kv_s = gl.allocate_shared_memory(dtype, [2 * STAGES, BLOCK_N, 256], kv_sl)
    kr_s = gl.allocate_shared_memory(dtype, [2 * STAGES, BLOCK_N, 32], kr_sl)
    xs = gl.allocate_shared_memory(gl.float32, [2, BLOCK_H, BLOCK_N], xs_sl)  # partial scores, one per warpgroup
    p_s = gl.allocate_shared_memory(dtype, [BLOCK_H, BLOCK_N], p_sl)
    a_s = gl.allocate_shared_memory(gl.float32, [BLOCK_H], gl.SwizzledSharedLayout(1, 1, 1, [0]))
    bars = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(2):
        mbarrier.init(bars.index(i), count=2)  # one arrival per warpgroup

    args = (Q, KV, BT, OP, LP, OUT, LSE, kv_s, kr_s, qr_s, xs, p_s, a_s, bars, scale_log2, b, split, seqlen, start, end, pid_h,
            stride_qb, stride_qs, stride_qh, stride_kb, stride_kt, stride_btb,
            stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
            stride_ob, stride_os, stride_oh, stride_lb, stride_lh,
            H, S_Q)
    config: gl.constexpr = (PAGE, BLOCK_N, STAGES, ONE_SPLIT, CAUSAL)
    gl.warp_specialize([(_wg_partition, (args, config, 0)), (_wg_partition, (args, config, 1))], [4], [256])
