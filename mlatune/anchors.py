"""The best measured config per FlashMLA benchmark shape against FlashMLA's H200 figures (results/anchors/)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .kernels.config import source_hash
from .store import results

ANCHORS = Path(__file__).resolve().parent.parent / "results" / "anchors" / "h200_mla_decode_peers.csv"


def versus_flashmla(db, sweep: str = "flashmla-bench", anchors=ANCHORS) -> pd.DataFrame:
    """Best config per shape among the measurements of the installed kernels (their source hash)."""
    df = results(db, kernel_hash=source_hash())
    df = df[(df.sweep == sweep) & (df.status == "ok") & ~df.interpreted.astype(bool)]
    best = df.loc[df.groupby(["h_q", "s_q", "seqlen", "dist"]).time_us.idxmin()]
    anc = pd.read_csv(anchors)
    anc["dist"] = anc.varlen.map({0: "fixed", 1: "normal"})
    m = best.merge(anc, left_on=["h_q", "s_q", "seqlen", "dist"], right_on=["h_q", "s_q", "seqlen_k", "dist"])
    m["tbps"] = m.gbps / 1000
    m["ratio"] = m.flashmla_us / m.time_us
    m["vs_sglang"] = m.sglang_triton_default_us / m.time_us
    cols = ["batch_x", "s_q", "h_q", "seqlen", "dist", "block_n", "block_h", "num_splits", "num_warps", "gluon", "time_us",
            "tbps", "tflops", "flashmla_us", "flashmla_gbps", "flashmla_tflops", "ratio", "sglang_triton_default_us", "vs_sglang"]
    return m[cols].rename(columns={"batch_x": "batch"}).sort_values(["s_q", "h_q", "seqlen", "dist"])


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default="results/h200.db")
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()
    m = versus_flashmla(a.db)
    pd.set_option("display.width", 220)
    print(m.round(3).to_string(index=False))
    g = math.exp(m.ratio.map(math.log).mean())
    print(f"geomean vs FlashMLA over {len(m)} shapes: {g:.3f}; range {m.ratio.min():.2f}-{m.ratio.max():.2f}")
    if a.csv:
        m.to_csv(a.csv, index=False)


if __name__ == "__main__":
    main()
