"""FP8 KV cache formats: per-tensor e4m3 and FlashMLA's 656-byte layout, with quantizers and dequantizers."""
from __future__ import annotations

import torch

from .config import D_LATENT, D_QK, D_ROPE, FP8_LAYOUT_BYTES

E4M3_MAX = 448.0
GROUP = 128  # FlashMLA layout: one fp32 scale per 128 latent values


def _check_bf16_cache(kv: torch.Tensor) -> None:
    if kv.dim() != 4 or kv.shape[2] != 1 or kv.shape[-1] != D_QK:
        raise ValueError(f"expected a [blocks, page, 1, {D_QK}] cache, got shape {tuple(kv.shape)}")
    if kv.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise ValueError(f"expected a bf16/fp16/fp32 cache, got {kv.dtype}")


def quantize_per_tensor(kv: torch.Tensor, k_scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cache as float8_e4m3fn, k_scale fp32 [1]); dequant is fp8 * k_scale. Scale defaults to amax / 448."""
    _check_bf16_cache(kv)
    if k_scale is None:
        amax = kv.float().abs().amax().clamp_min(1e-12)
        scale = (amax / E4M3_MAX).reshape(1).to(torch.float32)
    else:
        if not k_scale > 0:
            raise ValueError(f"k_scale must be positive, got {k_scale}")
        scale = torch.tensor([float(k_scale)], dtype=torch.float32, device=kv.device)
    q = (kv.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
    return q, scale


def dequantize_per_tensor(kv8: torch.Tensor, k_scale: torch.Tensor) -> torch.Tensor:
    if kv8.dtype != torch.float8_e4m3fn:
        raise ValueError(f"expected a float8_e4m3fn cache, got {kv8.dtype}")
    return kv8.float() * k_scale.float()


def quantize_flashmla(kv: torch.Tensor) -> torch.Tensor:
    """FlashMLA fp8 layout, uint8 [blocks, page, 1, 656] per token:
    bytes 0..511   512 e4m3 latent values, each group of 128 divided by its scale;
    bytes 512..527 4 fp32 scales, powers of two, scale = 2**ceil(log2(amax / 448)) per group;
    bytes 528..655 the 64 rope dims in bf16, unquantized.
    """
    _check_bf16_cache(kv)
    blocks, page = kv.shape[:2]
    lat = kv[..., :D_LATENT].float().reshape(blocks, page, 1, D_LATENT // GROUP, GROUP)
    amax = lat.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
    scale = torch.exp2(torch.ceil(torch.log2(amax / E4M3_MAX)))
    q8 = (lat / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn).reshape(blocks, page, 1, D_LATENT)
    out = torch.empty(blocks, page, 1, FP8_LAYOUT_BYTES, dtype=torch.uint8, device=kv.device)
    out[..., :D_LATENT] = q8.view(torch.uint8)
    out[..., D_LATENT : D_LATENT + 16] = scale.reshape(blocks, page, 1, 4).to(torch.float32).view(torch.uint8).reshape(blocks, page, 1, 16)
    out[..., D_LATENT + 16 :] = kv[..., D_LATENT:].to(torch.bfloat16).contiguous().view(torch.uint8)
    return out


def dequantize_flashmla(kv: torch.Tensor) -> torch.Tensor:
    """fp32 [blocks, page, 1, 576] from the 656-byte layout."""
    if kv.dtype != torch.uint8 or kv.dim() != 4 or kv.shape[-1] != FP8_LAYOUT_BYTES:
        raise ValueError(f"expected uint8 [blocks, page, 1, {FP8_LAYOUT_BYTES}], got {kv.dtype} {tuple(kv.shape)}")
    blocks, page = kv.shape[:2]
    lat = kv[..., :D_LATENT].contiguous().view(torch.float8_e4m3fn).float().reshape(blocks, page, 1, 4, GROUP)
    scale = kv[..., D_LATENT : D_LATENT + 16].contiguous().view(torch.float32).reshape(blocks, page, 1, 4, 1)
    rope = kv[..., D_LATENT + 16 :].contiguous().view(torch.bfloat16).float()
    assert rope.shape[-1] == D_ROPE
    return torch.cat([(lat * scale).reshape(blocks, page, 1, D_LATENT), rope], dim=-1)


def dequantize(kv: torch.Tensor, k_scale: torch.Tensor | None = None) -> torch.Tensor:
    """fp32 [.., 576] from any supported cache format."""
    if kv.dtype == torch.uint8:
        return dequantize_flashmla(kv)
    if kv.dtype == torch.float8_e4m3fn:
        if k_scale is None:
            raise ValueError("a per-tensor fp8 cache needs k_scale to dequantize")
        return dequantize_per_tensor(kv, k_scale)
    return kv.float()
