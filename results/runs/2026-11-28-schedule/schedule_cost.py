import torch, time
from mlatune.kernels import Config
from mlatune.kernels.mla_decode import schedule
cfg = Config(block_n=64, block_h=64, num_splits=2, num_warps=8, num_stages=2, gluon=3)
for batch, splits in ((128, 2), (128, 8), (16, 16)):
    sl = torch.randint(1, 8192, (batch,), device="cuda", dtype=torch.int32)
    for _ in range(5): schedule(cfg, sl, splits, 8192)
    torch.cuda.synchronize(); t = time.perf_counter(); n = 200
    for _ in range(n): schedule(cfg, sl, splits, 8192)
    torch.cuda.synchronize(); host = (time.perf_counter() - t) / n * 1e6
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(n): schedule(cfg, sl, splits, 8192)
    e1.record(); torch.cuda.synchronize()
    print(f"schedule batch {batch} splits {splits}: {host:.1f} us per call (host-bound loop), {e0.elapsed_time(e1) / n * 1e3:.1f} us per call on the GPU stream")
