"""Exploration runs: time a grid of configs on FlashMLA's benchmark shapes (compiled in parallel first) and
compare with FlashMLA's H200 figures. The sweep's verification gate and timing are reused as they are."""
from __future__ import annotations

import csv
import itertools
import json
import math
import os
import time
from pathlib import Path

import importlib

import torch

from .anchors import ANCHORS
from .bench import time_cpu, time_cuda
from .kernels import Config, check_config
from .spec import KNOBS
from .compile import precompile
from .verify import make_launch, reference, verify_config
from .workload import Workload, flops_bytes, make_inputs, timing_seqlens

KERNEL = importlib.import_module("mlatune.kernels.mla_decode")  # the launcher module (the runner)


def anchor_rows(path: Path = ANCHORS) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def anchor_workload(row: dict, kv_format: str = "bf16") -> Workload:
    return Workload(batch=int(row["batch"]), seqlen=int(row["seqlen_k"]), h_q=int(row["h_q"]), s_q=int(row["s_q"]),
                    kv_format=kv_format, page_size=64, dist="normal" if row["varlen"] == "1" else "fixed", causal=True)


DEFAULT_GRID = dict(block_n=[32, 64], block_h=[16, 32, 64], num_splits=[0, 1, 2, 4, 8], num_warps=[4, 8],
                    num_stages=[1, 2], trans=[0], qk_fp8=[0])


def grid_configs(rows: int, kv_format: str = "bf16", grid: dict | None = None):
    """Configs worth timing for h_q*s_q = rows (block_h no larger than needed)."""
    g = dict(DEFAULT_GRID, **(grid or {}))
    cap = max(16, 1 << math.ceil(math.log2(rows)))
    names = list(g)
    out = []
    for vals in itertools.product(*(g[n] for n in names)):
        c = Config(**dict(zip(names, vals)))
        if c.block_h > cap and c.gluon in (0, 4, 6):  # gluon 1-3, 5 and 7 always take 64 rows
            continue
        if not check_config(c, kv_format, smem_limit=232448):
            out.append(c)
    return out


def measure(w: Workload, cfgs: list[Config], seed: int = 0, check: bool = True, device: str = "cuda",
            ordered: bool = True) -> list[dict]:
    """Verify (as the sweep does) and time each config on one set of inputs; one row per config.
    ordered=False launches gluon=3 without its piece order (programs take pieces in batch order)."""
    inp = make_inputs(w, device, seed=seed, seqlens=timing_seqlens(w))
    verify_inp = make_inputs(w, device, seed=seed + 1) if check else None
    ref = reference(verify_inp, w.causal) if check else None
    total = int(inp["cache_seqlens"].sum())
    flops, nbytes = flops_bytes(w, total)
    rows = []
    for cfg in cfgs:
        r = dict(w.to_dict(), **cfg.to_dict(), total_tokens=total, ordered=int(ordered))
        try:
            if check:
                chk = verify_config(KERNEL, verify_inp, ref, cfg, w.causal)
                r["err_rel"] = chk.err_rel
                if not chk.ok:
                    rows.append(dict(r, status="incorrect", reason=chk.reason))
                    continue
            call, _, _ = make_launch(KERNEL, inp, cfg, w.causal, ordered=ordered)
            t = time_cuda(call) if device.startswith("cuda") else time_cpu(call)
            r.update(status="ok", time_us=t.median_us, p20_us=t.p20_us, p80_us=t.p80_us, reps=t.reps,
                     gbps=nbytes / t.median_us / 1e3, tflops=flops / t.median_us / 1e6)
        except Exception as e:  # compile and resource failures are rows, not crashes
            r.update(status="invalid", reason=f"{type(e).__name__}: {str(e)[:200]}")
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        rows.append(r)
    return rows


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for the raw CSV and JSON")
    ap.add_argument("--shapes", default="", help="filter: comma list of h_q:s_q:seqlen:varlen, empty = all")
    ap.add_argument("--jobs", type=int, default=16, help="parallel compile processes")
    ap.add_argument("--configs", default="", help="JSON list of config dicts; default: the exploration grid")
    ap.add_argument("--grid", default="", help="JSON dict of knob lists overriding DEFAULT_GRID")
    ap.add_argument("--kv-format", default="bf16", choices=["bf16", "fp8", "fp8_flashmla"])
    ap.add_argument("--tag", default="explore")
    ap.add_argument("--no-order", action="store_true", help="time gluon=3 with its programs in batch order (no piece schedule)")
    a = ap.parse_args()
    rows = anchor_rows()
    if a.shapes:
        keep = set(a.shapes.split(","))
        rows = [r for r in rows if f"{r['h_q']}:{r['s_q']}:{r['seqlen_k']}:{r['varlen']}" in keep]
    plan = []
    for r in rows:
        w = anchor_workload(r, a.kv_format)
        grid = json.loads(a.grid) if a.grid else None
        cfgs = [Config(**d) for d in json.loads(a.configs)] if a.configs else grid_configs(w.h_q * w.s_q, w.kv_format, grid)
        plan.append((r, w, cfgs))
    fam = {}
    for _, w, cfgs in plan:
        for c in cfgs:
            fam[(w.h_q, w.s_q, w.seqlen, c)] = (dict(w.to_dict(), dist="fixed"), c.to_dict())
    t0 = time.time()
    comp = precompile(list(fam.values()), a.jobs)
    print(f"compiled {len(comp)} variants in {time.time() - t0:.0f}s", flush=True)
    out = Path(a.out)
    with open(out / f"compile_{a.tag}.json", "w") as f:
        json.dump(comp, f)
    all_rows = []
    for r, w, cfgs in plan:
        res = measure(w, cfgs, ordered=not a.no_order)
        fm_us = float(r["flashmla_us"])
        for x in res:
            x["flashmla_us"] = fm_us
            if x.get("status") == "ok":
                x["ratio"] = fm_us / x["time_us"]
        all_rows += res
        ok = [x for x in res if x.get("status") == "ok"]
        best = min(ok, key=lambda x: x["time_us"]) if ok else None
        bad = sum(1 for x in res if x.get("status") != "ok")
        if best:
            print(f"{w.key():40s} best {best['time_us']:8.1f}us {best['gbps']:6.0f}GB/s {best['tflops']:6.1f}TF "
                  f"flashmla {fm_us:7.1f} ratio {best['ratio']:.2f} "
                  f"cfg {Config(**{k: best[k] for k in KNOBS}).key()} bad {bad}", flush=True)
        else:
            print(f"{w.key():40s} no valid config ({bad} bad)", flush=True)
    keys = sorted({k for x in all_rows for k in x})
    with open(out / f"compare_{a.tag}.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(all_rows)
    best = {}
    for x in all_rows:
        if x.get("status") == "ok":
            k = (x["h_q"], x["s_q"], x["seqlen"], x["dist"])
            if k not in best or x["time_us"] < best[k]["time_us"]:
                best[k] = x
    if best:
        g = math.exp(sum(math.log(x["ratio"]) for x in best.values()) / len(best))
        print(f"geomean ratio vs FlashMLA over {len(best)} shapes: {g:.3f}")


if __name__ == "__main__":
    main()
