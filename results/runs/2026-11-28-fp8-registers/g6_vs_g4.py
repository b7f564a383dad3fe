"""gluon=6 against gluon=4 and the Triton fp8 kernel on the fp8 sweep's h_q 16 workloads (same workloads, same
seqlens), with gluon=6's fp8 bytes per second and fp8's time over bf16's at equal work (evaluate.fp8_vs_bf16).
Run from the repo root: python results/runs/2026-11-28-fp8-registers/g6_vs_g4.py > results/runs/2026-11-28-fp8-registers/g6_vs_g4.txt"""
import pandas as pd

from mlatune.evaluate import fp8_vs_bf16
from mlatune.kernels.config import source_hash
from mlatune.store import results

DB = "results/h200.db"
df = results(DB, kernel_hash=source_hash(), sweep="fp8", kv_format="fp8", h_q=16, status="ok")
k = ["batch", "seqlen", "h_q", "s_q"]
best = lambda g: df[df.gluon == g].sort_values("time_us").groupby(k).first()  # noqa: E731
g6, g4, tri = best(6), best(4), best(0)
out = pd.DataFrame({"gluon6_us": g6.time_us, "gluon6_tbps": g6.gbps / 1e3,
                    "gluon6_cfg": "st" + g6.num_stages.astype(str) + " s" + g6.num_splits.astype(str)
                    + " h" + g6.block_h.astype(str),
                    "gluon4_us": g4.time_us, "triton_us": tri.time_us})
out["gluon6_over_gluon4"] = out.gluon6_us / out.gluon4_us
ev = fp8_vs_bf16(DB).set_index(k)
out["fp8_over_bf16"] = ev.loc[out.index, "fp8_over_bf16"]
pd.set_option("display.width", 200)
print(out.round(3).to_string())
print(f"gluon6/gluon4 range {out.gluon6_over_gluon4.min():.2f}-{out.gluon6_over_gluon4.max():.2f}; "
      f"fp8/bf16 at equal work {out.fp8_over_bf16.min():.2f}-{out.fp8_over_bf16.max():.2f}")
