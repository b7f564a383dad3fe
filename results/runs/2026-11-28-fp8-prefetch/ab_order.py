"""gluon=6 with and without the piece order (schedule(): longest pieces first) on the fp8 sweep's lognormal shapes at
h_q 16: each config verified, then both timed in the same process (CUDA graph, L2 flushed). JSON lines on stdout."""
import importlib, json
from mlatune.kernels import Config
from mlatune.bench import time_cuda
from mlatune.verify import make_launch, verify_config, reference, device_inputs
from mlatune.workload import Workload, timing_seqlens, flops_bytes
md = importlib.import_module("mlatune.kernels.mla_decode")

shapes = [(128, 32768, 1), (128, 8192, 1), (128, 1024, 1), (128, 32768, 2), (128, 8192, 2), (16, 32768, 1), (16, 8192, 1)]
for (b, L, s) in shapes:
    w = Workload(batch=b, seqlen=L, h_q=16, s_q=s, dist="lognormal", kv_format="fp8")
    inp = device_inputs(w, "cuda", seqlens=timing_seqlens(w))
    ref = reference(inp, w.causal)
    _, nbytes = flops_bytes(w, int(inp["cache_seqlens"].sum()))
    for ns in (4, 8, 16):
        cfg = Config(block_n=64, block_h=16 if s == 1 else 32, num_splits=ns, num_warps=4, num_stages=2, gluon=6)
        ok = verify_config(md, inp, ref, cfg, w.causal).ok
        for ordered in (False, True):
            fn, _, _ = make_launch(md, inp, cfg, w.causal, ordered=ordered)
            t = time_cuda(fn, warmup=3, min_reps=20, max_reps=100, target_noise=0.02, time_cap_s=0.5)
            print(json.dumps(dict(batch=b, seqlen=L, s_q=s, splits=ns, ordered=ordered, ok=bool(ok),
                                  us=round(t.median_us, 2), tbps=round(nbytes / t.median_us / 1e6, 3))), flush=True)
