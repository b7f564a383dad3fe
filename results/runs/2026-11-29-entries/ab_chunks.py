"""A/B: gluon=5 with per-chunk tile barriers (new: 46647ca with chunks.diff applied) against one barrier per tile half
(old: 46647ca's kernels, in $OLD), same inputs, one process, each variant twice (interleaved). The old copies:
  mkdir -p .devscripts/old2 && git show 46647ca:kernels/mla_gluon_ss.py > .devscripts/old2/ss_old.py
  git show 46647ca:kernels/mla_gluon_ps.py | sed 's/^from \.mla_gluon_ss import/from ss_old import/' > .devscripts/old2/ps_old.py
Run from the repository root: OLD=.devscripts/old2 python results/runs/2026-11-29-entries/ab_chunks.py"""
import importlib, json, os, sys
import torch
sys.path.insert(0, os.environ.get("OLD", ".devscripts/old2"))
import ss_old, ps_old
from mlatune.kernels import Config
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.bench import time_cuda
from mlatune.verify import make_launch
md = importlib.import_module("mlatune.kernels.mla_decode")
NEW = dict(ss=md.split_kernel_ss, ps=md.split_kernel_ps)
OLD = dict(ss=ss_old.split_kernel_ss, ps=ps_old.split_kernel_ps)


def cfg_of(v):
    if v.startswith("g5"):
        return Config(block_n=64, block_h=64, num_splits=0, num_warps=8, num_stages=2, gluon=5)
    return Config(block_n=64, block_h=64, num_splits=int(v[2:]), num_warps=8, num_stages=2, gluon=3)


shapes = [((66, 16384, 128, 1, "fixed"), ["g5"]), ((16, 32768, 128, 1, "lognormal"), ["g5"]),
          ((8, 8192, 128, 2, "lognormal"), ["g5"]), ((128, 1024, 128, 1, "fixed"), ["g5"]),
          ((128, 4096, 16, 1, "normal"), ["g5"]), ((4, 32768, 64, 2, "lognormal"), ["g5"])]
res = []
for (batch, L, h, s_q, dist), kinds in shapes:
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q, dist=dist)
    x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
    for kind in kinds:
        cfg = cfg_of(kind)
        outs = {}
        for name in ("old", "new", "old2", "new2"):
            ks = OLD if name.startswith("old") else NEW
            md.split_kernel_ss, md.split_kernel_ps = ks["ss"], ks["ps"]
            fn, out, lse = make_launch(md, x, cfg, w.causal)
            out.fill_(float("nan"))

            def call(ks=ks, fn=fn):
                md.split_kernel_ss, md.split_kernel_ps = ks["ss"], ks["ps"]
                fn()
            call(); torch.cuda.synchronize()
            outs[name] = out.clone()
            t = time_cuda(call)
            r = dict(batch=batch, L=L, h=h, s_q=s_q, dist=dist, kernel=kind, variant=name, us=round(t.median_us, 2),
                     p20=round(t.p20_us, 2), p80=round(t.p80_us, 2))
            if name != "old":
                r["max_abs_diff_vs_old"] = (out.float() - outs["old"].float()).abs().max().item()
                r["nan"] = bool(torch.isnan(out).any())
            print(json.dumps(r), flush=True); res.append(r)
md.split_kernel_ss, md.split_kernel_ps = NEW["ss"], NEW["ps"]
json.dump(res, open(os.environ.get("OUT", "/tmp") + "/ab_chunks.json", "w"), indent=1)
