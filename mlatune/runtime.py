"""Inference runtime: find the tuned table for a device and shape, plan a decode step, run it per layer; FlashMLA-style API.

Typical use, once per decode step then once per layer::

    p = plan(batch, s_q=1, h_q=128, max_seqlen=int(max_len), device="cuda",
             total_tokens=int(total), cache_seqlens=cache_seqlens)  # both optional: they balance uneven lengths
    for layer in layers:
        out, lse = run(p, q, kv_cache, block_table, cache_seqlens, causal=True)

Table resolution, per (device, kv_format, page_size, h_q, s_q), first match wins:

1. ``$MLATUNE_CONFIG_DIR/<DEVICE>/mla_decode_<kv>_p<page>_h<h_q>_s<s_q>.json``
2. the same path under the tables shipped in the package (``mlatune.configs``)
3. the heuristic default (below), with one warning per (device, shape family)

<DEVICE> is torch's device name normalized ("NVIDIA H200" -> "NVIDIA_H200"); CPU tensors and the
Triton interpreter use the pseudo-device "cpu". Within a table the entry is the nearest (batch, seqlen)
bucket on a log2 scale in both, clamped to the grid's edges. A table that is malformed, has another
schema version or was tuned for other kernel source (kernel hash) is skipped with a warning naming the
file, and the next source in the order above answers; inference never fails over a table file.

Heuristic default: ``kernels.mla_decode.default_config(h_q, s_q)`` (the source of truth; today: block_h 64 for >= 64 query rows,
else the next power of two >= 16; block_n 32 with block_h 64, else 64; 8 warps with block_h 64, else 4;
2 stages) with num_splits=0, i.e. ``auto_splits``: enough splits for about two waves of SMs, none
shorter than 4 KV tiles, at most 64.

Lookups are cached: after the first plan for a shape family, plan() does no file I/O or JSON parsing.
Call clear_cache() after changing $MLATUNE_CONFIG_DIR or the table files.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import table as tbl
from .kernels.config import D_LATENT, D_QK, Config, persistent
from .kernels.mla_decode import (KV_FORMATS, alloc_partials, check_inputs, check_scale, default_config, gluon_runs_on,
                                 interpreted, kv_format_of, launch, resolve_splits, schedule)

log = logging.getLogger(__name__)
ENV_DIR = "MLATUNE_CONFIG_DIR"
CPU_DEVICE = "cpu"
DEFAULT = "default"  # Plan.source when no table applied
_KV_DTYPE = {"fp8": torch.float8_e4m3fn, "fp8_flashmla": torch.uint8}
_default_config = functools.lru_cache(maxsize=None)(default_config)  # ~10 us uncached


def shipped_dir() -> Path:
    """Folder of the tables installed with the package."""
    from . import configs

    return Path(configs.__file__).parent


def config_dirs() -> list[Path]:
    """Where tables are looked for, in order."""
    env = os.environ.get(ENV_DIR)
    return ([Path(env)] if env else []) + [shipped_dir()]


@functools.lru_cache(maxsize=None)
def _device_key(device: torch.device) -> str:
    if device.type != "cuda" or interpreted():
        return CPU_DEVICE
    return tbl.normalize_device(torch.cuda.get_device_name(device))


def device_key(device) -> str:
    """Normalized device name tables are filed under; "cpu" for CPU tensors and the interpreter."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _device_key(device)


@functools.lru_cache(maxsize=None)
def find_table(device: str, kv_format: str, page_size: int, h_q: int, s_q: int) -> tbl.Table | None:
    """The first usable table for this device and shape family, or None. Warns (once per cache
    lifetime) about each unusable file and about falling back to the default."""
    looked = []
    for root in config_dirs():
        path = tbl.table_path(root, device, kv_format, page_size, h_q, s_q)
        looked.append(str(path))
        try:
            if not path.is_file():
                continue
            return tbl.load(path)
        except tbl.TableError as exc:
            log.warning("mlatune: ignoring config table %s: %s", path, "; ".join(exc.problems))
        except Exception as exc:  # never let a table file take inference down
            log.warning("mlatune: ignoring config table %s: %s: %s", path, type(exc).__name__, exc)
    log.warning("mlatune: no usable tuned table for device %s, %s cache, page %d, h_q %d, s_q %d (looked for %s); "
                "using the heuristic default config with auto splits", device, kv_format, page_size, h_q, s_q,
                ", ".join(looked))
    return None


def clear_cache() -> None:
    """Forget loaded tables and device names (after changing $MLATUNE_CONFIG_DIR or table files)."""
    find_table.cache_clear()
    _device_key.cache_clear()


def choose_config(batch: int, s_q: int, h_q: int, max_seqlen: int, kv_format: str = "bf16", page_size: int = 64,
                  device="cuda") -> tuple[Config, str]:
    """(config, source): the tuned config for the nearest bucket, or the heuristic default; source is the
    table's path or "default"."""
    table = find_table(device_key(device), kv_format, page_size, h_q, s_q)
    if table is None:
        return _default_config(h_q, s_q), DEFAULT
    cfg = table.config(batch, max_seqlen)
    if cfg.gluon and not gluon_runs_on(torch.device(device)):
        _warn_gluon(str(table.path))
        return _default_config(h_q, s_q), DEFAULT
    return cfg, str(table.path)


@functools.lru_cache(maxsize=None)
def _warn_gluon(path: str) -> None:
    log.warning("mlatune: %s picks the Gluon sm_90 kernel, which this device cannot run (it needs a Hopper GPU, "
                "compiled, not the interpreter); using the heuristic default config", path)


@dataclass(eq=False)
class Plan:
    """One decode step's launch plan: config, split count and the buffers every layer reuses."""

    batch: int
    s_q: int
    h_q: int
    max_seqlen: int
    kv_format: str
    page_size: int
    device: torch.device
    dtype: torch.dtype
    config: Config
    splits: int
    source: str  # table path, or "default"
    out: torch.Tensor  # [batch, s_q, h_q, 512], overwritten by each run()
    lse: torch.Tensor  # [batch, h_q, s_q] fp32, overwritten by each run()
    partials: tuple | None  # split-KV partial outputs and lse, when splits > 1
    order: object = None  # gluon 3 and 6's piece order or gluon=5's segments (schedule()), when plan() saw the seqlens
    checked: bool = False  # the first run() validates inputs fully
    q_shape: tuple = field(init=False)  # what run() expects, precomputed for the per-call check
    kv_dtype: torch.dtype = field(init=False)

    def __post_init__(self):
        self.q_shape = (self.batch, self.s_q, self.h_q, D_QK)
        self.kv_dtype = _KV_DTYPE.get(self.kv_format, self.dtype)


def plan(batch: int, s_q: int, h_q: int, max_seqlen: int, *, kv_format: str = "bf16", page_size: int = 64,
         device=None, dtype: torch.dtype = torch.bfloat16, total_tokens: int | None = None,
         cache_seqlens: torch.Tensor | None = None) -> Plan:
    """Host side, once per decode step: pick the config, resolve the split count and allocate the buffers.

    max_seqlen is the longest cache length in the batch. It picks the table bucket, the auto split count
    and the tokens per split. Any seqlens up to the block table's reach run correctly whatever it is: an
    underestimate only loads the last split more, an overestimate leaves splits idle. When replaying
    one CUDA graph over several steps, plan with the largest seqlen those steps reach.
    It may also be the cache_seqlens tensor itself: then its max and sum are read here, one host sync per plan.
    total_tokens (the sum of the seqlens), when given, balances uneven lengths: splits are sized from the mean
    so that long sequences get more programs, and the table is looked up at the mean length.
    cache_seqlens (or a max_seqlen given as that tensor) also orders the programs of the seesaw kernel
    (gluon=3) and the fp8 register-dequant kernel (gluon=6) longest piece first, built on the device without a
    sync. The order only balances: runs with other seqlens stay correct. The persistent seesaw kernel (gluon=5, 7)
    plans its segments from them on the host (one sync); the plan balances these seqlens and stays correct for
    others (each sequence's last segment runs to its length at run time). Without cache_seqlens a gluon=5 or 7 pick
    runs as gluon=3.
    device defaults to the current CUDA device, else the CPU (Triton interpreter)."""
    if kv_format not in KV_FORMATS:
        raise ValueError(f"kv_format must be one of {KV_FORMATS}, got {kv_format!r}")
    for name, v in (("batch", batch), ("s_q", s_q), ("h_q", h_q), ("page_size", page_size)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if isinstance(max_seqlen, torch.Tensor):
        cache_seqlens = max_seqlen if cache_seqlens is None else cache_seqlens
        sl = max_seqlen.to(torch.int64)
        max_seqlen, total_tokens = (int(v) for v in torch.stack([sl.max(), sl.sum()]).tolist()) if sl.numel() else (0, 0)
    lookup = max_seqlen if total_tokens is None else max(1, total_tokens // batch)
    cfg, source = choose_config(batch, s_q, h_q, lookup, kv_format, page_size, device)
    if persistent(cfg) and cache_seqlens is None:  # its segments are planned from the seqlens: without them, the
        cfg = replace(cfg, gluon=3)  # same kernel with the split count sized from max_seqlen and total_tokens
    rows = s_q * h_q
    splits = resolve_splits(cfg, batch, rows, max(int(max_seqlen), 1), device, total_tokens)
    partials = alloc_partials(batch, rows, splits, device) if splits > 1 else None
    out = torch.empty((batch, s_q, h_q, D_LATENT), dtype=dtype, device=device)
    lse = torch.empty((batch, h_q, s_q), dtype=torch.float32, device=device)
    order = None
    if cache_seqlens is not None:
        if cache_seqlens.shape != (batch,):
            raise ValueError(f"cache_seqlens must have shape ({batch},), got {tuple(cache_seqlens.shape)}")
        order = schedule(cfg, cache_seqlens.to(device), splits, int(max_seqlen), total_tokens, rows=rows)
        if persistent(cfg) and order.combine:
            partials = alloc_partials(batch, rows, order.slots, device)
    return Plan(batch, s_q, h_q, int(max_seqlen), kv_format, page_size, device, dtype, cfg, splits, source,
                out, lse, partials, order)


def _mismatch(p: Plan, q, kv_cache, block_table, cache_seqlens) -> str | None:
    """Cheap per-call checks (tensor metadata only) that keep the kernel inside the plan's buffers."""
    if (q.shape == p.q_shape and q.dtype == p.dtype and kv_cache.dtype == p.kv_dtype and kv_cache.shape[1] == p.page_size
            and block_table.shape[0] == p.batch and cache_seqlens.shape[0] == p.batch):
        return None
    return (f"q {tuple(q.shape)} {q.dtype}, kv_cache page {kv_cache.shape[1]} {kv_cache.dtype}, "
            f"block_table/cache_seqlens rows {block_table.shape[0]}/{cache_seqlens.shape[0]}; plan expects "
            f"q {p.q_shape} {p.dtype}, page {p.page_size} {p.kv_dtype} ({p.kv_format}), batch {p.batch}")


def run(p: Plan, q, kv_cache, block_table, cache_seqlens, softmax_scale=None, causal=False, k_scale=None,
        out=None, lse=None):
    """Once per layer: launch with the plan's config and buffers. No host sync, no allocation, safe to
    capture in a CUDA graph. Returns (out, lse); by default these are the plan's buffers, overwritten by
    the next run() on this plan: consume them first, or pass your own out= / lse= (same shapes and dtypes
    as plan.out / plan.lse; not checked).

    The first call on a plan checks inputs fully (shapes, dtypes, devices; values are never read);
    later calls only compare shapes and dtypes with the plan (~1-3 us of host time on top of the launch).
    k_scale (per-tensor fp8 caches) must be a float32 tensor with one element."""
    bad = _mismatch(p, q, kv_cache, block_table, cache_seqlens)
    if bad:
        raise ValueError("run: inputs do not match the plan: " + bad)
    if k_scale is not None and not isinstance(k_scale, torch.Tensor):
        raise ValueError("run: k_scale must be a float32 tensor with one element on the device (a Python float would allocate)")
    if not p.checked:
        check_inputs(q, kv_cache, block_table, cache_seqlens, D_LATENT, k_scale, causal)
        p.checked = True
    softmax_scale = check_scale(softmax_scale)
    return launch(q, kv_cache, block_table, cache_seqlens, p.out if out is None else out, p.lse if lse is None else lse,
                  softmax_scale, causal, p.config, p.splits, p.kv_format, k_scale, p.partials,
                  max_seqlen=p.max_seqlen, order=p.order)


# ---------------------------------------------------------------- FlashMLA-compatible API


class MlaMetadata:
    """Returned by get_mla_metadata in place of FlashMLA's tile scheduler metadata. Holds the step's sizes
    and one Plan per (q shape, dtype, cache format, page) seen, built on first use."""

    def __init__(self, batch, s_q, h_q, max_seqlen, device, cache_seqlens=None):
        self.batch, self.s_q, self.h_q, self.max_seqlen, self.device = batch, s_q, h_q, max_seqlen, device
        self.cache_seqlens = cache_seqlens  # orders the seesaw kernel's pieces (schedule())
        self.plans: dict = {}

    def plan_for(self, q, k_cache) -> Plan:
        fmt = kv_format_of(k_cache, q.dtype)
        key = (tuple(q.shape), q.dtype, fmt, k_cache.shape[1])
        p = self.plans.get(key)
        if p is None:
            b, s_q, h_q, _ = q.shape
            sl = self.cache_seqlens if self.cache_seqlens is not None and self.cache_seqlens.shape == (b,) else None
            p = self.plans[key] = plan(b, s_q, h_q, self.max_seqlen, kv_format=fmt, page_size=k_cache.shape[1],
                                       device=q.device, dtype=q.dtype, cache_seqlens=sl)
        return p


def get_mla_metadata(cache_seqlens: torch.Tensor, num_q_tokens_per_head_k: int, num_heads_k: int,
                     num_heads_q: int | None = None, is_fp8_kvcache: bool = False, topk=None, *,
                     max_seqlen: int | None = None, page_size: int = 64, dtype: torch.dtype = torch.bfloat16):
    """FlashMLA's get_mla_metadata: returns (metadata, num_splits); pass both to flash_mla_with_kvcache.

    num_q_tokens_per_head_k is s_q * h_q // num_heads_k (num_heads_k is 1 for MLA). Give num_heads_q to
    separate s_q from h_q; without it s_q = 1 is assumed (the first call re-plans if q says otherwise).
    The plan needs the batch's max seqlen: pass max_seqlen to avoid a host sync; without it this reads
    cache_seqlens' max and sum once (one device-to-host sync, here, at plan time; never in the per-layer
    call), and the sum balances uneven lengths across splits.
    num_splits is our split count for the expected shape, an int; flash_mla_with_kvcache ignores it."""
    if num_heads_k != 1:
        raise ValueError(f"MLA decode has one KV head; got num_heads_k={num_heads_k}")
    if topk is not None:
        raise NotImplementedError("sparse attention (topk/indices) is not supported by mlatune")
    rows = num_q_tokens_per_head_k * num_heads_k
    h_q = num_heads_q or rows
    if rows % h_q:
        raise ValueError(f"num_q_tokens_per_head_k={num_q_tokens_per_head_k} is not a multiple of num_heads_q={h_q}")
    total = None
    if max_seqlen is None:  # one sync for max and sum
        sl = cache_seqlens.to(torch.int64)
        max_seqlen, total = (int(v) for v in torch.stack([sl.max(), sl.sum()]).tolist()) if sl.numel() else (0, 0)
    batch = cache_seqlens.shape[0]
    meta = MlaMetadata(batch, rows // h_q, h_q, max_seqlen, cache_seqlens.device, cache_seqlens)
    fmt = "fp8_flashmla" if is_fp8_kvcache else "bf16"
    p = plan(batch, rows // h_q, h_q, max_seqlen, kv_format=fmt, page_size=page_size, device=cache_seqlens.device,
             dtype=dtype, total_tokens=total, cache_seqlens=cache_seqlens)
    q_shape = (batch, rows // h_q, h_q, D_QK)
    meta.plans[(q_shape, dtype, fmt, page_size)] = p
    return meta, p.splits


def flash_mla_with_kvcache(q, k_cache, block_table, cache_seqlens, head_dim_v, tile_scheduler_metadata, num_splits,
                           softmax_scale=None, causal=False, is_fp8_kvcache=False, indices=None, *, k_scale=None):
    """FlashMLA's flash_mla_with_kvcache: (out [b, s_q, h_q, 512] in q.dtype, lse [b, h_q, s_q] fp32).

    tile_scheduler_metadata must come from mlatune.runtime.get_mla_metadata. Like FlashMLA, each call
    returns fresh out/lse tensors (use plan/run to reuse buffers instead). The cache format follows
    k_cache's dtype (q's dtype, float8_e4m3fn with k_scale, or uint8 FlashMLA fp8 layout)."""
    if not isinstance(tile_scheduler_metadata, MlaMetadata):
        raise TypeError("tile_scheduler_metadata must come from mlatune.runtime.get_mla_metadata, "
                        f"got {type(tile_scheduler_metadata).__name__}")
    if head_dim_v != D_LATENT:
        raise ValueError(f"head_dim_v must be {D_LATENT}, got {head_dim_v}")
    if indices is not None:
        raise NotImplementedError("sparse attention (indices) is not supported by mlatune")
    p = tile_scheduler_metadata.plan_for(q, k_cache)
    if is_fp8_kvcache != (p.kv_format == "fp8_flashmla"):
        raise ValueError(f"is_fp8_kvcache={is_fp8_kvcache} but k_cache is a {p.kv_format} cache ({k_cache.dtype})")
    out = torch.empty_like(p.out)
    lse = torch.empty_like(p.lse)
    return run(p, q, k_cache, block_table, cache_seqlens, softmax_scale, causal, k_scale, out=out, lse=lse)
