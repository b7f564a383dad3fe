"""Decode shapes (Workload), seqlen draws, input builders, and FLOP/byte counts."""
from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass

import torch

from .kernels.config import D_LATENT, D_QK, FP8_LAYOUT_BYTES
from .kernels.fp8 import dequantize, quantize_flashmla, quantize_per_tensor

DISTS = ("fixed", "normal", "lognormal")
KV_FORMATS = ("bf16", "fp8", "fp8_flashmla")


@dataclass(frozen=True)
class Workload:
    """One decode shape. seqlen is the mean for the normal and lognormal dists."""

    batch: int
    seqlen: int
    h_q: int = 128
    s_q: int = 1
    kv_format: str = "bf16"
    page_size: int = 64
    dist: str = "fixed"
    causal: bool = True

    def __post_init__(self):
        for name in ("batch", "h_q", "s_q", "page_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"workload {name} must be a positive integer, got {v!r}")
        if not isinstance(self.seqlen, int) or self.seqlen < 0:
            raise ValueError(f"workload seqlen must be a non-negative integer, got {self.seqlen!r}")
        if self.page_size & (self.page_size - 1) or self.page_size > 256:
            raise ValueError(f"workload page_size must be a power of two from 1 to 256, got {self.page_size}")
        if self.kv_format not in KV_FORMATS:
            raise ValueError(f"workload kv_format must be one of {KV_FORMATS}, got {self.kv_format!r}")
        if self.dist not in DISTS:
            raise ValueError(f"workload dist must be one of {DISTS}, got {self.dist!r}")

    def key(self) -> str:
        return "b{batch}_l{seqlen}_h{h_q}_s{s_q}_{kv_format}_p{page_size}_{dist}".format(**asdict(self))

    def to_dict(self) -> dict:
        return asdict(self)


def draw_seqlens(w: Workload, gen: torch.Generator) -> torch.Tensor:
    """int32 [batch] on the CPU. normal: N(L, L/2) clamped to [s_q, 2L] (FlashMLA's bench);
    lognormal: median L, sigma 0.8, clamped to [s_q, 8L]."""
    n, L = w.batch, w.seqlen
    if w.dist == "fixed" or L == 0:
        return torch.full((n,), L, dtype=torch.int32)
    if w.dist == "normal":
        x = torch.randn(n, generator=gen) * (L / 2) + L
        x = x.clamp(min(w.s_q, L), 2 * L)
    else:
        x = torch.exp(torch.randn(n, generator=gen) * 0.8 + math.log(L))
        x = x.clamp(min(w.s_q, L), 8 * L)
    return x.round().to(torch.int32)


def timing_seqlens(w: Workload) -> torch.Tensor:
    """The seqlens w is timed on, drawn from its key: every run, worker restart and sweep times the same
    lengths, so timings of one workload compare across configs and runs (the values stay fresh)."""
    return draw_seqlens(w, torch.Generator().manual_seed(zlib.crc32(w.key().encode())))


def make_inputs(w: Workload, device="cpu", seed: int = 0, dtype=torch.bfloat16, seqlens: torch.Tensor | None = None) -> dict:
    """Random inputs for one call: q, kv_cache (in w's format), block_table (random page permutation),
    cache_seqlens, k_scale (fp8 only), kv_ref (the cache as the kernel sees it: dequantized for fp8) and
    kv_orig (the bf16 cache before quantization)."""
    gen = torch.Generator().manual_seed(seed)
    sl = draw_seqlens(w, gen) if seqlens is None else seqlens.to(torch.int32).cpu()
    page = w.page_size
    pages_per = [max(1, -(-int(x) // page)) for x in sl]
    max_blocks = -(-max(pages_per) // 16) * 16  # padded width, as serving systems allocate
    total = sum(pages_per)
    perm = torch.randperm(total, generator=gen).to(torch.int32)
    bt = torch.zeros(w.batch, max_blocks, dtype=torch.int32)
    at = 0
    for b, n in enumerate(pages_per):
        bt[b, :n] = perm[at : at + n]
        at += n
    # the big tensors are drawn where they will live (on a GPU this is much faster than on the host)
    dev = torch.device(device)
    dgen = gen if dev.type == "cpu" else torch.Generator(device=dev).manual_seed(seed)
    kv = torch.randn(total, page, 1, D_QK, generator=dgen, device=dev).to(dtype)
    q = torch.randn(w.batch, w.s_q, w.h_q, D_QK, generator=dgen, device=dev).to(dtype)
    k_scale = None
    kv_orig = kv
    if w.kv_format == "fp8":
        kv, k_scale = quantize_per_tensor(kv)
    elif w.kv_format == "fp8_flashmla":
        kv = quantize_flashmla(kv)
    kv_ref = kv_orig if w.kv_format == "bf16" else dequantize(kv, k_scale)
    out = dict(q=q, kv_cache=kv, block_table=bt, cache_seqlens=sl, k_scale=k_scale, kv_ref=kv_ref, kv_orig=kv_orig)
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in out.items()}


def kv_token_bytes(kv_format: str) -> int:
    return {"bf16": 2 * D_QK, "fp8": D_QK, "fp8_flashmla": FP8_LAYOUT_BYTES}[kv_format]


def flops_bytes(w: Workload, total_tokens: int) -> tuple[float, float]:
    """FLOPs and bytes as FlashMLA counts them: 2*s_q*sum(L)*h_q*(576+512) and
    cache bytes + q/out bytes (bf16)."""
    flops = 2.0 * w.s_q * total_tokens * w.h_q * (D_QK + D_LATENT)
    nbytes = total_tokens * kv_token_bytes(w.kv_format) + 2.0 * w.batch * w.s_q * w.h_q * (D_QK + D_LATENT)
    return flops, nbytes
