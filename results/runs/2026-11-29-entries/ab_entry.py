"""A/B: the block-table entries read at each pair's start (new, the working tree) against read just before each tile
request (old, .devscripts/old), gluon=3 and gluon=5, same inputs, one process, each variant twice (interleaved).
The `new` measured here read them early in both kernels (gluon=3 too); the kept form reads them early in gluon=5
only (EARLY in mla_gluon_ss.py), so with today's tree both `new` rows of gluon=3 equal `old`. The old copies:
  mkdir -p .devscripts/old && git show 28acb3b:kernels/mla_gluon_ss.py > .devscripts/old/ss_old.py
  git show 28acb3b:kernels/mla_gluon_ps.py | sed 's/^from \.mla_gluon_ss import/from ss_old import/' > .devscripts/old/ps_old.py
Run from the repository root: python results/runs/2026-11-29-entries/ab_entry.py

With AB=chunks it is the A/B of gluon=5 with per-chunk tile barriers (new: 46647ca with chunks.diff applied) against
one barrier per tile half (old: 46647ca's kernels), on six gluon=5 shapes, into ab_chunks.json:
  mkdir -p .devscripts/old2 && git show 46647ca:kernels/mla_gluon_ss.py > .devscripts/old2/ss_old.py
  git show 46647ca:kernels/mla_gluon_ps.py | sed 's/^from \.mla_gluon_ss import/from ss_old import/' > .devscripts/old2/ps_old.py
  AB=chunks OLD=.devscripts/old2 python results/runs/2026-11-29-entries/ab_entry.py"""
import importlib, json, os, sys
import torch
CHUNKS = os.environ.get("AB") == "chunks"
sys.path.insert(0, os.environ.get("OLD", ".devscripts/old2" if CHUNKS else ".devscripts/old"))
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


shapes = [((66, 16384, 128, 1, "fixed"), ["g31", "g5"]), ((128, 16384, 128, 1, "fixed"), ["g31", "g5"]),
          ((128, 1024, 128, 1, "fixed"), ["g31"]), ((128, 4096, 16, 1, "fixed"), ["g31"]),
          ((128, 4096, 16, 1, "normal"), ["g30", "g5"]), ((128, 1024, 128, 1, "normal"), ["g30"]),
          ((16, 8192, 128, 1, "lognormal"), ["g5"]), ((16, 32768, 128, 1, "lognormal"), ["g5"]),
          ((8, 8192, 128, 2, "lognormal"), ["g5"]), ((4, 32768, 64, 2, "lognormal"), ["g5"])]
if CHUNKS:
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
json.dump(res, open(os.environ.get("OUT", "/tmp") + ("/ab_chunks.json" if CHUNKS else "/ab_entry.json"), "w"), indent=1)
