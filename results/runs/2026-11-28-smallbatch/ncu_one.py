"""One shape for ncu: our best config (seesaw) then FlashMLA, each launched 3 times."""
import sys, torch
from mlatune.kernels import Config
from mlatune.kernels.config import D_QK
from mlatune.peer import FlashMLA
from mlatune.verify import make_launch
from mlatune.workload import Workload, make_inputs, timing_seqlens
import importlib
K = importlib.import_module("mlatune.kernels.mla_decode")
batch, L, h, s = (int(x) for x in sys.argv[1:5])
dist = sys.argv[5]
splits = int(sys.argv[6])
w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s, dist=dist)
inp = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
cfg = Config(block_n=64, block_h=64, num_splits=splits, num_warps=8, num_stages=2, gluon=3)
fn, _, _ = make_launch(K, inp, cfg, w.causal)
for _ in range(3):
    fn()
fm = FlashMLA(".devscripts/flashmla_sm90.so")
meta, ns = fm.metadata(inp["cache_seqlens"], s, h)
for _ in range(3):
    fm(inp["q"], inp["kv_cache"], inp["block_table"], inp["cache_seqlens"], meta, ns, softmax_scale=D_QK ** -0.5, causal=True)
torch.cuda.synchronize()
