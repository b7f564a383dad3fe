"""The verification gate: the real kernel passes; wrong, partial or NaN outputs are rejected with figures."""
import importlib

import pytest
import torch

import runners.wrong_runner as wrong
from mlatune.kernels import Config
real = importlib.import_module("mlatune.kernels.mla_decode")
from mlatune.verify import OUT_REL_TOL, compare, device_inputs, reference, verify_config
from mlatune.workload import Workload

W = Workload(2, 40, 16, 2, page_size=16, dist="normal")
CFG = Config(16, 32, 2, 4, 1)


@pytest.fixture(scope="module")
def case():
    inputs = device_inputs(W, "cpu", seed=11)
    return inputs, reference(inputs, W.causal)


def test_real_kernel_passes(case):
    inputs, ref = case
    chk = verify_config(real, inputs, ref, CFG, W.causal)
    assert chk.ok, chk.reason
    assert chk.err_rel < OUT_REL_TOL / 2 and chk.err_lse < 1e-3


@pytest.mark.parametrize("mode,expect", [
    ("scaled", "relative L2 error"),
    ("lse", "lse off by"),
    ("unwritten", "NaN"),
    ("nan", "NaN"),
    ("inf_lse", "inf positions"),
])
def test_wrong_kernel_rejected(case, mode, expect):
    inputs, ref = case
    wrong.MODE["mode"] = mode
    try:
        chk = verify_config(wrong, inputs, ref, CFG, W.causal)
    finally:
        wrong.MODE["mode"] = "ok"
    assert not chk.ok
    assert expect in chk.reason
    if mode == "scaled":
        assert chk.err_rel == pytest.approx(0.05, rel=0.2)


def test_wrong_runner_ok_mode_passes(case):
    inputs, ref = case
    assert verify_config(wrong, inputs, ref, CFG, W.causal).ok


def test_compare_empty_rows():
    # a zero-length sequence: out 0 and lse +inf; a kernel writing -inf or a finite lse there fails
    out = torch.zeros(1, 1, 16, 512)
    ref_lse = torch.full((1, 16, 1), float("inf"))
    assert compare(out.bfloat16(), ref_lse.clone(), out, ref_lse).ok
    bad = ref_lse.clone()
    bad[0, 3, 0] = 1.0
    assert "inf positions" in compare(out.bfloat16(), bad, out, ref_lse).reason


def test_qk_fp8_configs_get_the_looser_documented_gate():
    from mlatune.verify import LSE_TOL, OUT_REL_TOL, QK_FP8_LSE_TOL, QK_FP8_OUT_REL_TOL, tolerances

    assert tolerances(Config(32, 16, 1, 4, 1)) == (OUT_REL_TOL, LSE_TOL)
    assert tolerances(Config(32, 16, 1, 4, 1, qk_fp8=1)) == (QK_FP8_OUT_REL_TOL, QK_FP8_LSE_TOL)
    ref_out = torch.randn(2, 1, 4, 512)
    ref_lse = torch.rand(2, 4, 1) + 2
    out = ref_out * 1.03  # 3% off: fails the bf16 gate, passes the qk_fp8 one
    assert not compare(out, ref_lse, ref_out, ref_lse).ok
    assert compare(out, ref_lse, ref_out, ref_lse, QK_FP8_OUT_REL_TOL, QK_FP8_LSE_TOL).ok
