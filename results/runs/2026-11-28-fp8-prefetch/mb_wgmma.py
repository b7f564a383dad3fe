import torch
from mb_kernel import mb  # run from this folder
X = torch.randn(64 * 256, device="cuda").to(torch.float16) * 0.01
out = torch.empty(132 * 8, device="cuda")
ITERS = 2048
for areg in (1, 0):
    for chains in (1, 2):
        for n in (16, 32, 64, 128):
            for per_sm in (1, 2, 3):
                grid = (132 * per_sm,)
                f = lambda: mb[grid](X, out, N=n, ITERS=ITERS, AREG=areg, CHAINS=chains, num_warps=4)
                f(); torch.cuda.synchronize()
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                for _ in range(5): f()
                e.record(); torch.cuda.synchronize()
                us = s.elapsed_time(e) * 1000 / 5
                n_mma = ITERS * chains * per_sm  # per SM
                print(f"areg={areg} chains={chains} N={n} per_sm={per_sm}: {us:.1f} us, {us * 1e-6 * 1.98e9 / n_mma:.1f} cycles per wgmma per SM (at 1.98 GHz)", flush=True)
