"""Hopper (sm_90) persistent seesaw kernel (gluon=5, and 7: chunked tile barriers): one program per SM part walks its segments."""
from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier

from .mla_gluon_ss import NEG_INIT, _chunk_bar, _entry, _finish, _load_half, _pair0, _pair1, _scores, _tile_buffers, _zero

# The schedule of FlashMLA's metadata, with the seesaw kernel's tile loop (mla_gluon_ss.py; the code is ours). On the
# host, plan_segments() (mla_decode.py) cuts the batch's tiles, plus a fixed cost per segment, into one equal share
# per part (SMs / row groups parts); a part is a run of segments (sequence, token range), so every SM gets the same
# work whatever the lengths, and no program is launched twice on an SM. Program (part, row group) walks its part's
# segments: a segment that is its whole sequence writes the output and LSE, the others write partials into the
# sequence's slot, which the combine merges.
# Per segment each warpgroup requests its halves of the first two tiles, then loads its half of q (latent dims to
# shared memory, warpgroup 0 [0, 256) and warpgroup 1 [256, 512); rope dims to registers) while they fly; an mbarrier
# says both q halves are in. q is overwritten only after the previous segment's row-sum barrier, which both
# warpgroups pass only when all their matmuls are done.
# Barrier phases: the tile and hand-off mbarriers complete once per pair, so their parity is the count of pairs over
# all segments so far. _pair0/_pair1 take the phase from their pair index, so that index is shifted by the parity of
# the earlier pairs and the segment's start moved back by as many pairs: the tiles they address do not change.
# CHUNKS (gluon=7, TMA only): each tile half lands as four 64-dim chunks, each on its own mbarrier (16 more), and the
# QK^T of a half starts on a chunk as soon as it is in. Measured against gluon=5: up to 3% faster where an SM part walks
# many tiles (compute-bound, long), up to 14% slower on short or memory-bound work (runs/2026-11-29-entries/
# chunks_sweep.csv), so it is a knob.


@gluon.jit
def _segment_q(Q, q_half, b, pid_h, H, S_Q, stride_qb, stride_qs, stride_qh, WG: gl.constexpr, qr_dot: gl.constexpr,
               ldq: gl.constexpr):
    """Store this warpgroup's latent half of q's 64 rows in q_half ([64, 256], shared memory); return its rope
    dims (registers)."""
    rq = pid_h * 64 + gl.arange(0, 64, layout=gl.SliceLayout(1, ldq))
    q_off = b * stride_qb + (rq // H).to(gl.int64) * stride_qs + (rq % H).to(gl.int64) * stride_qh + WG * 256
    cq = gl.arange(0, 256, layout=gl.SliceLayout(0, ldq))
    q_half.store(gl.load(Q + gl.expand_dims(q_off, 1) + gl.expand_dims(cq, 0), mask=gl.expand_dims(rq < H * S_Q, 1),
                         other=0.0))
    rr = pid_h * 64 + gl.arange(0, 64, layout=gl.SliceLayout(1, qr_dot))
    r_off = b * stride_qb + (rr // H).to(gl.int64) * stride_qs + (rr % H).to(gl.int64) * stride_qh + 512
    cr = gl.arange(0, 64, layout=gl.SliceLayout(0, qr_dot))
    return gl.load(Q + gl.expand_dims(r_off, 1) + gl.expand_dims(cr, 0), mask=gl.expand_dims(rr < H * S_Q, 1),
                   other=0.0)


@gluon.jit
def _partition_p(a, config: gl.constexpr, WG: gl.constexpr):
    """One warpgroup: for each segment of the part, the seesaw schedule of mla_gluon_ss._partition."""
    (Q, KV, KD, RD, BT, SEQ, SEGS, OP, LP, OUT, LSE, q_l, q_r, k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars, scale_log2,
     seg0, seg1, pid_h, stride_qb, stride_qs, stride_qh, stride_kb, stride_kt, stride_btb,
     stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
     stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q) = a
    PAGE: gl.constexpr = config[0]
    CAUSAL: gl.constexpr = config[2]
    USE_TMA: gl.constexpr = config[3]
    CHUNKS: gl.constexpr = config[5]
    s_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, 64, 16])
    o_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, 256, 16])
    qr_dot: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=s_l, k_width=2)
    p_dot: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_l, k_width=2)
    ld: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
    ldr: gl.constexpr = gl.BlockedLayout([1, 8], [8, 4], [4, 1], [1, 0])
    row_s: gl.constexpr = gl.SliceLayout(1, s_l)
    # bars: 0-8 as in mla_gluon_ss; 9: both q halves stored.
    rd = (bars.index(2), bars.index(3)) if WG else (bars.index(0), bars.index(1))
    lat_mine = k_r if WG else k_l
    zero = gl.zeros([64, 64], gl.float32, s_l)
    rows = pid_h * 64 + gl.arange(0, 64, layout=row_s)
    pairs = seg0 * 0  # pairs over the earlier segments (a run-time zero)
    qn = seg0 * 0  # segments that loaded q: the phase of its barrier
    for i in range(seg0, seg1):
        b = gl.load(SEGS + 4 * i).to(gl.int64)
        start = gl.load(SEGS + 4 * i + 1)
        end = gl.load(SEGS + 4 * i + 2)
        slot = gl.load(SEGS + 4 * i + 3)  # -1: the sequence's only segment, which writes the output itself
        seqlen = gl.load(SEQ + b)
        # A sequence's last segment (end -1) runs to its length now, and one that shrank leaves segments empty,
        # so a plan stays correct for other seqlens (only its balance suffers).
        end = gl.where(end < 0, seqlen, gl.minimum(end, seqlen))
        sph = (i - seg0) & 1  # phase of the row-sum barrier (once per segment)
        z = _zero(i)  # buffers indexed with a run-time zero: their wgmma descriptors are built here, not hoisted
        off = pairs & 1
        n_pairs = gl.cdiv(gl.cdiv(gl.maximum(end - start, 0), 64), 2)
        m = gl.full([64], NEG_INIT, gl.float32, row_s)
        l = gl.zeros([64], gl.float32, row_s)
        o = gl.zeros([64, 256], gl.float32, o_l)
        if n_pairs > 0:  # both warpgroups agree, so every barrier still sees both or neither
            _load_half(KV, BT, KD, RD, lat_mine.index(z), k_rope.index(z), bars, 0 + WG, b, start, end,
                       _entry(BT, b, start, end, stride_btb, PAGE),
                       stride_kb, stride_kt, stride_btb, PAGE, WG, USE_TMA, True, CHUNKS, ld, ldr)
            _load_half(KV, BT, KD, RD, lat_mine.index(1 + z), k_rope.index(1 + z), bars, 2 + WG, b, start + 64, end,
                       _entry(BT, b, start + 64, end, stride_btb, PAGE),
                       stride_kb, stride_kt, stride_btb, PAGE, WG, USE_TMA, True, CHUNKS, ld, ldr)
            q_rope = _segment_q(Q, (q_r if WG else q_l).index(z), b, pid_h, H, S_Q, stride_qb, stride_qs, stride_qh,
                                WG, qr_dot, gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0]))
            fence_async_shared()
            gl.thread_barrier()
            mbarrier.arrive(bars.index(9), count=1)
            mbarrier.wait(bars.index(9), qn & 1)
            qn += 1
            limit = seqlen - S_Q + 1 + rows // H  # causal: query s sees keys t < seqlen - S_Q + 1 + s
            # the pair helpers take `start` and the pair index j and address tile start + 128 j: shift both by off
            pa = (Q, KV, KD, RD, BT, OP, LP, OUT, LSE, q_l, q_r, k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars,
                  scale_log2, b, gl.maximum(slot, 0), seqlen, start - off * 128, end, pid_h,
                  stride_qb, stride_qs, stride_qh, stride_kb, stride_kt, stride_btb,
                  stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
                  stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q)
            if CHUNKS:
                for c in gl.static_range(4):
                    mbarrier.wait(_chunk_bar(bars, 2 * WG, c), off)
                    mbarrier.wait(_chunk_bar(bars, 2 * WG + 1, c), off)
            else:
                mbarrier.wait(rd[0], off)
                mbarrier.wait(rd[1], off)
            fence_async_shared()
            s = _scores(q_l.index(z), q_r.index(z), q_rope, k_l.index(WG + z), k_r.index(WG + z),
                        k_rope.index(WG + z), zero)
            for j in range(off, off + n_pairs - 1):
                if WG == 0:
                    o, s, m, l = _pair0(pa, config, j, False, o, s, m, l, q_rope, limit, zero, s_l, o_l, p_dot,
                                        ld, ldr)
                else:
                    o, s, m, l = _pair1(pa, config, j, False, o, s, m, l, q_rope, limit, zero, s_l, o_l, p_dot,
                                        ld, ldr)
            if WG == 0:
                o, s, m, l = _pair0(pa, config, off + n_pairs - 1, True, o, s, m, l, q_rope, limit, zero, s_l, o_l,
                                    p_dot, ld, ldr)
            else:
                o, s, m, l = _pair1(pa, config, off + n_pairs - 1, True, o, s, m, l, q_rope, limit, zero, s_l, o_l,
                                    p_dot, ld, ldr)
            pairs += n_pairs
        _finish(o, m, l, l_s, bars.index(8), sph, OP, LP, OUT, LSE, b, gl.maximum(slot, 0), slot < 0, pid_h,
                H, S_Q, stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr, stride_ob, stride_os, stride_oh,
                stride_lb, stride_lh, q_l, WG, False, False, s_l, o_l)


@gluon.jit
def split_kernel_ps(
    Q, KV, KD, RD, BT, SEQ, SEGS, PTR, OP, LP, OUT, LSE,
    scale_log2,
    stride_qb, stride_qs, stride_qh,
    stride_kb, stride_kt,
    stride_btb,
    stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
    stride_ob, stride_os, stride_oh,
    stride_lb, stride_lh,
    H, S_Q, PAGE: gl.constexpr, CAUSAL: gl.constexpr,
    DV: gl.constexpr, DR: gl.constexpr, USE_TMA: gl.constexpr, CHUNKS: gl.constexpr,
):
    """Program i takes row group i % groups of part i // groups, whose segments are SEGS[PTR[part]:PTR[part + 1]],
    each (sequence, start, end, partial slot)."""
    gl.static_assert(gl.num_warps() == 4, "the seesaw kernel runs one warpgroup per partition")
    gl.static_assert((DV == 512) and (DR == 64), "written for 512 + 64 dims")
    dtype: gl.constexpr = Q.dtype.element_ty
    lat_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([64, 256], dtype)
    # The combine is this kernel's programmatic dependent: it may launch now (it waits for this grid's end to read).
    gl.inline_asm_elementwise("griddepcontrol.launch_dependents; // $0", "=r", [], dtype=gl.int32, is_pure=False, pack=1)
    groups = (H * S_Q + 63) // 64
    pid_h = gl.program_id(0) % groups
    part = gl.program_id(0) // groups
    seg0 = gl.load(PTR + part)
    seg1 = gl.load(PTR + part + 1)

    q_l = gl.allocate_shared_memory(dtype, [1, 64, 256], lat_sl)
    q_r = gl.allocate_shared_memory(dtype, [1, 64, 256], lat_sl)
    # mbarrier 9: both q halves stored; with CHUNKS 16 more, one per 64-dim chunk of each tile half
    k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars = _tile_buffers(dtype, USE_TMA, 10, 16 if CHUNKS else 0)

    args = (Q, KV, KD, RD, BT, SEQ, SEGS, OP, LP, OUT, LSE, q_l, q_r, k_l, k_r, k_rope, p_s, m_s, c_s, l_s, bars,
            scale_log2, seg0, seg1, pid_h, stride_qb, stride_qs, stride_qh, stride_kb, stride_kt, stride_btb,
            stride_opb, stride_opr, stride_ops, stride_lpb, stride_lpr,
            stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q)
    config: gl.constexpr = (PAGE, False, CAUSAL, USE_TMA, True, CHUNKS)  # EARLY: see _entry; CHUNKS (TMA only): _load_half
    gl.warp_specialize([(_partition_p, (args, config, 0)), (_partition_p, (args, config, 1))], [4], [256])
