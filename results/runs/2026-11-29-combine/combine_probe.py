"""How much of a gluon=5/7 call is the separate combine kernel: each shape timed whole, with the combine left out
(main kernel only; wrong output, timing only), and the combine alone (replayed with the recorded arguments, cold L2).
Also the plan: parts, segments, split sequences, slots. Run from the repository root:
  python results/runs/2026-11-29-combine/combine_probe.py  (writes $OUT/combine_probe.json)"""
import importlib, json, os
import torch
from mlatune.kernels import Config
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.bench import time_cuda
from mlatune.verify import make_launch
md = importlib.import_module("mlatune.kernels.mla_decode")


class Recorder:
    """Stands in for _combine_kernel: records each launch's grid and arguments; runs it unless skip."""
    def __init__(self, kernel):
        self.kernel, self.skip, self.last = kernel, False, None

    def __getitem__(self, grid):
        def call(*a, **kw):
            self.last = (grid, a, kw)
            if not self.skip:
                return self.kernel[grid](*a, **kw)
        return call


rec = Recorder(md._combine_kernel)
md._combine_kernel = rec
shapes = [(128, 4096, 16, 1, "normal", 5), (128, 4096, 32, 1, "normal", 5), (128, 4096, 16, 2, "normal", 5),
          (128, 4096, 16, 1, "fixed", 5), (128, 16384, 16, 1, "normal", 5),
          (16, 32768, 128, 2, "lognormal", 5), (8, 8192, 128, 2, "lognormal", 5), (16, 8192, 128, 1, "lognormal", 5),
          (4, 32768, 64, 2, "lognormal", 5), (128, 4096, 128, 1, "normal", 7)]
res = []
for batch, L, h, s_q, dist, g in shapes:
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q, dist=dist)
    x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
    cfg = Config(block_n=64, block_h=64, num_splits=0, num_warps=8, num_stages=2, gluon=g)
    tokens = int(x["cache_seqlens"].sum())
    plan = md.plan_segments(x["cache_seqlens"], -(-h * s_q // 64), md.num_sms(torch.device("cuda")), "cuda")
    counts = plan.counts.tolist()
    r = dict(batch=batch, L=L, h=h, s_q=s_q, dist=dist, gluon=g, tokens=tokens, parts=plan.parts,
             segments=int(plan.ptr[-1]), split_seqs=sum(c > 1 for c in counts), slots=plan.slots)
    for name, skip in (("whole", False), ("main", True)):
        rec.skip, rec.last = skip, None
        fn, out, lse = make_launch(md, x, cfg, w.causal)
        r[name + "_us"] = round(time_cuda(fn).median_us, 2)
    rec.skip = False
    if rec.last is not None:
        grid, a, kw = rec.last
        r["combine_cold_us"] = round(time_cuda(lambda: rec.kernel[grid](*a, **kw)).median_us, 2)
        r["combine_warm_us"] = round(time_cuda(lambda: rec.kernel[grid](*a, **kw), flush_bytes=1 << 20).median_us, 2)
    kv = tokens * 576 * 2
    r["kv_tbps_whole"] = round(kv / r["whole_us"] / 1e6, 3)
    r["kv_tbps_main"] = round(kv / r["main_us"] / 1e6, 3)
    print(json.dumps(r), flush=True)
    res.append(r)
json.dump(res, open(os.environ.get("OUT", "/tmp") + "/combine_probe.json", "w"), indent=1)
