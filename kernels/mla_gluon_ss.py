"""Hopper (sm_90) split kernel in Gluon with FlashMLA's seesaw schedule (gluon=3): warpgroups take alternate KV tiles."""
from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.ampere import async_copy
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_wait
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

# The schedule (the idea and its hand-offs follow the write-up of FlashMLA's sm90 decode kernel; the code is ours).
# 64 query rows per program, two warpgroups, one partition each. Warpgroup 0 owns output dims [0, 256), warpgroup 1
# owns [256, 512). KV tiles come in pairs: tile 2j goes to buffer 0 and is scored by warpgroup 0, tile 2j+1 goes to
# buffer 1 and is scored by warpgroup 1, each over all 576 dims, so no score is computed twice. Per pair:
#   wg0: softmax of tile 2j against the running max m -> m0; O_left += P0 V0_left (P0 in registers)
#   wg1: softmax of tile 2j+1 against m0 -> m1; O_right += P1 V1_right; then O_right += (P0 * e^(m0-m1)) V0_right
#   wg0: O_left = O_left * e^(m0-m1) + P1 V1_left; then the scores of the next pair's tile
# So one warpgroup's softmax runs while the other's matmuls keep the tensor cores busy. P0 and P1 pass through
# shared memory, with the maxima and rescale factors. Each warpgroup loads its half of every tile (warpgroup 0:
# latent dims [0, 256); warpgroup 1: [256, 512) and the 64 rope dims) and reloads a half as soon as its last
# reader is done. With pages of 64k tokens in a packed cache a whole tile is one TMA copy per 64 dims (USE_TMA);
# otherwise, and for a split's partial last tile (its rows past the end may hold anything, even NaN), cp.async
# copies re-read the last live token instead.
# Shared memory: q latent 64 KB, two tiles 144 KB, P0 and P1 16 KB; q's rope dims stay in registers.

NEG_INIT = gl.constexpr(-1.0e30)  # the running max starts finite, so a row with every key masked gives p = 0, not NaN


@gluon.jit
def _copy_rows(KV, BT, lat, rope, b, t0, end, stride_kb, stride_kt, stride_btb,
               PAGE: gl.constexpr, RIGHT: gl.constexpr, ld: gl.constexpr, ldr: gl.constexpr):
    """cp.async one warpgroup's half of a 64-token tile. Rows past `end` re-read the last live token (their
    scores are masked)."""
    if PAGE % 64 == 0:
        # The tile lies in one page (t0 is a multiple of 64): one 64-bit base, 32-bit offsets. A tile wholly past
        # the end reads the page of the last live token instead.
        t0 = gl.minimum(t0, (end - 1) // 64 * 64)
        blk = gl.load(BT + b * stride_btb + t0 // PAGE).to(gl.int64)
        base = KV + blk * stride_kb + (t0 % PAGE).to(gl.int64) * stride_kt + RIGHT * 256
        r = gl.minimum(gl.arange(0, 64, layout=gl.SliceLayout(1, ld)), end - 1 - t0)
        cv = gl.arange(0, 256, layout=gl.SliceLayout(0, ld))
        async_copy.async_copy_global_to_shared(lat, base + gl.expand_dims(r * stride_kt, 1) + gl.expand_dims(cv, 0))
        if RIGHT:
            rr = gl.minimum(gl.arange(0, 64, layout=gl.SliceLayout(1, ldr)), end - 1 - t0)
            cr = gl.arange(0, 64, layout=gl.SliceLayout(0, ldr))
            async_copy.async_copy_global_to_shared(rope, base + 256 + gl.expand_dims(rr * stride_kt, 1)
                                                   + gl.expand_dims(cr, 0))
    else:
        t = gl.minimum(t0 + gl.arange(0, 64, layout=gl.SliceLayout(1, ld)), end - 1)
        blk = gl.load(BT + b * stride_btb + t // PAGE).to(gl.int64)
        row = blk * stride_kb + (t % PAGE).to(gl.int64) * stride_kt + RIGHT * 256
        cv = gl.arange(0, 256, layout=gl.SliceLayout(0, ld))
        async_copy.async_copy_global_to_shared(lat, KV + gl.expand_dims(row, 1) + gl.expand_dims(cv, 0))
        if RIGHT:
            tr = gl.minimum(t0 + gl.arange(0, 64, layout=gl.SliceLayout(1, ldr)), end - 1)
            blkr = gl.load(BT + b * stride_btb + tr // PAGE).to(gl.int64)
            rowr = blkr * stride_kb + (tr % PAGE).to(gl.int64) * stride_kt + 512
            cr = gl.arange(0, 64, layout=gl.SliceLayout(0, ldr))
            async_copy.async_copy_global_to_shared(rope, KV + gl.expand_dims(rowr, 1) + gl.expand_dims(cr, 0))
    async_copy.commit_group()


@gluon.jit
def _entry(BT, b, t0, end, stride_btb, PAGE: gl.constexpr):
    """The block-table entry of the page holding token t0 (or the last live token, past the end). gluon=5's pair
    loops (EARLY) read it at a pair's start, so that its latency is off the path of the tile request that needs it:
    2-3% faster there at 16k-32k, 1-3.5% slower in gluon=3 at 16k (A/B, runs/2026-11-29-entries/ab_entry.json)."""
    return gl.load(BT + b * stride_btb + gl.minimum(t0, end - 1) // PAGE)


@gluon.jit
def _load_half(KV, BT, KD, RD, lat, rope, bars, h, b, t0, end, entry, stride_kb, stride_kt, stride_btb,
               PAGE: gl.constexpr, RIGHT: gl.constexpr, USE_TMA: gl.constexpr, EARLY: gl.constexpr,
               CHUNKS: gl.constexpr, ld: gl.constexpr, ldr: gl.constexpr):
    """Load one warpgroup's half of a 64-token tile, tile half h (0-3); its mbarrier bars[h] completes when it has
    landed, or with CHUNKS (TMA only) each 64-dim chunk's, _chunk_bar(bars, h, c), when that chunk has (the rope
    dims with chunk 3). With EARLY, `entry` is _entry() of t0, read earlier, and the TMA path addresses the tile by
    it; else it reads the entry here."""
    if USE_TMA:
        if t0 + 64 <= end:  # every row live: TMA, one elected thread per warp issues a 64-dim box
            if EARLY:
                row = entry * PAGE + t0 % PAGE
            else:
                row = gl.load(BT + b * stride_btb + t0 // PAGE) * PAGE + t0 % PAGE
            if CHUNKS:
                for c in gl.static_range(4):
                    mbarrier.expect(_chunk_bar(bars, h, c), 64 * 64 * 2 + (c == 3) * RIGHT * 64 * 64 * 2)
                    tma.async_copy_global_to_shared(RD, [row, RIGHT * 256 + 64 * c], _chunk_bar(bars, h, c),
                                                    lat.slice(64 * c, 64, dim=1))
                if RIGHT:
                    tma.async_copy_global_to_shared(RD, [row, 512], _chunk_bar(bars, h, 3), rope)
            else:
                mbarrier.expect(bars.index(h), 64 * 256 * 2 + RIGHT * 64 * 64 * 2)
                tma.async_copy_global_to_shared(KD, [row, RIGHT * 256], bars.index(h), lat)
                if RIGHT:
                    tma.async_copy_global_to_shared(RD, [row, 512], bars.index(h), rope)
        else:  # a split's last tile: clamped cp.async rows, waited for here (once per split)
            _copy_rows(KV, BT, lat, rope, b, t0, end, stride_kb, stride_kt, stride_btb, PAGE, RIGHT, ld, ldr)
            async_copy.wait_group(0)
            gl.thread_barrier()
            if CHUNKS:
                for c in gl.static_range(4):
                    mbarrier.arrive(_chunk_bar(bars, h, c), count=1)
            else:
                mbarrier.arrive(bars.index(h), count=1)
    else:  # each of the 128 threads arrives once its own copies land
        _copy_rows(KV, BT, lat, rope, b, t0, end, stride_kb, stride_kt, stride_btb, PAGE, RIGHT, ld, ldr)
        async_copy.mbarrier_arrive(bars.index(h), increment_count=False)


@gluon.jit
def _chunk_bar(bars, h, c: gl.constexpr):
    """With CHUNKS: the mbarrier of tile half h's 64-dim chunk c (mbarriers 10-25, after gluon=5's ten)."""
    return bars.index(10 + 4 * h + c)


@gluon.jit
def _half_scores(s, q_half, k_half, bars, h: gl.constexpr, phase, zero, FIRST: gl.constexpr):
    """With CHUNKS: s (+)= q_half k_half^T over one 256-dim half, 64 dims at a time, each as soon as its chunk has
    landed; four wgmma groups, left in flight."""
    for c in gl.static_range(4):
        mbarrier.wait(_chunk_bar(bars, h, c), phase)
        fence_async_shared()
        if FIRST and c == 0:
            s = warpgroup_mma(q_half.slice(0, 64, dim=1), k_half.slice(0, 64, dim=1).permute((1, 0)), zero,
                              use_acc=False, is_async=True)
        else:
            s = warpgroup_mma(q_half.slice(64 * c, 64, dim=1), k_half.slice(64 * c, 64, dim=1).permute((1, 0)), s,
                              is_async=True)
    return s


@gluon.jit
def _zero(j):
    """0, made at run time from j. Buffers indexed with it get their wgmma descriptors built in the loop: built
    once before it, the ~150 loop-invariant 64-bit descriptors spill."""
    return gl.inline_asm_elementwise("mov.u32 $0, 0;", "=r,r", [j], dtype=gl.int32, is_pure=False, pack=1)


@gluon.jit
def _masked(s, t0, end, limit, CAUSAL: gl.constexpr, LAST: gl.constexpr, s_l: gl.constexpr):
    """The scores, -inf where a key is past the split's end or causally hidden (row r sees keys t < limit[r]). Only a
    split's last pair can reach past its end, so the other pairs skip the 32 selects per thread (FlashMLA masks only
    its last tiles too) unless CAUSAL is 2: with s_q 2 (CAUSAL 1) the one hidden key is the sequence's last, in the
    last pair; with more queries every pair is masked (a run-time test of the causal limit spilled). The callers
    scale inside exp2's argument: one FFMA per score (x * scale - m) where a multiply, a select and a subtract stood."""
    if LAST or CAUSAL == 2:
        x = _mask(s, t0, end, limit, CAUSAL, s_l)
    else:
        x = s
    return x


@gluon.jit
def _mask(s, t0, end, limit, CAUSAL: gl.constexpr, s_l: gl.constexpr):
    """s with -inf at the keys past `end` and, with CAUSAL, at keys t >= limit[r] in row r."""
    t = t0 + gl.arange(0, 64, layout=gl.SliceLayout(0, s_l))
    keep = gl.expand_dims(t < end, 0)
    if CAUSAL:
        keep = keep & (gl.expand_dims(t, 0) < gl.expand_dims(limit, 1))
    return gl.where(keep, s, float("-inf"))


@gluon.jit
def _scores(q_l, q_r, q_rope, k_l, k_r, k_rope, zero):
    """S = q K^T over the 576 dims of one tile (latent halves from shared memory, rope from registers)."""
    s = warpgroup_mma(q_l, k_l.permute((1, 0)), zero, use_acc=False, is_async=True)
    s = warpgroup_mma(q_r, k_r.permute((1, 0)), s, is_async=True)
    s = warpgroup_mma(q_rope, k_rope.permute((1, 0)), s, is_async=True)
    return warpgroup_mma_wait(0, deps=[s])


@gluon.jit
def _finish(o, m, l, l_s, bar_l, phase, OP, LP, OUT, LSE, b, split, whole, pid_h, H, S_Q,
            stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr, stride_ob, stride_os, stride_oh,
            stride_lb, stride_lh, stage, WG: gl.constexpr, ONE_SPLIT: gl.constexpr, STAGE: gl.constexpr,
            s_l: gl.constexpr, o_l: gl.constexpr):
    """Add the two warpgroups' row sums (`bar_l` completes its `phase` when both are in), then normalize and
    store this warpgroup's 256 dims (warpgroup 0 also stores the LSE): to the output where the piece is its
    whole sequence (the combine skips it), else to the split partials. With STAGE the output goes through `stage`
    ([64, 256] of q's dtype in shared memory, this warpgroup's q half, which no QK^T reads once both warpgroups are
    past `bar_l`), so that each thread stores 16-byte runs of a row; from the wgmma layout it would store 4 bytes at
    a time. The fp32 partials are stored from the wgmma layout: staged (through the tile buffers) they were 2-5%
    slower. gluon=5 does not stage: it spills there."""
    row_s: gl.constexpr = gl.SliceLayout(1, s_l)
    row_o: gl.constexpr = gl.SliceLayout(1, o_l)
    l_s.index(WG).store(l)
    gl.thread_barrier()
    mbarrier.arrive(bar_l, count=1)
    mbarrier.wait(bar_l, phase)
    l = l_s.index(0).load(row_s) + l_s.index(1).load(row_s)
    empty = l == 0.0
    out = o * gl.expand_dims(gl.convert_layout(1.0 / gl.where(empty, 1.0, l), row_o), 1)
    rows = pid_h * 64 + gl.arange(0, 64, layout=row_s)
    ok = rows < H * S_Q
    lse2 = gl.where(empty, float("-inf"), m + gl.log2(gl.where(empty, 1.0, l)))
    if ONE_SPLIT:
        _store_out(out, lse2, empty, OUT, LSE, b, rows, ok, pid_h, H, S_Q, stride_ob, stride_os, stride_oh,
                   stride_lb, stride_lh, stage, WG, STAGE, o_l)
    elif whole:
        _store_out(out, lse2, empty, OUT, LSE, b, rows, ok, pid_h, H, S_Q, stride_ob, stride_os, stride_oh,
                   stride_lb, stride_lh, stage, WG, STAGE, o_l)
    else:
        if WG == 0:
            gl.store(LP + b * stride_lpb + rows.to(gl.int64) * stride_lpr + split, lse2, mask=ok)
        rows_o = pid_h * 64 + gl.arange(0, 64, layout=row_o)
        o_off = b * stride_opb + rows_o.to(gl.int64) * stride_opr + split * stride_ops
        dv = WG * 256 + gl.arange(0, 256, layout=gl.SliceLayout(0, o_l))
        gl.store(OP + gl.expand_dims(o_off, 1) + gl.expand_dims(dv, 0), out, mask=gl.expand_dims(rows_o < H * S_Q, 1))


@gluon.jit
def _staged(x, buf, layout: gl.constexpr):
    """x, passed through the shared memory `buf` into `layout`; every thread of the warpgroup has read it back
    before any writes `buf` again."""
    buf.store(x)
    gl.thread_barrier()
    y = buf.load(layout)
    gl.thread_barrier()
    return y


@gluon.jit
def _store_out(out, lse2, empty, OUT, LSE, b, rows, ok, pid_h, H, S_Q, stride_ob, stride_os, stride_oh,
               stride_lb, stride_lh, stage, WG: gl.constexpr, STAGE: gl.constexpr, o_l: gl.constexpr):
    """The final output and LSE of a piece that is its whole sequence (with STAGE, the output through `stage`)."""
    if WG == 0:
        lse = gl.where(empty, float("inf"), lse2 * 0.6931471805599453)
        gl.store(LSE + b * stride_lb + (rows % H) * stride_lh + rows // H, lse, mask=ok)
    if STAGE:
        st: gl.constexpr = gl.BlockedLayout([1, 8], [1, 32], [4, 1], [1, 0])
        val = _staged(out.to(OUT.dtype.element_ty), stage, st)
        r = pid_h * 64 + gl.arange(0, 64, layout=gl.SliceLayout(1, st))
        dv = WG * 256 + gl.arange(0, 256, layout=gl.SliceLayout(0, st))
    else:
        val = out.to(OUT.dtype.element_ty)
        r = pid_h * 64 + gl.arange(0, 64, layout=gl.SliceLayout(1, o_l))
        dv = WG * 256 + gl.arange(0, 256, layout=gl.SliceLayout(0, o_l))
    o_off = b * stride_ob + (r // H).to(gl.int64) * stride_os + (r % H).to(gl.int64) * stride_oh
    gl.store(OUT + gl.expand_dims(o_off, 1) + gl.expand_dims(dv, 0), val, mask=gl.expand_dims(r < H * S_Q, 1))


@gluon.jit
def _partition(a, config: gl.constexpr, WG: gl.constexpr):
    """One warpgroup: the prologue loads and scores, the pair loop (its half of the seesaw), the epilogue."""
    (Q, KV, KD, RD, BT, OP, LP, OUT, LSE, q_l, q_r, k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars, scale_log2, b, split, seqlen,
     start, end, pid_h, stride_qb, stride_qs, stride_qh, stride_kb, stride_kt, stride_btb,
     stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
     stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q) = a
    PAGE: gl.constexpr = config[0]
    ONE_SPLIT: gl.constexpr = config[1]
    CAUSAL: gl.constexpr = config[2]
    USE_TMA: gl.constexpr = config[3]
    dtype: gl.constexpr = Q.dtype.element_ty
    s_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, 64, 16])
    o_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, 256, 16])
    qr_dot: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=s_l, k_width=2)
    p_dot: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_l, k_width=2)
    ld: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
    ldr: gl.constexpr = gl.BlockedLayout([1, 8], [8, 4], [4, 1], [1, 0])
    row_s: gl.constexpr = gl.SliceLayout(1, s_l)
    row_o: gl.constexpr = gl.SliceLayout(1, o_l)
    # bars: 0-3 tile halves landed (buffer 0 left, 0 right, 1 left, 1 right); 4 m0/scale0 ready, 5 m1/scale1
    # ready, 6 P0 ready, 7 P1 ready, 8 row sums ready.
    ready0 = (bars.index(0), bars.index(1))
    ready1 = (bars.index(2), bars.index(3))

    # q's 64 rope dims, straight into registers as the A operand of the rope part of every QK^T.
    rq = pid_h * 64 + gl.arange(0, 64, layout=gl.SliceLayout(1, qr_dot))
    q_off = b * stride_qb + (rq // H).to(gl.int64) * stride_qs + (rq % H).to(gl.int64) * stride_qh + 512
    cq = gl.arange(0, 64, layout=gl.SliceLayout(0, qr_dot))
    q_rope = gl.load(Q + gl.expand_dims(q_off, 1) + gl.expand_dims(cq, 0), mask=gl.expand_dims(rq < H * S_Q, 1),
                     other=0.0)

    rows = pid_h * 64 + gl.arange(0, 64, layout=row_s)
    limit = seqlen - S_Q + 1 + rows // H  # causal: query s sees keys t < seqlen - S_Q + 1 + s
    zero = gl.zeros([64, 64], gl.float32, s_l)
    s = zero
    m = gl.full([64], NEG_INIT, gl.float32, row_s)
    l = gl.zeros([64], gl.float32, row_s)
    o = gl.zeros([64, 256], gl.float32, o_l)
    n_pairs = gl.cdiv(gl.cdiv(end - start, 64), 2)
    if n_pairs > 0:
        lat_mine = k_r if WG else k_l
        _load_half(KV, BT, KD, RD, lat_mine.index(0), k_rope.index(0), bars, 0 + WG, b, start, end, 0,
                   stride_kb, stride_kt, stride_btb, PAGE, WG, USE_TMA, False, False, ld, ldr)
        _load_half(KV, BT, KD, RD, lat_mine.index(1), k_rope.index(1), bars, 2 + WG, b, start + 64, end, 0,
                   stride_kb, stride_kt, stride_btb, PAGE, WG, USE_TMA, False, False, ld, ldr)
        rd = ready1 if WG else ready0
        mbarrier.wait(rd[0], 0)
        mbarrier.wait(rd[1], 0)
        fence_async_shared()
        s = _scores(q_l.index(0), q_r.index(0), q_rope, k_l.index(WG), k_r.index(WG), k_rope.index(WG), zero)
        for j in range(n_pairs - 1):
            if WG == 0:
                o, s, m, l = _pair0(a, config, j, False, o, s, m, l, q_rope, limit, zero, s_l, o_l, p_dot, ld, ldr)
            else:
                o, s, m, l = _pair1(a, config, j, False, o, s, m, l, q_rope, limit, zero, s_l, o_l, p_dot, ld, ldr)
        if WG == 0:
            o, s, m, l = _pair0(a, config, n_pairs - 1, True, o, s, m, l, q_rope, limit, zero, s_l, o_l, p_dot, ld, ldr)
        else:
            o, s, m, l = _pair1(a, config, n_pairs - 1, True, o, s, m, l, q_rope, limit, zero, s_l, o_l, p_dot, ld, ldr)
    _finish(o, m, l, l_s, bars.index(8), 0, OP, LP, OUT, LSE, b, split, (start == 0) & (end == seqlen), pid_h, H, S_Q,
            stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr, stride_ob, stride_os, stride_oh,
            stride_lb, stride_lh, (q_r if WG else q_l).index(0), WG, ONE_SPLIT, True, s_l, o_l)


@gluon.jit
def _pair0(a, config: gl.constexpr, j, LAST: gl.constexpr, o, s, m, l, q_rope, limit, zero,
           s_l: gl.constexpr, o_l: gl.constexpr, p_dot: gl.constexpr, ld: gl.constexpr, ldr: gl.constexpr):
    """Warpgroup 0's half of pair j; `s` holds the scores of tile 2j and, unless LAST, leaves with those of 2j+2."""
    (Q, KV, KD, RD, BT, OP, LP, OUT, LSE, q_l, q_r, k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars, scale_log2, b, split, seqlen,
     start, end, pid_h, stride_qb, stride_qs, stride_qh, stride_kb, stride_kt, stride_btb,
     stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
     stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q) = a
    PAGE: gl.constexpr = config[0]
    CAUSAL: gl.constexpr = config[2]
    USE_TMA: gl.constexpr = config[3]
    EARLY: gl.constexpr = config[4]
    CHUNKS: gl.constexpr = config[5]
    dtype: gl.constexpr = Q.dtype.element_ty
    row_o: gl.constexpr = gl.SliceLayout(1, o_l)
    row_s: gl.constexpr = gl.SliceLayout(1, s_l)
    ph = j & 1
    t0 = start + j * 128
    z = _zero(j)
    e2 = 0
    e3 = 0
    if EARLY and not LAST:  # the block-table entries of the tiles this pair requests (2j+2 and 2j+3), read now
        e2 = _entry(BT, b, t0 + 128, end, stride_btb, PAGE)
        e3 = _entry(BT, b, t0 + 192, end, stride_btb, PAGE)

    x = _masked(s, t0, end, limit, CAUSAL, LAST, s_l)
    m0 = gl.maximum(m, gl.max(x, 1) * scale_log2)  # scale_log2 > 0, so the max commutes with it
    sc0 = gl.exp2(m - m0)
    p = gl.exp2(x * scale_log2 - gl.expand_dims(m0, 1))
    l = l * sc0 + gl.sum(p, 1)
    m_s.index(0).store(m0)
    c_s.index(0).store(sc0)
    gl.thread_barrier()
    mbarrier.arrive(bars.index(4), count=1)  # wg1 may now softmax tile 2j+1 against m0

    o = o * gl.expand_dims(gl.convert_layout(sc0, row_o), 1)
    pb = gl.convert_layout(p.to(dtype), p_dot)
    o = warpgroup_mma(pb, k_l.index(z), o, is_async=True)
    o, pb = warpgroup_mma_wait(0, deps=[o, pb])
    if not LAST:  # buffer 0's left half has no readers left: fetch tile 2j+2's
        _load_half(KV, BT, KD, RD, k_l.index(0), k_rope.index(0), bars, 0, b, t0 + 128, end, e2,
                   stride_kb, stride_kt, stride_btb, PAGE, 0, USE_TMA, EARLY, CHUNKS, ld, ldr)

    mbarrier.wait(bars.index(5), ph)  # wg1's max m1 and its factor e^(m0-m1)
    m = m_s.index(1).load(row_s)
    sc1 = c_s.index(1).load(row_s)
    p_s.index(0).store((p * gl.expand_dims(sc1, 1)).to(dtype))
    fence_async_shared()
    gl.thread_barrier()
    mbarrier.arrive(bars.index(6), count=1)  # P0, rescaled to m1, for wg1's right half
    l = l * sc1
    o = o * gl.expand_dims(gl.convert_layout(sc1, row_o), 1)
    mbarrier.wait(bars.index(7), ph)  # P1
    o = warpgroup_mma(p_s.index(1 + z), k_l.index(1 + z), o, is_async=True)
    if LAST:
        o = warpgroup_mma_wait(0, deps=[o])
    else:
        # Tile 2j+2's left half (loaded by this warpgroup, early in the pair) first; its right half comes from
        # wg1, which could only start it after its last matmul on buffer 0.
        if CHUNKS:
            s = _half_scores(s, q_l.index(z), k_l.index(z), bars, 0, ph ^ 1, zero, True)
            o = warpgroup_mma_wait(4, deps=[o])
        else:
            mbarrier.wait(bars.index(0), ph ^ 1)
            fence_async_shared()
            s = warpgroup_mma(q_l.index(z), k_l.index(z).permute((1, 0)), zero, use_acc=False, is_async=True)
            o = warpgroup_mma_wait(1, deps=[o])
        # buffer 1's left half has no readers left: fetch tile 2j+3's
        _load_half(KV, BT, KD, RD, k_l.index(1), k_rope.index(1), bars, 2, b, t0 + 192, end, e3,
                   stride_kb, stride_kt, stride_btb, PAGE, 0, USE_TMA, EARLY, CHUNKS, ld, ldr)
        if CHUNKS:
            s = _half_scores(s, q_r.index(z), k_r.index(z), bars, 1, ph ^ 1, zero, False)
        else:
            mbarrier.wait(bars.index(1), ph ^ 1)
            fence_async_shared()
            s = warpgroup_mma(q_r.index(z), k_r.index(z).permute((1, 0)), s, is_async=True)
        s = warpgroup_mma(q_rope, k_rope.index(z).permute((1, 0)), s, is_async=True)
        s = warpgroup_mma_wait(0, deps=[s])
    return o, s, m, l


@gluon.jit
def _pair1(a, config: gl.constexpr, j, LAST: gl.constexpr, o, s, m, l, q_rope, limit, zero,
           s_l: gl.constexpr, o_l: gl.constexpr, p_dot: gl.constexpr, ld: gl.constexpr, ldr: gl.constexpr):
    """Warpgroup 1's half of pair j; `s` holds the scores of tile 2j+1 and, unless LAST, leaves with those of 2j+3."""
    (Q, KV, KD, RD, BT, OP, LP, OUT, LSE, q_l, q_r, k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars, scale_log2, b, split, seqlen,
     start, end, pid_h, stride_qb, stride_qs, stride_qh, stride_kb, stride_kt, stride_btb,
     stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
     stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q) = a
    PAGE: gl.constexpr = config[0]
    CAUSAL: gl.constexpr = config[2]
    USE_TMA: gl.constexpr = config[3]
    EARLY: gl.constexpr = config[4]
    CHUNKS: gl.constexpr = config[5]
    dtype: gl.constexpr = Q.dtype.element_ty
    row_o: gl.constexpr = gl.SliceLayout(1, o_l)
    row_s: gl.constexpr = gl.SliceLayout(1, s_l)
    ph = j & 1
    t0 = start + j * 128 + 64
    z = _zero(j)
    e2 = 0
    e3 = 0
    if EARLY and not LAST:  # the block-table entries of the tiles this pair requests (2j+3 and 2j+2), read now
        e3 = _entry(BT, b, t0 + 128, end, stride_btb, PAGE)
        e2 = _entry(BT, b, t0 + 64, end, stride_btb, PAGE)

    mbarrier.wait(bars.index(4), ph)  # wg0's max m0 and its factor e^(m-m0)
    m0 = m_s.index(0).load(row_s)
    sc0 = c_s.index(0).load(row_s)
    x = _masked(s, t0, end, limit, CAUSAL, LAST, s_l)
    m1 = gl.maximum(m0, gl.max(x, 1) * scale_log2)
    sc1 = gl.exp2(m0 - m1)
    p = gl.exp2(x * scale_log2 - gl.expand_dims(m1, 1))
    sc = sc0 * sc1
    l = l * sc + gl.sum(p, 1)
    m_s.index(1).store(m1)
    c_s.index(1).store(sc1)
    gl.thread_barrier()
    mbarrier.arrive(bars.index(5), count=1)

    o = o * gl.expand_dims(gl.convert_layout(sc, row_o), 1)
    pb = p.to(dtype)
    p_s.index(1).store(pb)
    fence_async_shared()
    pd = gl.convert_layout(pb, p_dot)
    o = warpgroup_mma(pd, k_r.index(1 + z), o, is_async=True)
    mbarrier.wait(bars.index(6), ph)  # P0, rescaled to m1
    o = warpgroup_mma(p_s.index(z), k_r.index(z), o, is_async=True)
    # P1 is for wg0's left half; arriving only now (as FlashMLA does) queues this PV on buffer 0 ahead of wg0's
    # matmuls, so buffer 0's right half is free, and tile 2j+2's requested, sooner
    gl.thread_barrier()
    mbarrier.arrive(bars.index(7), count=1)
    if LAST:
        o, pd = warpgroup_mma_wait(0, deps=[o, pd])
    else:
        o, pd = warpgroup_mma_wait(1, deps=[o, pd])
        # buffer 1's right half (and rope) has no readers left: fetch tile 2j+3's
        _load_half(KV, BT, KD, RD, k_r.index(1), k_rope.index(1), bars, 3, b, t0 + 128, end, e3,
                   stride_kb, stride_kt, stride_btb, PAGE, 1, USE_TMA, EARLY, CHUNKS, ld, ldr)
        o = warpgroup_mma_wait(0, deps=[o])
        # buffer 0's right half: tile 2j+2's
        _load_half(KV, BT, KD, RD, k_r.index(0), k_rope.index(0), bars, 1, b, t0 + 64, end, e2,
                   stride_kb, stride_kt, stride_btb, PAGE, 1, USE_TMA, EARLY, CHUNKS, ld, ldr)
        # Tile 2j+3's right half (loaded by this warpgroup) first; its left half comes from wg0, late in the pair.
        if CHUNKS:
            s = _half_scores(s, q_r.index(z), k_r.index(1 + z), bars, 3, ph ^ 1, zero, True)
            s = warpgroup_mma(q_rope, k_rope.index(1 + z).permute((1, 0)), s, is_async=True)
            s = _half_scores(s, q_l.index(z), k_l.index(1 + z), bars, 2, ph ^ 1, zero, False)
        else:
            mbarrier.wait(bars.index(3), ph ^ 1)
            fence_async_shared()
            s = warpgroup_mma(q_r.index(z), k_r.index(1 + z).permute((1, 0)), zero, use_acc=False, is_async=True)
            s = warpgroup_mma(q_rope, k_rope.index(1 + z).permute((1, 0)), s, is_async=True)
            mbarrier.wait(bars.index(2), ph ^ 1)
            fence_async_shared()
            s = warpgroup_mma(q_l.index(z), k_l.index(1 + z).permute((1, 0)), s, is_async=True)
        s = warpgroup_mma_wait(0, deps=[s])
    return o, s, m1, l


@gluon.jit
def _tile_buffers(dtype: gl.constexpr, USE_TMA: gl.constexpr, NBARS: gl.constexpr, NCHUNK: gl.constexpr = 0):
    """The seesaw kernels' shared memory past q: two whole tiles (latent halves and rope), P0 and P1, the row
    maxima, factors and sums, and NBARS mbarriers: 0-3 tile halves landed, 4-7 the hand-offs (one arrival
    each), 8 and on two arrivals (both warpgroups); then NCHUNK more of one arrival (CHUNKS: _chunk_bar)."""
    lat_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([64, 256], dtype)
    sq_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([64, 64], dtype)
    vec_sl: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [0])  # indexed to 1-D rows
    k_l = gl.allocate_shared_memory(dtype, [2, 64, 256], lat_sl)
    k_r = gl.allocate_shared_memory(dtype, [2, 64, 256], lat_sl)
    k_rope = gl.allocate_shared_memory(dtype, [2, 64, 64], sq_sl)
    p_s = gl.allocate_shared_memory(dtype, [2, 64, 64], sq_sl)
    m_s = gl.allocate_shared_memory(gl.float32, [2, 64], vec_sl)
    c_s = gl.allocate_shared_memory(gl.float32, [2, 64], vec_sl)
    l_s = gl.allocate_shared_memory(gl.float32, [2, 64], vec_sl)
    bars = gl.allocate_shared_memory(gl.int64, [NBARS + NCHUNK, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(4):  # TMA: the expect-bytes arrival; cp.async: each copying thread's
        mbarrier.init(bars.index(i), count=1 if USE_TMA else 128)
    for i in gl.static_range(4, 8):
        mbarrier.init(bars.index(i), count=1)
    for i in gl.static_range(8, NBARS):
        mbarrier.init(bars.index(i), count=2)
    for i in gl.static_range(NBARS, NBARS + NCHUNK):  # CHUNKS: one per 64-dim chunk of each tile half
        mbarrier.init(bars.index(i), count=1)
    return k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars


@gluon.jit(do_not_specialize=["num_splits"])
def split_kernel_ss(
    Q, KV, KD, RD, BT, SEQ, ORD, OP, LP, OUT, LSE,
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
    DV: gl.constexpr, DR: gl.constexpr, USE_TMA: gl.constexpr, ORDERED: gl.constexpr,
):
    gl.static_assert(gl.num_warps() == 4, "the seesaw kernel runs one warpgroup per partition")
    gl.static_assert((DV == 512) and (DR == 64) and (BLOCK_N == 64), "written for 512 + 64 dims and 64-token tiles")
    dtype: gl.constexpr = Q.dtype.element_ty
    lat_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([64, 256], dtype)
    ldq: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])

    if ORDERED:  # a 1-D grid walks ORD, a host-built order of the (sequence, split) pieces; a piece's row groups are adjacent
        groups = (H * S_Q + 63) // 64
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
    if not ONE_SPLIT:
        if start >= seqlen:
            return  # the combine skips splits past the sequence's end

    # q's latent dims go to shared memory once, as two 256-dim halves (the A operands of every QK^T).
    rq = pid_h * 64 + gl.arange(0, 64, layout=gl.SliceLayout(1, ldq))
    q_off = b * stride_qb + (rq // H).to(gl.int64) * stride_qs + (rq % H).to(gl.int64) * stride_qh
    cq = gl.arange(0, 256, layout=gl.SliceLayout(0, ldq))
    q_ptr = Q + gl.expand_dims(q_off, 1) + gl.expand_dims(cq, 0)
    q_ok = gl.expand_dims(rq < H * S_Q, 1)
    q_l = gl.allocate_shared_memory(dtype, [1, 64, 256], lat_sl)
    q_r = gl.allocate_shared_memory(dtype, [1, 64, 256], lat_sl)
    q_l.index(0).store(gl.load(q_ptr, mask=q_ok, other=0.0))
    q_r.index(0).store(gl.load(q_ptr + 256, mask=q_ok, other=0.0))
    fence_async_shared()

    k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars = _tile_buffers(dtype, USE_TMA, 9)

    args = (Q, KV, KD, RD, BT, OP, LP, OUT, LSE, q_l, q_r, k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars, scale_log2, b, split,
            seqlen, start, end, pid_h, stride_qb, stride_qs, stride_qh, stride_kb, stride_kt, stride_btb,
            stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
            stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q)
    config: gl.constexpr = (PAGE, ONE_SPLIT, CAUSAL, USE_TMA, False, False)  # EARLY: see _entry; CHUNKS: _load_half
    gl.warp_specialize([(_partition, (args, config, 0)), (_partition, (args, config, 1))], [4], [256])


LAT_LAYOUT = gl.NVMMASharedLayout.get_default_for([64, 256], gl.bfloat16)  # 16-bit types share it
ROPE_LAYOUT = gl.NVMMASharedLayout.get_default_for([64, 64], gl.bfloat16)


def descriptors(kv):
    """(latent, rope, use_tma) for a 16-bit cache [blocks, page, 1, 576]: TMA descriptors over its tokens as rows.
    Without pages of 64k tokens packed back to back there is no such view; the kernel then copies with cp.async
    and gets descriptors over a stand-in tensor that it never reads."""
    blocks, page = kv.shape[0], kv.shape[1]
    packed = (page % 64 == 0 and kv.stride(-1) == 1 and kv.stride(0) == page * kv.stride(1)
              and kv.stride(1) % 8 == 0 and kv.data_ptr() % 16 == 0)
    rows = kv.as_strided((blocks * page, kv.shape[-1]), (kv.stride(1), 1)) if packed else _stand_in(kv.dtype, kv.device)
    return (TensorDescriptor(rows, list(rows.shape), list(rows.stride()), [64, 256], LAT_LAYOUT),
            TensorDescriptor(rows, list(rows.shape), list(rows.stride()), [64, 64], ROPE_LAYOUT), packed)


_STAND_INS: dict = {}


def _stand_in(dtype, device):
    key = (dtype, str(device))
    if key not in _STAND_INS:
        import torch

        _STAND_INS[key] = torch.zeros((64, 576), dtype=dtype, device=device)
    return _STAND_INS[key]
