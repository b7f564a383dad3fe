"""Timing: CUDA-graph replays with L2 flushed before each, medians and spread; wall clock in the interpreter."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    median_us: float
    p20_us: float
    p80_us: float
    reps: int
    graph: bool
    interpreted: bool

    @property
    def rel_spread(self) -> float:
        return (self.p80_us - self.p20_us) / self.median_us if self.median_us > 0 else float("inf")


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[i]


def _summary(times_us: list[float], graph: bool, interpreted: bool) -> Timing:
    return Timing(statistics.median(times_us), _quantile(times_us, 0.2), _quantile(times_us, 0.8), len(times_us), graph, interpreted)


def time_cpu(fn, reps: int = 3) -> Timing:
    """Wall clock for the interpreter: not for tuning."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e6)
    return _summary(times, graph=False, interpreted=True)


def time_cuda(fn, warmup: int = 5, min_reps: int = 20, max_reps: int = 400, target_noise: float = 0.01,
              time_cap_s: float = 2.0, use_graph: bool = True, flush_bytes: int = 256 << 20) -> Timing:
    """Median of single replays, each after an L2 flush; repeats until the median's relative
    standard error is under target_noise, max_reps, or time_cap_s."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    run = fn
    if use_graph:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()  # allocations happen outside the capture
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        run = graph.replay
        run()
    flush = torch.empty(flush_bytes, dtype=torch.int8, device="cuda")
    times: list[float] = []
    t_end = time.perf_counter() + time_cap_s
    while True:
        batch = 10
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(batch)]
        for s, e in ev:
            flush.zero_()
            s.record()
            run()
            e.record()
        torch.cuda.synchronize()
        times += [s.elapsed_time(e) * 1e3 for s, e in ev]
        if len(times) >= min_reps:
            med = statistics.median(times)
            # relative standard error of the median ~ 1.25 * stdev / sqrt(n) / median
            sem = 1.2533 * statistics.stdev(times) / (len(times) ** 0.5) / med if med > 0 else 0.0
            if sem < target_noise or len(times) >= max_reps or time.perf_counter() > t_end:
                break
    return _summary(times, graph=use_graph, interpreted=False)
