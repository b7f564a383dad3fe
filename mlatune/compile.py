"""Parallel compile warm-up: build each (workload family, config) once in worker processes, so Triton's disk
cache holds every binary before a sweep or an exploration starts timing (GPU only)."""
from __future__ import annotations

import importlib
import multiprocessing as mp

import torch

from .kernels import Config
from .kernels.mla_decode import LAST_COMPILED
from .verify import make_launch
from .workload import Workload, make_inputs

KERNEL = importlib.import_module("mlatune.kernels.mla_decode")  # the launcher module


def _compile_one(item):
    wd, cd = item
    w = Workload(**{**wd, "batch": 2})
    cfg = Config(**cd)
    try:
        inp = make_inputs(w, "cuda", seqlens=torch.full((2,), w.seqlen, dtype=torch.int32))
        call, _, _ = make_launch(KERNEL, inp, cfg, w.causal)
        call()
        torch.cuda.synchronize()
        k = LAST_COMPILED.get("split")
        wgmma = "wgmma" in k.asm.get("ptx", "") if k is not None else None
        return cd, wd, "ok", getattr(k, "n_regs", None), getattr(k, "n_spills", None), f"wgmma={wgmma}"
    except Exception as e:  # compile failures are recorded, not fatal
        return cd, wd, "invalid", None, None, f"{type(e).__name__}: {str(e)[:200]}"


def precompile(items, jobs: int):
    """Compile each (workload family, config) once in parallel processes; Triton's disk cache keeps the binaries."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs) as pool:
        return list(pool.imap_unordered(_compile_one, items))


def sweep_items(plan) -> list:
    """(workload, config) dicts, one per compiled variant a sweep plan needs (seqlen capped: only the
    constexprs and integer specializations matter, not the size)."""
    items = {}
    for p in plan:
        w = p.workload
        for c in p.space.valid:
            items[(w.h_q, w.s_q, w.kv_format, w.page_size, w.causal, c)] = (
                dict(w.to_dict(), dist="fixed", seqlen=min(max(w.seqlen, 1), 4096)), c.to_dict())
    return list(items.values())
