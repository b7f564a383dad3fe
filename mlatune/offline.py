"""Offline sm_90 compiles of the Gluon kernels on any machine (no GPU): wgmma shapes, registers, spills, shared memory."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import tempfile
from collections import Counter

PTRS = {"Q": "*bf16", "KV": "*bf16", "BT": "*i32", "SEQ": "*i32", "ORD": "*i32", "SEGS": "*i32", "PTR": "*i32",
        "OP": "*fp32", "LP": "*fp32", "OUT": "*bf16", "LSE": "*fp32", "KSCALE": "*fp32"}
FP8_PTRS = dict(PTRS, KV="*u8")  # gluon=4 and 6 read a per-tensor fp8 cache as its e4m3 bytes (launch() passes uint8)


# gluon knob -> (module, kernel, num_warps of the kernel; gluon=2, 3, 5 and 7 add a 4-warp worker partition)
KERNELS = {1: ("mla_gluon", "split_kernel_sm90", 8), 2: ("mla_gluon_ws", "split_kernel_ws", 4),
           3: ("mla_gluon_ss", "split_kernel_ss", 4), 4: ("mla_gluon_fp8", "split_kernel_fp8", 4),
           5: ("mla_gluon_ps", "split_kernel_ps", 4), 6: ("mla_gluon_fp8r", "split_kernel_fp8r", 4),
           7: ("mla_gluon_ps", "split_kernel_ps", 4)}  # 7: gluon=5 with CHUNKS


def compile_gluon(block_n: int, stages: int, causal: int = 0, one_split: bool = False, page: int = 64,
                  version: int = 1, tma: bool = True, ordered: bool = False, block_h: int = 16, fp16: bool = False):
    """Compile a Gluon split kernel (the `gluon` knob's version) for sm_90; block_h is for gluon=4 and 6 (the others
    take 64), fp16 gives it an fp16 q and output (gluon=4's MMAs then run in fp16; gluon=6's always do). causal is
    gluon 3, 5 and 7's mode (1: only a split's last tile pair is masked, as for s_q 2; 2: every pair); the others
    take it as a flag. Needs
    TRITON_INTERPRET unset: the interpreter swaps Triton's library functions for Python ones that the compiler
    cannot lower."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    module, name, warps = KERNELS[version]
    if version == 6 and block_h == 64:  # 64 rows: two warpgroups, 128-token tiles
        warps, block_n = 8, 128
    mod = importlib.import_module("mlatune.kernels." + module)
    fn = getattr(mod, name)
    const = dict(PAGE=page, BLOCK_N=block_n, STAGES=stages, ONE_SPLIT=one_split,
                 CAUSAL=int(causal) if version in (3, 5, 7) else bool(causal), DV=512, DR=64)
    if version in (3, 5, 7):
        const["USE_TMA"] = tma and page % 64 == 0
    if version in (3, 6):
        const["ORDERED"] = ordered
    if version in (5, 7):  # one mode: no split constants, it plans its segments
        for k in ("BLOCK_N", "STAGES", "ONE_SPLIT"):
            del const[k]
        const["CHUNKS"] = version == 7 and const["USE_TMA"]
    if version in (4, 6):
        const["BLOCK_H"] = block_h
    ptrs = FP8_PTRS if version in (4, 6) else PTRS
    if fp16:
        ptrs = dict(ptrs, Q="*fp16", OUT="*fp16")
    sig, attrs = {}, {}
    for i, n in enumerate(fn.arg_names):
        if n in const:
            sig[n] = "constexpr"
        elif n in ("KD", "RD"):  # gluon=3 and 5's TMA descriptors over the cache's token rows
            ss = importlib.import_module("mlatune.kernels.mla_gluon_ss")  # gluon=5 uses its descriptors
            block, layout = ([64, 256], ss.LAT_LAYOUT) if n == "KD" else ([64, 64], ss.ROPE_LAYOUT)
            sig[n] = f"tensordesc<bf16{block},{layout!r}>"
        elif n in ptrs:
            sig[n], attrs[(i,)] = ptrs[n], [["tt.divisibility", 16]]
        else:
            sig[n] = "fp32" if n == "scale_log2" else "i32"
            if n.startswith("stride") and n != "stride_lpr":  # as the JIT specializes the usual strides
                attrs[(i,)] = [["tt.divisibility", 16]]
    return triton.compile(GluonASTSource(fn, sig, const, attrs), target=GPUTarget("cuda", 90, 32),
                          options=dict(num_warps=warps))


def _cuobjdump(cubin: bytes, flag: str) -> str:
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([tool, flag, f.name], capture_output=True, text=True, check=True).stdout


def loop_spills(sass: str) -> int:
    """Spill loads and stores (LDL/STL) inside the innermost loops that hold tensor-core instructions (HGMMA):
    the per-tile loop. Spills outside it (prologue, epilogue) cost little."""
    ins = [(int(a, 16), op) for a, op in re.findall(r"/\*([0-9a-f]{4,})\*/\s+(.*?);", sass)]
    loops = [(int(t, 16), a) for a, op in ins for t in re.findall(r"\bBRA\s+0x([0-9a-f]+)", op) if int(t, 16) < a]
    hot = set()
    for a, op in ins:
        if "HGMMA" in op:
            around = [lp for lp in loops if lp[0] <= a <= lp[1]]
            if around:
                hot.add(min(around, key=lambda lp: lp[1] - lp[0]))
    return sum(1 for a, op in ins if re.match(r"(@\S+\s+)?(LDL|STL)\b", op) and any(lo <= a <= hi for lo, hi in hot))


def resources(cubin: bytes) -> tuple[int, int]:
    """(registers per thread, stack bytes) from the cubin, with the cuobjdump that ships with Triton."""
    out = _cuobjdump(cubin, "--dump-resource-usage")
    m = re.search(r"REG:(\d+).*?STACK:(\d+)", out)
    if not m:
        raise RuntimeError(f"cuobjdump printed no resource usage: {out[-300:]}")
    return int(m.group(1)), int(m.group(2))


def report(block_n: int, stages: int, causal: int = 0, one_split: bool = False, page: int = 64,
           version: int = 1, tma: bool = True, ordered: bool = False, block_h: int = 16, fp16: bool = False) -> dict:
    k = compile_gluon(block_n, stages, causal, one_split, page, version, tma, ordered, block_h, fp16)
    wgmma = Counter(re.findall(r"wgmma\.mma_async\.sync\.aligned\.(m\d+n\d+k\d+)\.", k.asm["ptx"]))
    stores = Counter(re.findall(r"\bst\.global((?:\.v\d)?\.b\d+)", k.asm["ptx"]))  # global stores by width
    tma = k.asm["ptx"].count("cp.async.bulk.tensor")  # TMA copies written in the kernel (each one box)
    regs, stack = resources(k.asm["cubin"])
    wide = version == 6 and block_h == 64  # compiled with 8 warps and 128-token tiles
    return dict(gluon=version, block_n=128 if wide else block_n, block_h=block_h if version in (4, 6) else 64, fp16=fp16,
                stages=stages,
                causal=causal, one_split=one_split, page=page,
                tma=version in (3, 5, 7) and tma and page % 64 == 0, ordered=version in (3, 6) and ordered,
                shared=k.metadata.shared, regs=regs, stack=stack, loop_spills=loop_spills(_cuobjdump(k.asm["cubin"], "-sass")),
                wgmma=dict(wgmma), stores=dict(stores), tma_copies=tma)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--block-n", type=int, default=64)
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--causal", nargs="?", type=int, const=2, default=0, choices=[0, 1, 2],
                    help="the causal mask; gluon 3, 5, 7: 2 (the flag alone) masks every tile pair, 1 a split's last")
    ap.add_argument("--one-split", action="store_true")
    ap.add_argument("--page", type=int, default=64)
    ap.add_argument("--gluon", type=int, default=1, choices=sorted(KERNELS), help="kernel version (the gluon knob)")
    ap.add_argument("--no-tma", action="store_true", help="gluon=3, 5: compile the cp.async path (as for unpacked caches)")
    ap.add_argument("--ordered", action="store_true", help="gluon=3, 6: compile the scheduled 1-D grid (pieces longest first)")
    ap.add_argument("--block-h", type=int, default=16,
                    help="gluon=4, 6: query rows per program (16 or 32; gluon=6 also 64, on 8 warps); the others take 64")
    ap.add_argument("--fp16", action="store_true", help="an fp16 q and output instead of bf16")
    a = ap.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise SystemExit("unset TRITON_INTERPRET: the interpreter's library functions cannot be compiled")
    print(json.dumps(report(a.block_n, a.stages, a.causal, a.one_split, a.page, a.gluon, not a.no_tma, a.ordered,
                            a.block_h, a.fp16)))


if __name__ == "__main__":
    main()
