"""A/B: gluon=5 and 7 with the combine as a programmatic dependent launch of the split kernel, its slot counts read
before the wait and its partials loaded beside their LSEs (new, the working tree), against the plain combine after the
split kernel (old: 60aa972's mla_decode.py and mla_gluon_ps.py). Same inputs, one process, each variant twice
(interleaved), outputs compared bit for bit; also each variant's combine left out (main kernel only, timing only). The
old copies:
  mkdir -p .devscripts/old4 && git show 60aa972:kernels/mla_gluon_ss.py > .devscripts/old4/ss_old.py
  git show 60aa972:kernels/mla_gluon_ps.py | sed 's/^from \.mla_gluon_ss import/from ss_old import/' > .devscripts/old4/ps_old.py
  git show 60aa972:kernels/mla_decode.py | sed 's/from \.mla_gluon_ps import/from ps_old import/; s/from \./from mlatune.kernels./' > .devscripts/old4/md_old.py
Run from the repository root: python results/runs/2026-11-29-combine/ab_pdl.py  (writes $OUT/ab_pdl.json; exit status 0
when the geomean of new/old is under 0.995 and every output matched)"""
import importlib, json, math, os, sys
import torch
sys.path.insert(0, os.environ.get("OLD", ".devscripts/old4"))
import md_old
from mlatune.kernels import Config
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.bench import time_cuda
from mlatune.verify import make_launch
md = importlib.import_module("mlatune.kernels.mla_decode")
RUNNERS = dict(old=md_old, new=md, old2=md_old, new2=md)
shapes = [(128, 4096, 16, 1, "normal", 5), (128, 4096, 32, 1, "normal", 5), (128, 4096, 16, 2, "normal", 5),
          (128, 16384, 16, 1, "normal", 5), (128, 4096, 128, 1, "normal", 7), (128, 1024, 128, 1, "normal", 5),
          (16, 32768, 128, 2, "lognormal", 5), (8, 8192, 128, 2, "lognormal", 5), (16, 8192, 128, 1, "lognormal", 5),
          (4, 32768, 64, 2, "lognormal", 5), (16, 32768, 128, 1, "lognormal", 7), (2, 32768, 64, 1, "lognormal", 5)]
res, ratios, same = [], [], True
for batch, L, h, s_q, dist, g in shapes:
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q, dist=dist)
    x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
    cfg = Config(block_n=64, block_h=64, num_splits=0, num_warps=8, num_stages=2, gluon=g)
    outs, us = {}, {}
    for name, runner in RUNNERS.items():
        fn, out, lse = make_launch(runner, x, cfg, w.causal)
        out.fill_(float("nan")); lse.fill_(float("nan"))
        fn(); torch.cuda.synchronize()
        outs[name] = (out.clone(), lse.clone())
        us[name] = time_cuda(fn).median_us
        r = dict(batch=batch, L=L, h=h, s_q=s_q, dist=dist, gluon=g, variant=name, us=round(us[name], 2))
        if name != "old":
            r["max_abs_diff_vs_old"] = max((out.float() - outs["old"][0].float()).abs().max().item(),
                                           (lse - outs["old"][1]).abs().max().item())
            r["nan"] = bool(torch.isnan(out).any() or torch.isnan(lse).any())
            same = same and r["max_abs_diff_vs_old"] == 0 and not r["nan"]
        print(json.dumps(r), flush=True); res.append(r)
    ratios.append((us["new"] + us["new2"]) / (us["old"] + us["old2"]))
    print(f"# {batch}x{L} h{h} s{s_q} {dist} g{g}: old {us['old']:.1f}/{us['old2']:.1f} new {us['new']:.1f}/{us['new2']:.1f}"
          f" new/old {ratios[-1]:.4f}", flush=True)
gm = math.exp(sum(map(math.log, ratios)) / len(ratios))
print(f"# geomean new/old {gm:.4f} over {len(ratios)}; outputs identical: {same}")
json.dump(res, open(os.environ.get("OUT", "/tmp") + "/ab_pdl.json", "w"), indent=1)
sys.exit(0 if gm < 0.995 and same else 1)
