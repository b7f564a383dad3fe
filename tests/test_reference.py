"""The fp32 reference (mla_decode_ref) against a naive float64 loop over batch, query and head, written
from the spec: token j of sequence b lives at kv[block_table[b, j // page], j % page]; with causal and
s_q > 1, query i sees keys j <= seqlen - s_q + i; empty rows give out 0 and lse +inf."""
from __future__ import annotations

import math

import pytest
import torch

from mlatune.kernels import mla_decode_ref

from helpers import make_case, seed  # noqa: F401 (seed is a fixture)

# fp32 vs float64 on scores of magnitude ~1-10 summed over <= 40 keys: measured ~1e-7; 1e-5 leaves room.
REF_RTOL = 1e-5


def naive(q, kv, block_table, seqlens, scale, causal):
    batch, s_q, h_q, _ = q.shape
    page = kv.shape[1]
    q, kv = q.double(), kv.double()
    out = torch.zeros(batch, s_q, h_q, 512, dtype=torch.float64)
    lse = torch.full((batch, h_q, s_q), math.inf, dtype=torch.float64)
    for b in range(batch):
        n = int(seqlens[b])
        for i in range(s_q):
            visible = min(n, n - s_q + i + 1) if causal and s_q > 1 else n
            for h in range(h_q):
                scores, values = [], []
                for j in range(max(visible, 0)):
                    k = kv[int(block_table[b, j // page]), j % page, 0]
                    scores.append(float(q[b, i, h] @ k) * scale)
                    values.append(k[:512])
                if not scores:
                    continue
                m = max(scores)
                w = [math.exp(s - m) for s in scores]
                total = sum(w)
                lse[b, h, i] = m + math.log(total)
                out[b, i, h] = sum(wj * v for wj, v in zip(w, values)) / total
    return out, lse


@pytest.mark.parametrize("s_q,causal", [(1, False), (1, True), (2, True), (2, False), (3, True)])
@pytest.mark.parametrize("page", [1, 4])
def test_reference_matches_naive(s_q, causal, page, seed):
    # seqlens: empty, shorter than s_q, page +- 1, a few pages; q scaled up so the softmax is not flat
    case = make_case([0, 1, 2, page + 1, 3 * page + 2, 11], h_q=3, s_q=s_q, page=page, seed=seed,
                     q_scale=3.0, dtype=torch.float32)
    scale = 0.1
    out, lse = mla_decode_ref(case.q, case.kv_ref, case.block_table, case.cache_seqlens, softmax_scale=scale, causal=causal)
    assert out.dtype == torch.float32 and lse.dtype == torch.float32
    n_out, n_lse = naive(case.q, case.kv_ref, case.block_table.cpu(), case.cache_seqlens.cpu(), scale, causal)
    assert torch.equal(torch.isinf(lse), torch.isinf(n_lse)), "empty rows differ"
    assert (lse[torch.isinf(lse)] > 0).all()
    fin = torch.isfinite(n_lse)
    assert torch.allclose(lse[fin].double(), n_lse[fin], rtol=REF_RTOL, atol=REF_RTOL)
    assert torch.allclose(out.double(), n_out, rtol=REF_RTOL, atol=REF_RTOL)
    # empty rows exist in these cases and are exactly zero
    assert (~fin).any() and (out.permute(0, 2, 1, 3)[~fin] == 0).all()
    if causal and s_q > 1:  # the mask changed something: seqlen 1 leaves query 0 with no key
        assert torch.isinf(lse[1, :, 0]).all() and torch.isfinite(lse[1, :, s_q - 1]).all()


def test_reference_default_scale_and_head_dim(seed):
    case = make_case([7], h_q=2, s_q=1, page=4, seed=seed, dtype=torch.float32)
    out, lse = mla_decode_ref(case.q, case.kv_ref, case.block_table, case.cache_seqlens)
    n_out, n_lse = naive(case.q, case.kv_ref, case.block_table, case.cache_seqlens, 576**-0.5, False)
    assert torch.allclose(out.double(), n_out, rtol=REF_RTOL, atol=REF_RTOL)
    assert torch.allclose(lse.double(), n_lse, rtol=REF_RTOL, atol=REF_RTOL)
    assert out.shape == (1, 1, 2, 512) and lse.shape == (1, 2, 1)


def test_reference_ignores_block_table_past_seqlen(seed):
    """Pages past a sequence's end (NaN here) and the NaN tail of its last page are never read."""
    case = make_case([5, 9], h_q=2, s_q=2, page=4, seed=seed, garbage="poison", extra_cols=2)
    out, lse = mla_decode_ref(case.q, case.kv_ref, case.block_table, case.cache_seqlens, causal=True)
    assert torch.isfinite(out).all() and torch.isfinite(lse).all()
