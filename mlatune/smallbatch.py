"""Our sweep's best config against FlashMLA, both timed in one process on the same inputs (small batches)."""
from __future__ import annotations

import argparse
import csv
import math
import os
import time
from pathlib import Path

import importlib

import pandas as pd
import torch

from .bench import time_cuda
from .compile import precompile
from .kernels import Config
from .kernels.config import D_QK, source_hash
from .spec import KNOBS
from .store import results
from .verify import compare, make_launch, reference, verify_config
from .workload import Workload, flops_bytes, make_inputs, timing_seqlens

KERNEL = importlib.import_module("mlatune.kernels.mla_decode")
WORKLOAD_COLS = ["batch", "seqlen", "h_q", "s_q", "kv_format", "page_size", "dist", "causal"]


def best_configs(db, sweep: str, max_batch: int, min_seqlen: int) -> pd.DataFrame:
    """Fastest verified config per workload of `sweep` among the installed kernels' rows."""
    df = results(db, kernel_hash=source_hash())
    df = df[(df.sweep == sweep) & (df.status == "ok") & ~df.interpreted & (df.kv_format == "bf16")
            & (df.page_size == 64) & (df.batch <= max_batch) & (df.seqlen >= min_seqlen)]
    if df.empty:
        raise SystemExit(f"no verified bf16 page-64 rows of sweep {sweep!r} at batch <= {max_batch} in {db} "
                         f"for kernel hash {source_hash()}")
    return df.loc[df.groupby(WORKLOAD_COLS[:-1]).time_us.idxmin()].sort_values(["h_q", "s_q", "seqlen", "batch"])


def measure(fm, w: Workload, cfg: Config, seed: int = 0) -> dict:
    """Verify both kernels on fresh inputs, then time both on the workload's timing seqlens."""
    r = dict(w.to_dict(), **cfg.to_dict())
    vin = make_inputs(w, "cuda", seed=seed + 1)
    ref = reference(vin, w.causal)
    chk = verify_config(KERNEL, vin, ref, cfg, w.causal)
    r["ours_err"] = chk.err_rel
    meta, nsplit = fm.metadata(vin["cache_seqlens"], w.s_q, w.h_q)
    out, lse = fm(vin["q"], vin["kv_cache"], vin["block_table"], vin["cache_seqlens"], meta, nsplit,
                  softmax_scale=D_QK ** -0.5, causal=w.causal)
    torch.cuda.synchronize()
    fchk = compare(out, lse, *ref)  # FlashMLA gets our bf16 gate's bounds
    r["flashmla_err"] = fchk.err_rel
    if not (chk.ok and fchk.ok):
        return dict(r, status="incorrect", reason=f"ours: {chk.reason or 'ok'}; flashmla: {fchk.reason or 'ok'}")
    inp = make_inputs(w, "cuda", seed=seed, seqlens=timing_seqlens(w))
    total = int(inp["cache_seqlens"].sum())
    flops, nbytes = flops_bytes(w, total)
    ours, _, _ = make_launch(KERNEL, inp, cfg, w.causal)
    meta, nsplit = fm.metadata(inp["cache_seqlens"], w.s_q, w.h_q)  # like ours, planned once per step

    def theirs():
        fm(inp["q"], inp["kv_cache"], inp["block_table"], inp["cache_seqlens"], meta, nsplit,
           softmax_scale=D_QK ** -0.5, causal=w.causal)

    t_ours, t_fm = time_cuda(ours), time_cuda(theirs)
    return dict(r, status="ok", total_tokens=total, ours_us=t_ours.median_us, flashmla_us=t_fm.median_us,
                ours_spread=t_ours.rel_spread, flashmla_spread=t_fm.rel_spread,
                ours_gbps=nbytes / t_ours.median_us / 1e3, flashmla_gbps=nbytes / t_fm.median_us / 1e3,
                ours_tflops=flops / t_ours.median_us / 1e6, ratio=t_fm.median_us / t_ours.median_us)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default="results/h200.db")
    ap.add_argument("--sweep", default="deepseek-v3")
    ap.add_argument("--lib", required=True, help="FlashMLA built by `python -m mlatune.peer build`")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--min-seqlen", type=int, default=4096)
    ap.add_argument("--jobs", type=int, default=16, help="parallel compile processes")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    a = ap.parse_args()
    from .peer import FlashMLA

    fm = FlashMLA(a.lib)
    best = best_configs(a.db, a.sweep, a.max_batch, a.min_seqlen)
    plan = []
    for _, row in best.iterrows():
        w = Workload(**{k: (bool(row[k]) if k == "causal" else row[k].item() if hasattr(row[k], "item") else row[k])
                        for k in WORKLOAD_COLS})
        plan.append((w, Config(**{k: int(row[k]) for k in KNOBS}), float(row.time_us)))
    t0 = time.time()
    fam = {(w.h_q, w.s_q, c): (dict(w.to_dict(), dist="fixed", seqlen=4096), c.to_dict()) for w, c, _ in plan}
    precompile(list(fam.values()), a.jobs)
    print(f"{len(plan)} shapes, {len(fam)} variants compiled in {time.time() - t0:.0f}s", flush=True)
    rows = []
    for w, cfg, swept_us in plan:
        r = measure(fm, w, cfg)
        r["swept_us"] = swept_us
        rows.append(r)
        if r["status"] == "ok":
            print(f"{w.key():40s} ours {r['ours_us']:8.1f}us (swept {swept_us:8.1f}) flashmla {r['flashmla_us']:8.1f}us "
                  f"ratio {r['ratio']:.2f}  {cfg.key()}", flush=True)
        else:
            print(f"{w.key():40s} {r['status']}: {r['reason']}", flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    path = Path(a.out) / "smallbatch.csv"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(rows)
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        g = math.exp(sum(math.log(r["ratio"]) for r in ok) / len(ok))
        wins = sum(r["ratio"] >= 1 for r in ok)
        print(f"geomean FlashMLA time / ours over {len(ok)} shapes: {g:.3f}; ours at least as fast on {wins}; "
              f"range {min(r['ratio'] for r in ok):.2f}-{max(r['ratio'] for r in ok):.2f}; raw data {path}")


if __name__ == "__main__":
    main()
