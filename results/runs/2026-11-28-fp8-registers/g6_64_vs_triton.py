"""gluon=6 at 64 rows a program (two warpgroups) against the Triton fp8 kernel (with and without qk_fp8) on the fp8
sweep's h_q 64 and 128 workloads (same workloads, same seqlens), and fp8's time over bf16's at equal work
(evaluate.fp8_vs_bf16). Run from the repo root:
python results/runs/2026-11-28-fp8-registers/g6_64_vs_triton.py > results/runs/2026-11-28-fp8-registers/g6_64_vs_triton.txt"""
import pandas as pd

from mlatune.evaluate import fp8_vs_bf16
from mlatune.kernels.config import source_hash
from mlatune.store import results

DB = "results/h200.db"
df = results(DB, kernel_hash=source_hash(), sweep="fp8", kv_format="fp8", status="ok")
df = df[df.h_q >= 64]
k = ["batch", "seqlen", "h_q", "s_q"]
best = lambda d: d.sort_values("time_us").groupby(k).first()  # noqa: E731
g6 = best(df[df.gluon == 6])
out = pd.DataFrame({"gluon6_us": g6.time_us, "gluon6_splits": g6.num_splits,
                    "triton_us": best(df[(df.gluon == 0) & (df.qk_fp8 == 0)]).time_us,
                    "triton_qk_fp8_us": best(df[(df.gluon == 0) & (df.qk_fp8 == 1)]).time_us})
out["gluon6_over_best_triton"] = out.gluon6_us / out[["triton_us", "triton_qk_fp8_us"]].min(axis=1)
ev = fp8_vs_bf16(DB).set_index(k)
out["fp8_over_bf16"] = ev.loc[out.index, "fp8_over_bf16"]
pd.set_option("display.width", 200)
print(out.round(3).to_string())
print(f"gluon6 / best Triton fp8 {out.gluon6_over_best_triton.min():.2f}-{out.gluon6_over_best_triton.max():.2f}; "
      f"fp8/bf16 at equal work {out.fp8_over_bf16.min():.2f}-{out.fp8_over_bf16.max():.2f}")
