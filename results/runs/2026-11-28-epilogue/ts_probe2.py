"""Per-program timeline of the current seesaw kernel (gluon=3) with its piece order and splits, as launch() runs it:
globaltimer stamps at program start, loop end and epilogue end, the SM, the sequence and the piece's tokens. Run from the
repository root on an sm_90 GPU, with FlashMLA built to .devscripts/flashmla_sm90.so (python -m mlatune.peer build)."""
import importlib, importlib.util, json, os, subprocess, sys
import torch, triton
from mlatune.kernels import Config
from mlatune.kernels.config import D_QK
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.bench import time_cuda
md = importlib.import_module("mlatune.kernels.mla_decode")
src = subprocess.run(["git", "show", "f010d1f:kernels/mla_gluon_ss.py"], capture_output=True, text=True, check=True).stdout  # the kept kernel
def sub(s, old, new, n=1):
    assert s.count(old) == n, (s.count(old), old[:90])
    return s.replace(old, new)
TS = '''

@gluon.jit
def _ts(D, k: gl.constexpr, j):
    t = gl.inline_asm_elementwise("mov.u64 $0, %globaltimer;", "=l,r", [j], dtype=gl.int64, is_pure=False, pack=1)
    gl.store(D + k, t)


@gluon.jit
def _smid(D, j):
    s = gl.inline_asm_elementwise("mov.u32 $0, %smid;", "=r,r", [j], dtype=gl.int32, is_pure=False, pack=1)
    gl.store(D + 15, s.to(gl.int64))

'''
s = src
s = sub(s, "NEG_INIT = gl.constexpr(-1.0e30)", "NEG_INIT = gl.constexpr(-1.0e30)" + TS)
s = sub(s, "Q, KV, KD, RD, BT, SEQ, ORD, OP, LP, OUT, LSE,\n    scale_log2,", "Q, KV, KD, RD, BT, SEQ, ORD, OP, LP, OUT, LSE, DBG,\n    scale_log2,")
s = sub(s, "stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q) = a", "stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q, DBG) = a", 3)
s = sub(s, "            stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q)\n    config: gl.constexpr = (PAGE, ONE_SPLIT",
        "            stride_ob, stride_os, stride_oh, stride_lb, stride_lh, H, S_Q, DBG)\n    config: gl.constexpr = (PAGE, ONE_SPLIT")
s = sub(s, "    if ORDERED:  # a 1-D grid", "    DBG = DBG + (gl.program_id(0) + gl.num_programs(0) * (gl.program_id(1) + gl.num_programs(1) * gl.program_id(2))) * 64\n    _ts(DBG, 0, split_len)\n    _smid(DBG, split_len)\n    if ORDERED:  # a 1-D grid")
s = sub(s, "    # q's 64 rope dims, straight", "    D = DBG + WG * 32\n    gl.store(D + 12, b)\n    gl.store(D + 13, (end - start).to(gl.int64))\n    # q's 64 rope dims, straight")
s = sub(s, "    _finish(o, m, l, l_s, bars.index(8), 0, OP", "    _ts(D, 5, H)\n    _finish(o, m, l, l_s, bars.index(8), 0, OP")
s = sub(s, "            stride_lb, stride_lh, (q_r if WG else q_l).index(0), WG, ONE_SPLIT, True, s_l, o_l)\n",
        "            stride_lb, stride_lh, (q_r if WG else q_l).index(0), WG, ONE_SPLIT, True, s_l, o_l)\n    _ts(D, 6, H)\n")
os.makedirs("/tmp/ssv", exist_ok=True)
p = "/tmp/ssv/ss_ts2.py"; open(p, "w").write(s)
spec = importlib.util.spec_from_file_location("ss_ts2", p)
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)

def prepare(x, h, s_q, num_splits):
    q, kv, bt, sl = x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"]
    batch = q.shape[0]
    cfg = Config(block_n=64, block_h=64, num_splits=num_splits, num_warps=8, num_stages=2, gluon=3)
    mx, total = md.check_seqlens(sl, bt, kv.shape[1])
    splits = md.resolve_splits(cfg, batch, h * s_q, mx, q.device, total)
    order = md.schedule(cfg, sl, splits, mx, total, rows=h * s_q)
    split_len = md.split_length(mx, splits, 64)
    out = torch.empty(batch, s_q, h, 512, dtype=q.dtype, device="cuda")
    lse = torch.empty(batch, h, s_q, dtype=torch.float32, device="cuda")
    op, lp = md.alloc_partials(batch, h * s_q, splits, q.device) if splits > 1 else (out, lse)
    groups = triton.cdiv(h * s_q, 64)
    n = groups * splits * batch
    dbg = torch.zeros(n * 64, dtype=torch.int64, device="cuda")
    kd, rd, use_tma = m.descriptors(kv)
    grid = (n,) if order is not None else (groups, splits, batch)
    def fn():
        m.split_kernel_ss[grid](q, kv, kd, rd, bt, sl, sl if order is None else order, op, lp, out, lse, dbg,
            D_QK ** -0.5 * 1.4426950408889634, splits, split_len,
            q.stride(0), q.stride(1), q.stride(2), kv.stride(0), kv.stride(1), bt.stride(0),
            *(op.stride()[:3] + lp.stride()[:2] if splits > 1 else (0,) * 5),
            out.stride(0), out.stride(1), out.stride(2), lse.stride(0), lse.stride(1), h, s_q, PAGE=kv.shape[1],
            BLOCK_N=64, STAGES=2, ONE_SPLIT=splits == 1, CAUSAL=s_q > 1, DV=512, DR=64, USE_TMA=use_tma,
            ORDERED=order is not None, num_warps=4)
        if splits > 1:
            md._combine_kernel[(h * s_q, batch)](op, lp, out, lse, sl, splits, split_len,
                op.stride(0), op.stride(1), op.stride(2), lp.stride(0), lp.stride(1),
                out.stride(0), out.stride(1), out.stride(2), lse.stride(0), lse.stride(1),
                h, BLOCK_S=min(16, max(2, triton.next_power_of_2(splits))), DV=512, DIRECT=True, num_warps=4)
    return fn, out, lse, dbg, n, splits, cfg

if __name__ == "__main__":
    outdir = os.environ.get("OUT", "/tmp")
    from mlatune.peer import FlashMLA
    fm = FlashMLA(".devscripts/flashmla_sm90.so")
    res = {}
    for (batch, L, h, s_q, dist, ns) in [(128, 4096, 16, 1, "normal", 2), (128, 4096, 32, 1, "normal", 1), (128, 4096, 16, 2, "normal", 1),
                                         (128, 4096, 32, 1, "fixed", 1), (128, 1024, 128, 1, "normal", 2), (128, 1024, 128, 1, "fixed", 1)]:
        w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q, dist=dist)
        x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
        fn, out, lse, dbg, n, splits, cfg = prepare(x, h, s_q, ns)
        t = time_cuda(fn)
        o2, l2 = md.mla_decode(x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"], config=cfg, causal=s_q > 1)
        err = ((out.float() - o2.float()).norm() / o2.float().norm()).item()
        meta, nsp = fm.metadata(x["cache_seqlens"], s_q, h)
        tf = time_cuda(lambda: fm(x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"], meta, nsp, softmax_scale=D_QK ** -0.5, causal=s_q > 1))
        flush = torch.empty(256 << 20, dtype=torch.int8, device="cuda"); flush.zero_(); torch.cuda.synchronize()
        dbg.zero_(); fn(); torch.cuda.synchronize()
        key = f"b{batch}_L{L}_h{h}_s{s_q}_{dist}_sp{splits}"
        res[key] = dict(us=t.median_us, flashmla_us=tf.median_us, err_vs_launch=err, seqlens=x["cache_seqlens"].tolist(), stamps=dbg.view(n, 64).tolist())
        print(key, round(t.median_us, 1), "flashmla", round(tf.median_us, 1), "err", err, flush=True)
    json.dump(res, open(outdir + "/ts_probe2.json", "w"))
