"""One fp8 shape for ncu: a gluon=6 (or 4) config, launched 3 times."""
import sys, torch, importlib
from mlatune.kernels import Config
from mlatune.verify import make_launch
from mlatune.workload import Workload, make_inputs, timing_seqlens
K = importlib.import_module("mlatune.kernels.mla_decode")
batch, L, h, s, splits, stages, bh, g = (int(x) for x in sys.argv[1:9])
w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s, dist="lognormal", kv_format="fp8")
inp = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
cfg = Config(block_n=64, block_h=bh, num_splits=splits, num_warps=4, num_stages=stages, gluon=g)
fn, _, _ = make_launch(K, inp, cfg, w.causal)
for _ in range(3):
    fn()
torch.cuda.synchronize()
