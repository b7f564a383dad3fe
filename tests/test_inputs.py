"""Bad input to mla_decode raises ValueError naming the problem; check_config gives its reasons.

These fail before any launch, so they cost no interpreter time (one valid call checks the base case).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mlatune
from mlatune.kernels import Config, check_config
from mlatune.kernels.config import regs_estimate, smem_estimate
from mlatune.kernels.fp8 import quantize_flashmla

from helpers import make_case, seed  # noqa: F401 (seed is a fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CFG = Config(block_n=16, block_h=16, num_splits=1, num_warps=4)


@pytest.fixture
def base(seed):
    """A small valid call: dict of mla_decode's keyword arguments."""
    c = make_case([5, 20], h_q=16, s_q=1, page=16, seed=seed)
    return dict(q=c.q, kv_cache=c.kv_cache, block_table=c.block_table, cache_seqlens=c.cache_seqlens, config=CFG)


def call(**kw):
    return mlatune.mla_decode(kw.pop("q"), kw.pop("kv_cache"), kw.pop("block_table"), kw.pop("cache_seqlens"), **kw)


def test_base_case_is_valid(base):
    out, lse = call(**base)
    assert torch.isfinite(out).all() and torch.isfinite(lse).all()


def _bf16(*shape):
    return torch.randn(*shape).to(torch.bfloat16)


BAD = {
    # name: (mutation of the base kwargs, regex the message must match)
    "q 3-D": (lambda a: a.update(q=a["q"][0]), r"q must be 4-D"),
    "q 5-D": (lambda a: a.update(q=a["q"][None]), r"q must be 4-D"),
    "q last dim 512": (lambda a: a.update(q=a["q"][..., :512].contiguous()), r"q last dim must be 576"),
    "q last dim 640": (lambda a: a.update(q=_bf16(2, 1, 16, 640)), r"q last dim must be 576"),
    "q float32": (lambda a: a.update(q=a["q"].float()), r"q dtype.*float32"),
    "q int": (lambda a: a.update(q=a["q"].to(torch.int32)), r"q dtype"),
    "q last dim strided": (lambda a: a.update(q=_bf16(2, 1, 16, 1152)[..., ::2]), r"q must be contiguous in its last dim"),
    "q empty heads": (lambda a: a.update(q=a["q"][:, :, :0]), r"q has an empty dim"),
    "q not a tensor": (lambda a: a.update(q=a["q"].tolist()), r"q must be a torch.Tensor"),
    "head_dim_v 256": (lambda a: a.update(head_dim_v=256), r"head_dim_v must be 512"),
    "kv 3-D": (lambda a: a.update(kv_cache=a["kv_cache"][:, :, 0]), r"kv_cache must be \[num_blocks, page_size, 1, 576\]"),
    "kv 2 kv-heads": (lambda a: a.update(kv_cache=a["kv_cache"].expand(-1, -1, 2, -1).contiguous()), r"kv_cache must be"),
    "kv last dim 512": (lambda a: a.update(kv_cache=a["kv_cache"][..., :512].contiguous()), r"kv_cache last dim is 512.*576"),
    "kv fp16 with bf16 q": (lambda a: a.update(kv_cache=a["kv_cache"].half()), r"kv_cache dtype torch.float16 does not fit q dtype torch.bfloat16"),
    "kv float32": (lambda a: a.update(kv_cache=a["kv_cache"].float()), r"kv_cache dtype torch.float32"),
    "page 3": (lambda a: a.update(kv_cache=_bf16(4, 3, 1, 576)), r"page size .* power of two .* got 3"),
    "page 48": (lambda a: a.update(kv_cache=_bf16(4, 48, 1, 576)), r"page size .* power of two .* got 48"),
    "page 512": (lambda a: a.update(kv_cache=_bf16(1, 512, 1, 576)), r"page size .* from 1 to 256, got 512"),
    "kv non-contiguous": (lambda a: a.update(kv_cache=torch.cat([a["kv_cache"]] * 2)[::2]), r"kv_cache must be contiguous"),
    "kv non-contiguous tokens": (lambda a: a.update(kv_cache=a["kv_cache"].transpose(0, 1).contiguous().transpose(0, 1)),
                                 r"kv_cache must be contiguous"),
    "block_table int64": (lambda a: a.update(block_table=a["block_table"].long()), r"block_table must be 2-D int32.*int64"),
    "block_table 1-D": (lambda a: a.update(block_table=a["block_table"][0]), r"block_table must be 2-D int32"),
    "block_table batch": (lambda a: a.update(block_table=a["block_table"][:1]), r"block_table has 1 rows but q has batch 2"),
    "block_table strided": (lambda a: a.update(block_table=torch.cat([a["block_table"]] * 2, 1)[:, ::2]),
                            r"block_table must be contiguous in its last dim"),
    "seqlens int64": (lambda a: a.update(cache_seqlens=a["cache_seqlens"].long()), r"cache_seqlens must be int32.*int64"),
    "seqlens shape": (lambda a: a.update(cache_seqlens=a["cache_seqlens"][:1]), r"cache_seqlens must be int32 of shape \(2,\)"),
    "seqlens 2-D": (lambda a: a.update(cache_seqlens=a["cache_seqlens"][None]), r"cache_seqlens must be int32 of shape"),
    "seqlens strided": (lambda a: a.update(cache_seqlens=torch.cat([a["cache_seqlens"]] * 2)[::2]), r"cache_seqlens must be contiguous"),
    "seqlens negative": (lambda a: a.update(cache_seqlens=torch.tensor([5, -1], dtype=torch.int32, device=a["q"].device)), r"negative entry \(-1\)"),
    "seqlens past block table": (lambda a: a.update(cache_seqlens=torch.tensor([5, 16 * a["block_table"].shape[1] + 1], dtype=torch.int32, device=a["q"].device)),
                                 r"exceeds what the block table covers"),
    "k_scale with bf16 cache": (lambda a: a.update(k_scale=1.0), r"k_scale is only for a per-tensor fp8 cache"),
    "config block_h 8": (lambda a: a.update(config=Config(block_h=8, block_n=16, num_warps=4)), r"invalid config.*block_h=8"),
    "config block_n 24": (lambda a: a.update(config=Config(block_n=24, block_h=16, num_warps=4)), r"invalid config.*block_n=24"),
    "config block_n 512": (lambda a: a.update(config=Config(block_n=512, block_h=16, num_warps=4)), r"invalid config.*block_n=512"),
    "config num_warps 3": (lambda a: a.update(config=Config(block_n=16, block_h=16, num_warps=3)), r"invalid config.*num_warps=3"),
    "config num_stages 0": (lambda a: a.update(config=Config(block_n=16, block_h=16, num_warps=4, num_stages=0)), r"invalid config.*num_stages=0"),
    "config num_splits -1": (lambda a: a.update(config=Config(block_n=16, block_h=16, num_warps=4, num_splits=-1)), r"invalid config.*num_splits=-1"),
    "config registers": (lambda a: a.update(config=Config(block_n=64, block_h=128, num_warps=4)), r"invalid config.*registers"),
    "config qk_fp8 on bf16": (lambda a: a.update(config=Config(block_n=16, block_h=16, num_warps=4, qk_fp8=1)), r"invalid config.*qk_fp8"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input(base, name):
    mutate, pattern = BAD[name]
    mutate(base)
    with pytest.raises(ValueError, match=pattern):
        call(**base)


# --- fp8 caches --------------------------------------------------------------------------------------
@pytest.fixture
def fp8_base(seed):
    c = make_case([5, 20], h_q=16, s_q=1, page=16, seed=seed, kv_format="fp8")
    return dict(q=c.q, kv_cache=c.kv_cache, block_table=c.block_table, cache_seqlens=c.cache_seqlens, config=CFG,
                k_scale=c.k_scale), c.kv_orig


def test_fp8_base_case_is_valid(fp8_base):
    out, lse = call(**fp8_base[0])
    assert torch.isfinite(out).all()


BAD_FP8 = {
    "fp8 cache without k_scale": (lambda a, kv: a.pop("k_scale"), r"float8_e4m3fn kv_cache needs k_scale"),
    "k_scale float64": (lambda a, kv: a.update(k_scale=a["k_scale"].double()), r"k_scale must be one float32 element"),
    "k_scale two elements": (lambda a, kv: a.update(k_scale=a["k_scale"].repeat(2)), r"k_scale must be one float32 element"),
    "fp8 cache last dim 656": (lambda a, kv: a.update(kv_cache=torch.zeros(2, 16, 1, 656, dtype=torch.uint8).view(torch.float8_e4m3fn)),
                               r"per-tensor fp8 cache needs 576"),
    "uint8 cache last dim 576": (lambda a, kv: a.update(kv_cache=a["kv_cache"].view(torch.uint8), k_scale=None),
                                 r"last dim is 576; FlashMLA's fp8 layout \(uint8\) needs 656"),
    "uint8 cache last dim 655": (lambda a, kv: a.update(kv_cache=quantize_flashmla(kv)[..., :655].contiguous(), k_scale=None),
                                 r"needs 656"),
    "k_scale with FlashMLA layout": (lambda a, kv: a.update(kv_cache=quantize_flashmla(kv)), r"k_scale is only for a per-tensor fp8 cache"),
    "int8 cache": (lambda a, kv: a.update(kv_cache=a["kv_cache"].view(torch.int8), k_scale=None), r"kv_cache dtype torch.int8"),
    "e5m2 cache": (lambda a, kv: a.update(kv_cache=a["kv_cache"].view(torch.float8_e5m2)), r"kv_cache dtype torch.float8_e5m2"),
    "qk_fp8 on FlashMLA layout": (lambda a, kv: a.update(kv_cache=quantize_flashmla(kv), k_scale=None,
                                                         config=Config(block_n=16, block_h=16, num_warps=4, qk_fp8=1)),
                                  r"invalid config.*qk_fp8"),
}


@pytest.mark.parametrize("name", list(BAD_FP8))
def test_bad_fp8_input(fp8_base, name):
    args, kv_orig = fp8_base
    mutate, pattern = BAD_FP8[name]
    mutate(args, kv_orig)
    with pytest.raises(ValueError, match=pattern):
        call(**args)


# --- devices ----------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for a second device")
@pytest.mark.parametrize("which", ["kv_cache", "block_table", "cache_seqlens"])
def test_tensors_on_different_devices(base, which):
    base = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in base.items()}
    base[which] = base[which].cpu()
    with pytest.raises(ValueError, match="one device"):
        call(**base)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for a second device")
def test_k_scale_on_other_device(fp8_base):
    args = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in fp8_base[0].items()}
    args["k_scale"] = args["k_scale"].cpu()
    with pytest.raises(ValueError, match="device"):
        call(**args)


# --- check_config's reasons -------------------------------------------------------------------------
def test_check_config_valid_default():
    assert check_config(Config()) == []


@pytest.mark.parametrize("cfg,reason", [
    (Config(block_h=8), r"block_h=8: must be a power of two in \[16, 128\]"),
    (Config(block_h=96), r"block_h=96: must be a power of two"),
    (Config(block_h=256, num_warps=16), r"block_h=256"),
    (Config(block_n=24), r"block_n=24: must be a power of two in \[16, 256\]"),
    (Config(block_n=8), r"block_n=8"),
    (Config(num_warps=3), r"num_warps=3"),
    (Config(num_warps=32), r"num_warps=32"),
    (Config(num_stages=7), r"num_stages=7"),
    (Config(num_splits=257), r"num_splits=257"),
    (Config(trans=2), r"trans=2"),
])
def test_check_config_divisibility_and_ranges(cfg, reason):
    bad = check_config(cfg)
    assert any(__import__("re").search(reason, r) for r in bad), bad


def test_check_config_registers():
    bad = check_config(Config(block_h=128, block_n=64, num_warps=4))
    assert len(bad) == 1 and bad[0].startswith("registers"), bad
    assert regs_estimate(Config(block_h=128, block_n=64, num_warps=4)) > 255
    # more warps fix it
    assert check_config(Config(block_h=128, block_n=64, num_warps=16)) == []
    # block_h 128 with block_n 256 needs more than 255 registers even with 16 warps
    assert any(r.startswith("registers") for r in check_config(Config(block_h=128, block_n=256, num_warps=16)))


def test_check_config_one_warp_never_fits():
    """num_warps=1 is in the allowed set, but the smallest accumulator (16 x 512 fp32 over 32 threads
    = 256 registers) already exceeds the 255 budget, so no 1-warp config is valid."""
    for bn in (16, 32, 64, 128, 256):
        for bh in (16, 32, 64, 128):
            assert any(r.startswith("registers") for r in check_config(Config(block_n=bn, block_h=bh, num_warps=1)))


def test_check_config_shared_memory():
    cfg = Config(block_n=256, block_h=64, num_warps=16, num_stages=6)
    assert check_config(cfg) == []  # no limit given: no smem check
    need = smem_estimate(cfg)
    bad = check_config(cfg, smem_limit=need - 1)
    assert len(bad) == 1 and bad[0].startswith("shared memory") and str(need) in bad[0], bad
    assert check_config(cfg, smem_limit=need) == []
    # an H200 (227 KiB per block): 2 stages of 64-token bf16 tiles fit, 6 stages of 256 do not
    h200 = 232448
    assert check_config(Config(block_n=64, block_h=64, num_stages=2), smem_limit=h200) == []
    assert any(r.startswith("shared memory") for r in check_config(cfg, smem_limit=h200))
    # fp8 stages half the bytes of bf16 for the same tiles
    assert smem_estimate(cfg, "fp8") < smem_estimate(cfg, "bf16")


def test_config_from_dict_errors():
    assert Config.from_dict(Config(block_n=32).to_dict()) == Config(block_n=32)
    with pytest.raises(ValueError, match="unknown config keys"):
        Config.from_dict({"block_m": 16})
    with pytest.raises(ValueError, match="must be an integer"):
        Config.from_dict({"block_n": 16.0})
    with pytest.raises(ValueError, match="must be an integer"):
        Config.from_dict({"trans": True})


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_float_k_scale_must_be_positive_and_finite(bad, seed):
    case = make_case([20, 3], h_q=16, s_q=1, page=16, kv_format="fp8", seed=seed)
    with pytest.raises(ValueError, match="k_scale must be a positive finite number"):
        mlatune.mla_decode(*case.args(), k_scale=bad, config=Config(block_n=32, block_h=16, num_splits=1, num_warps=4))


@pytest.mark.parametrize("bad", [0.0, -0.04, float("nan"), float("inf")])
def test_softmax_scale_must_be_positive_and_finite(base, bad):
    # the kernels take each row's maximum over unscaled scores, which holds for a positive scale only
    with pytest.raises(ValueError, match="softmax_scale must be finite and > 0"):
        call(**base, softmax_scale=bad)


def test_softmax_scale_must_be_a_number(base):
    out, _ = call(**dict(base, softmax_scale=np.float32(0.04)))  # numpy scalars are real numbers
    assert torch.isfinite(out).all()
    with pytest.raises(TypeError, match="softmax_scale must be a real number"):
        call(**base, softmax_scale=torch.tensor(0.04))
