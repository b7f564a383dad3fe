"""gluon=3 (whole sequences) against gluon=5 (old: tiles after the epilogue; new: overlap2), same inputs, one process.
usage: diag.py time            -> JSON lines (us per call)
       diag.py ncu VARIANT batch L h s dist   -> launches VARIANT 3 times (for ncu)
Run from the repository root of commit 28acb3b with overlap2.diff applied (`git apply`), after
  mkdir -p .devscripts && git show 28acb3b:kernels/mla_gluon_ps.py \
    | sed 's/^from \.mla_gluon_ss import/from mlatune.kernels.mla_gluon_ss import/' > .devscripts/ps_old.py"""
import importlib, importlib.util, json, os, sys
import torch
from mlatune.kernels import Config
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.bench import time_cuda
from mlatune.verify import make_launch
md = importlib.import_module("mlatune.kernels.mla_decode")
new_k = md.split_kernel_ps
spec = importlib.util.spec_from_file_location("ps_old", ".devscripts/ps_old.py")
old = importlib.util.module_from_spec(spec); spec.loader.exec_module(old)
G5 = Config(block_n=64, block_h=64, num_splits=0, num_warps=8, num_stages=2, gluon=5)


def launcher(variant, w, x):
    if variant.startswith("g3"):
        splits = int(variant[3:] or 1)
        cfg = Config(block_n=64, block_h=64, num_splits=splits, num_warps=8, num_stages=2, gluon=3)
        fn, out, lse = make_launch(md, x, cfg, w.causal)
        return fn, out, lse, {}
    md.split_kernel_ps = old.split_kernel_ps if variant == "g5old" else new_k
    fn, out, lse = make_launch(md, x, G5, w.causal)
    sl = x["cache_seqlens"]
    plan = md.schedule(G5, sl, 1, int(sl.max()), int(sl.sum()), rows=w.h_q * w.s_q)
    return fn, out, lse, dict(segments=int(plan.table.numel() // 4), parts=plan.parts, combine=bool(plan.combine))


def run_variant(variant, w, x):
    fn, out, lse, info = launcher(variant, w, x)
    out.fill_(float("nan"))
    kern = new_k if variant == "g5new" else old.split_kernel_ps

    def call():
        md.split_kernel_ps = kern
        fn()
    call(); torch.cuda.synchronize()
    return call, out.clone(), lse.clone(), info


if sys.argv[1] == "ncu":
    variant, batch, L, h, s, dist = sys.argv[2], *map(int, sys.argv[3:7]), sys.argv[7]
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s, dist=dist)
    x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
    call, *_ = run_variant(variant, w, x)
    for _ in range(2):
        call()
    torch.cuda.synchronize()
    sys.exit(0)

shapes = [(66, 16384, 128, 1, "fixed"), (128, 16384, 128, 1, "fixed"), (128, 4096, 128, 1, "fixed"),
          (128, 1024, 128, 1, "fixed"), (16, 8192, 128, 1, "lognormal"), (16, 32768, 128, 1, "lognormal"),
          (8, 8192, 128, 2, "lognormal"), (128, 4096, 16, 1, "normal"), (128, 1024, 128, 1, "normal")]
res = []
for (batch, L, h, s_q, dist) in shapes:
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q, dist=dist)
    x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
    variants = ["g3", "g5old", "g5new", "g5old", "g5new"] if dist == "fixed" else ["g3_0", "g5old", "g5new", "g5old", "g5new"]
    ref = None
    for v in variants:
        call, out, lse, info = run_variant(v, w, x)
        t = time_cuda(call)
        r = dict(batch=batch, L=L, h=h, s_q=s_q, dist=dist, variant=v, us=round(t.median_us, 2), p20=round(t.p20_us, 2),
                 p80=round(t.p80_us, 2), **info)
        if ref is None:
            ref = (out, lse)
        else:
            r["max_abs_diff_vs_first"] = (out.float() - ref[0].float()).abs().max().item()
        print(json.dumps(r), flush=True); res.append(r)
json.dump(res, open(os.environ.get("OUT", "/tmp") + "/diag.json", "w"), indent=1)
