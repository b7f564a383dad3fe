"""cProfile of runtime.run() on small shapes (host-bound): where the per-call host time goes."""
import cProfile, pstats, io, time, torch
from mlatune import runtime
from mlatune.workload import Workload, make_inputs
for w in (Workload(1, 1024, 16, 1, dist="fixed"), Workload(2, 1024, 128, 1, dist="fixed"), Workload(8, 4096, 128, 1, dist="lognormal")):
    inp = make_inputs(w, "cuda", seed=0)
    args = (inp["q"], inp["kv_cache"], inp["block_table"], inp["cache_seqlens"])
    p = runtime.plan(w.batch, w.s_q, w.h_q, inp["cache_seqlens"], page_size=w.page_size, device="cuda")
    for _ in range(20): runtime.run(p, *args, causal=True)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(500): runtime.run(p, *args, causal=True)
    torch.cuda.synchronize()
    per = (time.perf_counter() - t) / 500 * 1e6
    t = time.perf_counter()
    for _ in range(50): runtime.plan(w.batch, w.s_q, w.h_q, inp["cache_seqlens"], page_size=w.page_size, device="cuda")
    torch.cuda.synchronize()
    plan_us = (time.perf_counter() - t) / 50 * 1e6
    pr = cProfile.Profile(); pr.enable()
    for _ in range(300): runtime.run(p, *args, causal=True)
    pr.disable(); torch.cuda.synchronize()
    s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(18)
    print(f"== {w.key()} cfg {p.config.key()} splits {p.splits} order {p.order is not None}: run {per:.1f} us/call, plan (seqlens tensor) {plan_us:.1f} us")
    print(s.getvalue()[:5000])
