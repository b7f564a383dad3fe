"""Offline sm_90 compiles of the Gluon kernel on any machine (no GPU): wgmma shapes, registers, spills, shared memory."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import tempfile
from collections import Counter

PTRS = {"Q": "*bf16", "KV": "*bf16", "BT": "*i32", "SEQ": "*i32", "OP": "*fp32", "LP": "*fp32", "OUT": "*bf16",
        "LSE": "*fp32"}


def compile_gluon(block_n: int, stages: int, causal: bool = False, one_split: bool = False, page: int = 64):
    """Compile split_kernel_sm90 for sm_90. Needs TRITON_INTERPRET unset: the interpreter swaps Triton's
    library functions for Python ones that the compiler cannot lower."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    fn = importlib.import_module("mlatune.kernels.mla_gluon").split_kernel_sm90
    const = dict(PAGE=page, BLOCK_N=block_n, STAGES=stages, ONE_SPLIT=one_split, CAUSAL=causal, DV=512, DR=64)
    sig, attrs = {}, {}
    for i, n in enumerate(fn.arg_names):
        if n in const:
            sig[n] = "constexpr"
        elif n in PTRS:
            sig[n], attrs[(i,)] = PTRS[n], [["tt.divisibility", 16]]
        else:
            sig[n] = "fp32" if n == "scale_log2" else "i32"
            if n.startswith("stride") and n != "stride_lpr":  # as the JIT specializes the usual strides
                attrs[(i,)] = [["tt.divisibility", 16]]
    return triton.compile(GluonASTSource(fn, sig, const, attrs), target=GPUTarget("cuda", 90, 32),
                          options=dict(num_warps=8))


def resources(cubin: bytes) -> tuple[int, int]:
    """(registers per thread, stack bytes) from the cubin, with the cuobjdump that ships with Triton."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True, check=True).stdout
    m = re.search(r"REG:(\d+).*?STACK:(\d+)", out)
    if not m:
        raise RuntimeError(f"cuobjdump printed no resource usage: {out[-300:]}")
    return int(m.group(1)), int(m.group(2))


def report(block_n: int, stages: int, causal: bool = False, one_split: bool = False, page: int = 64) -> dict:
    k = compile_gluon(block_n, stages, causal, one_split, page)
    wgmma = Counter(re.findall(r"wgmma\.mma_async\.sync\.aligned\.(m\d+n\d+k\d+)\.", k.asm["ptx"]))
    regs, stack = resources(k.asm["cubin"])
    return dict(block_n=block_n, stages=stages, causal=causal, one_split=one_split, page=page,
                shared=k.metadata.shared, regs=regs, stack=stack, wgmma=dict(wgmma))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--block-n", type=int, default=64)
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--one-split", action="store_true")
    ap.add_argument("--page", type=int, default=64)
    a = ap.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise SystemExit("unset TRITON_INTERPRET: the interpreter's library functions cannot be compiled")
    print(json.dumps(report(a.block_n, a.stages, a.causal, a.one_split, a.page)))


if __name__ == "__main__":
    main()
