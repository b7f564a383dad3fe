"""Launch one kernel a few times for ncu: ours (gluon=3, one program per sequence and row group) or FlashMLA's dense
sm90 decode (the peer library) on the same inputs. Run from the repository root:
  python results/runs/2026-11-29-combine/prof.py {g3|g5|fm} BATCH SEQLEN H_Q S_Q DIST [LIB]"""
import sys
import torch
from mlatune.kernels import Config
from mlatune.kernels.config import D_QK
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.verify import make_launch
import importlib
md = importlib.import_module("mlatune.kernels.mla_decode")
v, batch, L, h, s, dist = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s, dist=dist)
x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
if v == "fm":
    from mlatune.peer import FlashMLA
    fm = FlashMLA(sys.argv[7] if len(sys.argv) > 7 else ".devscripts/flashmla_sm90.so")
    meta, ns = fm.metadata(x["cache_seqlens"], s, h)

    def call():
        fm(x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"], meta, ns, softmax_scale=D_QK ** -0.5, causal=w.causal)
else:
    g = int(v[1:])
    cfg = Config(block_n=64, block_h=64, num_splits=1 if g == 3 else 0, num_warps=8, num_stages=2, gluon=g)
    call, _, _ = make_launch(md, x, cfg, w.causal)
for _ in range(3):
    call()
torch.cuda.synchronize()
