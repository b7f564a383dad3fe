"""gluon=4 against the Triton fp8 kernel on the fp8 sweep's h_q 16 workloads (same workloads, same seqlens):
best time of each, their ratio, and gluon=4's fp8 bytes per second. Run from the repo root:
python results/runs/2026-11-28-fp8-gluon/g4_vs_triton.py > results/runs/2026-11-28-fp8-gluon/g4_vs_triton.txt"""
import pandas as pd

from mlatune.kernels.config import source_hash
from mlatune.store import results

df = results("results/h200.db", kernel_hash=source_hash(), sweep="fp8", kv_format="fp8", h_q=16, status="ok")
k = ["batch", "seqlen", "h_q", "s_q"]
best = lambda g: df[df.gluon == g].sort_values("time_us").groupby(k).first()  # noqa: E731
g4, tri = best(4), best(0)
out = pd.DataFrame({"gluon4_us": g4.time_us, "gluon4_tbps": g4.gbps / 1e3, "triton_us": tri.time_us})
out["gluon4_over_triton"] = out.gluon4_us / out.triton_us
pd.set_option("display.width", 200)
print(out.round(3).to_string())
print(f"gluon4/triton range {out.gluon4_over_triton.min():.2f}-{out.gluon4_over_triton.max():.2f}")
