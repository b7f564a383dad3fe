"""A/B of gluon=6 variants (files in .devscripts/variants, rebuilt by make_variants.sh from the kernel of commit
9d66240 and variants.diff / variant-E.diff) on a few fp8 shapes: verified, then timed (CUDA graph, L2 flushed).
Arguments: variants (NAME or NAME@maxnreg, comma-separated), stage counts (default 1,2)."""
import importlib, importlib.util, sys, json
import torch
from mlatune.kernels import Config
from mlatune.bench import time_cuda
from mlatune.verify import make_launch, verify_config, reference, device_inputs
from mlatune.workload import Workload, timing_seqlens, flops_bytes
md = importlib.import_module("mlatune.kernels.mla_decode")

def load(name):
    spec = importlib.util.spec_from_file_location(f"fp8r_{name}", f".devscripts/variants/fp8r_{name}.py")
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m.split_kernel_fp8r

class MaxReg:
    def __init__(self, k, n): self.k, self.n = k, n
    def __getitem__(self, grid):
        f = self.k[grid]
        return lambda *a, **kw: f(*a, maxnreg=self.n, **kw)

variants = {}
for v in sys.argv[1].split(","):
    name, _, mx = v.partition("@")
    k = load(name)
    variants[v] = MaxReg(k, int(mx)) if mx else k
stages = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1,2").split(",")]
shapes = [(128, 32768, 16, 1), (128, 8192, 16, 1), (128, 8192, 16, 2), (16, 32768, 16, 1)]
rows = []
for (b, L, h, s) in shapes:
    w = Workload(batch=b, seqlen=L, h_q=h, s_q=s, dist="lognormal", kv_format="fp8")
    inp = device_inputs(w, "cuda", seqlens=timing_seqlens(w))
    ref = reference(inp, w.causal)
    _, nbytes = flops_bytes(w, int(inp["cache_seqlens"].sum()))
    for v, k in variants.items():
        md.split_kernel_fp8r = k
        for st in stages:
            for ns in (8, 16):
                cfg = Config(block_n=64, block_h=16 if s == 1 else 32, num_splits=ns, num_warps=4, num_stages=st, gluon=6)
                try:
                    chk = verify_config(md, inp, ref, cfg, w.causal)
                    fn, _, _ = make_launch(md, inp, cfg, w.causal)
                    t = time_cuda(fn, warmup=3, min_reps=20, max_reps=100, target_noise=0.02, time_cap_s=0.5)
                    r = dict(variant=v, batch=b, seqlen=L, s_q=s, stages=st, splits=ns, ok=bool(chk.ok), us=round(t.median_us, 2), tbps=round(nbytes / t.median_us / 1e6, 3))
                except Exception as e:
                    r = dict(variant=v, batch=b, seqlen=L, s_q=s, stages=st, splits=ns, error=str(e)[:200])
                print(json.dumps(r), flush=True)
