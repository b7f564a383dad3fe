"""Host-side cost of the runtime's plan() and run() next to the kernel's own time (GPU)."""
from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from . import runtime
from .bench import time_cuda
from .workload import Workload, make_inputs

SHAPES = [Workload(128, 4096, 128, 1, dist="fixed"), Workload(1, 1024, 16, 1, dist="fixed"), Workload(64, 8192, 16, 2, dist="fixed")]


def measure(w: Workload, calls: int = 2000) -> dict:
    inp = make_inputs(w, "cuda", seed=0)
    args = (inp["q"], inp["kv_cache"], inp["block_table"], inp["cache_seqlens"])
    t = time.perf_counter()
    for _ in range(50):
        p = runtime.plan(w.batch, w.s_q, w.h_q, w.seqlen, page_size=w.page_size, device="cuda")
    plan_us = (time.perf_counter() - t) / 50 * 1e6
    runtime.run(p, *args, causal=True)  # first call: full input check, compile
    torch.cuda.synchronize()
    host = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            runtime.run(p, *args, causal=True)
        host.append((time.perf_counter() - t) / calls * 1e6)
        torch.cuda.synchronize()
    kern = time_cuda(lambda: runtime.run(p, *args, causal=True))
    return dict(workload=w.key(), config=p.config.key(), splits=p.splits, source=p.source, plan_us=plan_us,
                run_host_us=statistics.median(host), kernel_us=kern.median_us)


def main() -> None:
    rows = [measure(w) for w in SHAPES]
    for r in rows:
        print(json.dumps(r))
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
