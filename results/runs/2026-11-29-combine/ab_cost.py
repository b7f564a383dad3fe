"""Probe: gluon=5/7's plan with other per-segment costs (SEGMENT_COST_TILES, the tiles a segment's fixed cost counts
as when plan_segments cuts the batch into equal shares; 5 in the tree, FlashMLA's figure). Same inputs, one process,
the tree's value timed first and last. Run from the repository root:
  python results/runs/2026-11-29-combine/ab_cost.py  (writes $OUT/ab_cost.json)"""
import importlib, json, math, os
import torch
from mlatune.kernels import Config
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.bench import time_cuda
from mlatune.verify import make_launch
md = importlib.import_module("mlatune.kernels.mla_decode")
BASE = md.SEGMENT_COST_TILES
shapes = [(128, 4096, 16, 1, "normal", 5), (128, 4096, 32, 1, "normal", 5), (128, 4096, 16, 2, "normal", 5),
          (128, 4096, 128, 1, "normal", 7), (128, 1024, 128, 1, "normal", 5), (16, 8192, 128, 1, "lognormal", 5),
          (8, 8192, 128, 2, "lognormal", 5), (4, 32768, 64, 2, "lognormal", 5), (16, 32768, 128, 2, "lognormal", 7)]
res = []
for batch, L, h, s_q, dist, g in shapes:
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q, dist=dist)
    x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
    cfg = Config(block_n=64, block_h=64, num_splits=0, num_warps=8, num_stages=2, gluon=g)
    us = {}
    for cost in (BASE, 1, 2, 3, 8, 12, "base2"):
        md.SEGMENT_COST_TILES = BASE if cost == "base2" else cost
        fn, out, lse = make_launch(md, x, cfg, w.causal)
        us[cost] = round(time_cuda(fn).median_us, 2)
    md.SEGMENT_COST_TILES = BASE
    r = dict(batch=batch, L=L, h=h, s_q=s_q, dist=dist, gluon=g, us=us)
    print(json.dumps(r), flush=True); res.append(r)
json.dump(res, open(os.environ.get("OUT", "/tmp") + "/ab_cost.json", "w"), indent=1)
