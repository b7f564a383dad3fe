"""A/B of a change to the seesaw kernels (mla_gluon_ss.py: gluon=3, and 5 and 7 through it): new, the working tree,
against old, copies in $OLD. Same inputs, one process, each variant twice (interleaved). Exit status 0 when the
geomean of new/old is under 0.99 and the outputs agree (bit for bit, except with AB=softmax, whose FFMA rounds
once where a multiply and a subtract rounded twice, within 1/64 of the largest |output|, and no NaN).
  AB=handoff: the four hand-offs per tile pair on named barriers (the producer's threads `bar.arrive`, the consumer's
    `bar.sync`, as FlashMLA's; handoff.diff on 60aa972) against mbarriers (a warpgroup barrier, one elected arrive, the
    other warpgroup's try-wait loop). OLD=.devscripts/old3, 60aa972's kernels:
      mkdir -p .devscripts/old3 && git show 60aa972:kernels/mla_gluon_ss.py > .devscripts/old3/ss_old.py
      git show 60aa972:kernels/mla_gluon_ps.py | sed 's/^from \.mla_gluon_ss import/from ss_old import/' > .devscripts/old3/ps_old.py
  AB=softmax: no selects in the pairs that cannot reach past a split's end (without the causal mask), and the scale
    inside exp2's argument (one FFMA per score). OLD=.devscripts/old5: 60aa972's mla_gluon_ss.py as ss_old.py and the
    tree's mla_gluon_ps.py importing it as ps_old.py (the same sed).
  AB=causal: with s_q 2 only a split's last pair is masked (CAUSAL 1; the only key it hides is the sequence's last),
    against every pair (1745cd1's kernels, to which CAUSAL 1 is true). Outputs bit for bit; s_q 2 shapes only.
    OLD=.devscripts/old6: 1745cd1's mla_gluon_ss.py and mla_gluon_ps.py (the same sed).
  AB=order: warpgroup 1 signals P1 only after it has issued its PV on P0 (as FlashMLA orders them), against before
    (c262f59's kernels, OLD=.devscripts/old7, the same way). Outputs bit for bit; the handoff shapes.
  AB=fence: warpgroup 1 fences P1's stores after issuing its PV on P1, not before (fence.diff; OLD=.devscripts/old8,
    fccb418's kernels). Outputs bit for bit; the handoff shapes.
  AB=v0l: warpgroup 0 requests tile 2j+2's left half after warpgroup 1's maximum arrives, not before (FlashMLA's
    place; v0l_after_m1.diff; OLD=.devscripts/old9, e8819b7's kernels). Outputs bit for bit; the handoff shapes.
Run from the repository root: AB=softmax OLD=.devscripts/old5 python results/runs/2026-11-29-combine/ab_ss.py
(writes $OUT/ab_$AB.json)"""
import importlib, json, math, os, sys
import torch
AB = os.environ.get("AB", "handoff")
sys.path.insert(0, os.environ.get("OLD", ".devscripts/old3"))
import ss_old, ps_old
from mlatune.kernels import Config
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.bench import time_cuda
from mlatune.verify import make_launch
md = importlib.import_module("mlatune.kernels.mla_decode")
NEW = (md.split_kernel_ss, md.split_kernel_ps)
OLD = (ss_old.split_kernel_ss, ps_old.split_kernel_ps)


def use(ks):
    md.split_kernel_ss, md.split_kernel_ps = ks


shapes = [((66, 16384, 128, 1, "fixed"), [(3, 1), (5, 0), (7, 0)]), ((128, 1024, 128, 1, "fixed"), [(3, 1), (5, 0)]),
          ((128, 4096, 64, 1, "fixed"), [(3, 1)]), ((128, 4096, 16, 1, "normal"), [(5, 0), (3, 0)]),
          ((128, 4096, 128, 1, "normal"), [(7, 0)]), ((16, 32768, 128, 2, "lognormal"), [(5, 0), (7, 0)]),
          ((8, 8192, 128, 2, "lognormal"), [(5, 0)]), ((16, 8192, 128, 1, "lognormal"), [(5, 0), (3, 8)]),
          ((4, 32768, 64, 2, "lognormal"), [(5, 0)]), ((128, 1024, 64, 2, "normal"), [(3, 0)])]
if AB == "causal":  # the s_q 2 shapes where the tables' configs were slowest against FlashMLA, and a few more
    shapes = [((128, 1024, 16, 2, "normal"), [(3, 2)]), ((128, 1024, 64, 2, "fixed"), [(3, 1)]),
              ((128, 1024, 128, 2, "fixed"), [(3, 1)]), ((128, 4096, 64, 2, "fixed"), [(7, 0)]),
              ((128, 4096, 64, 2, "normal"), [(5, 0)]), ((128, 4096, 128, 2, "fixed"), [(3, 1)]),
              ((128, 16384, 32, 2, "normal"), [(3, 4)]), ((8, 8192, 64, 2, "lognormal"), [(3, 16)]),
              ((16, 8192, 64, 2, "lognormal"), [(3, 4)]), ((4, 32768, 64, 2, "lognormal"), [(7, 0)]),
              ((8, 32768, 128, 2, "lognormal"), [(7, 0)]), ((16, 8192, 128, 2, "lognormal"), [(7, 0)])]
res, ratios, same = [], [], True
for (batch, L, h, s_q, dist), cfgs in shapes:
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q, dist=dist)
    x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
    for g, splits in cfgs:
        cfg = Config(block_n=64, block_h=64, num_splits=splits, num_warps=8, num_stages=2, gluon=g)
        outs, us = {}, {}
        for name in ("old", "new", "old2", "new2"):
            ks = OLD if name.startswith("old") else NEW
            use(ks)
            fn, out, lse = make_launch(md, x, cfg, w.causal)
            out.fill_(float("nan"))

            def call(ks=ks, fn=fn):
                use(ks)
                fn()
            call(); torch.cuda.synchronize()
            outs[name] = out.clone()
            us[name] = time_cuda(call).median_us
            r = dict(batch=batch, L=L, h=h, s_q=s_q, dist=dist, gluon=g, splits=splits, variant=name, us=round(us[name], 2))
            if name != "old":
                r["max_abs_diff_vs_old"] = (out.float() - outs["old"].float()).abs().max().item()
                r["nan"] = bool(torch.isnan(out).any())
                bound = 0 if AB != "softmax" else outs["old"].float().abs().max().item() / 64
                same = same and r["max_abs_diff_vs_old"] <= bound and not r["nan"]
            print(json.dumps(r), flush=True); res.append(r)
        ratios.append((us["new"] + us["new2"]) / (us["old"] + us["old2"]))
        print(f"# {batch}x{L} h{h} s{s_q} {dist} g{g}/{splits}: new/old {ratios[-1]:.4f}", flush=True)
use(NEW)
gm = math.exp(sum(map(math.log, ratios)) / len(ratios))
print(f"# geomean new/old {gm:.4f} over {len(ratios)}; outputs agree: {same}")
json.dump(res, open(os.environ.get("OUT", "/tmp") + f"/ab_{AB}.json", "w"), indent=1)
sys.exit(0 if gm < 0.99 and same else 1)
