"""Plain PyTorch fp32 reference for paged MLA decode, independent of the Triton path."""
from __future__ import annotations

import torch

from .config import D_LATENT, D_QK


def gather_kv(kv_cache: torch.Tensor, block_table: torch.Tensor, b: int, seqlen: int) -> torch.Tensor:
    """The first `seqlen` tokens of sequence b as an fp32 [seqlen, 576] tensor (cache must be dequantized)."""
    page = kv_cache.shape[1]
    n_pages = -(-seqlen // page)
    pages = block_table[b, :n_pages].long()
    return kv_cache[pages].reshape(n_pages * page, kv_cache.shape[-1])[:seqlen].float()


def mla_decode_ref(q, kv_cache, block_table, cache_seqlens, head_dim_v=D_LATENT, softmax_scale=None, causal=False):
    """out [b, s_q, h_q, dv] fp32 and lse [b, h_q, s_q] fp32; empty rows give out 0 and lse +inf."""
    batch, s_q, h_q, d = q.shape
    assert d == D_QK and kv_cache.shape[-1] == D_QK, "reference takes a dequantized [.., 576] cache"
    scale = softmax_scale if softmax_scale is not None else D_QK ** -0.5
    out = torch.zeros(batch, s_q, h_q, head_dim_v, dtype=torch.float32, device=q.device)
    lse = torch.full((batch, h_q, s_q), float("inf"), dtype=torch.float32, device=q.device)
    for b in range(batch):
        n = int(cache_seqlens[b])
        if n == 0:
            continue
        k = gather_kv(kv_cache, block_table, b, n)  # [n, 576]
        v = k[:, :head_dim_v]
        s = torch.einsum("shd,nd->shn", q[b].float(), k) * scale  # [s_q, h_q, n]
        if causal and s_q > 1:
            limit = n - s_q + 1 + torch.arange(s_q, device=q.device)  # keys < limit visible
            keep = torch.arange(n, device=q.device)[None, :] < limit[:, None]  # [s_q, n]
            s = s.masked_fill(~keep[:, None, :], float("-inf"))
        row_lse = torch.logsumexp(s, dim=-1)  # [s_q, h_q]
        alive = torch.isfinite(row_lse)
        p = torch.exp(s - torch.where(alive, row_lse, 0.0)[..., None])
        p = torch.where(alive[..., None], p, 0.0)
        out[b] = torch.einsum("shn,nd->shd", p, v)
        lse[b] = torch.where(alive, row_lse, float("inf")).transpose(0, 1)
    return out, lse
