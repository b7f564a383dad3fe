"""FlashMLA as a peer to time against: build its dense sm90 decode from a local checkout, call it through ctypes."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WRAPPER = Path(__file__).with_name("peer_flashmla.cu")
# FlashMLA sources compiled with our wrapper (paths inside its checkout).
SOURCES = (
    "csrc/sm90/decode/dense/instantiations/bf16.cu",
    "csrc/smxx/decode/combine/combine.cu",
    "csrc/smxx/decode/get_decoding_sched_meta/get_decoding_sched_meta.cu",
)
# FlashMLA's setup.py nvcc flags for sm90a (less -v, -lineinfo and --source-in-ptx, which only add output),
# bf16 only, everything but our C entry points hidden so its C++ symbols cannot clash with an installed flash_mla.
NVCC_FLAGS = (
    "-O3", "-std=c++20", "-DNDEBUG", "-D_USE_MATH_DEFINES", "-Wno-deprecated-declarations",
    "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__", "-U__CUDA_NO_HALF2_OPERATORS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__", "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math",
    "--ptxas-options=--register-usage-level=10", "-DFLASH_MLA_DISABLE_FP16",
    "-gencode", "arch=compute_90a,code=sm_90a", "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden",
)
PAGE = 64
D_QK, D_V = 576, 512


def _nvcc() -> str:
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and (Path(home) / "bin" / "nvcc").exists():
        return str(Path(home) / "bin" / "nvcc")
    found = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if not found:
        raise RuntimeError("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    return found


def build(flashmla: Path, cutlass: Path | None, out: Path, jobs: int = 2) -> Path:
    """Compile the wrapper and FlashMLA's bf16 dense decode, combine and scheduler kernels (one object each,
    `jobs` at a time), link them with static cudart into `out`, replaced atomically. Returns `out`."""
    flashmla, out = Path(flashmla).resolve(), Path(out).resolve()
    cutlass = Path(cutlass).resolve() if cutlass else flashmla / "csrc" / "cutlass"
    missing = [s for s in SOURCES if not (flashmla / s).is_file()]
    if missing:
        raise FileNotFoundError(f"{flashmla} is not a FlashMLA checkout with the dense sm90 decode: missing {missing}")
    if not (cutlass / "include" / "cute" / "tensor.hpp").is_file():
        raise FileNotFoundError(f"no CUTLASS headers under {cutlass}/include (init FlashMLA's csrc/cutlass submodule "
                                "or pass --cutlass)")
    csrc = flashmla / "csrc"
    incs = [csrc, csrc / "kerutils" / "include", csrc / "sm90", cutlass / "include", cutlass / "tools" / "util" / "include"]
    nvcc = _nvcc()
    base = [nvcc, *NVCC_FLAGS, *(f"-I{p}" for p in incs)]
    srcs = [WRAPPER, *(flashmla / s for s in SOURCES)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=out.stem + ".", dir=out.parent) as tmp:
        objs = [Path(tmp) / f"{i}_{s.stem}.o" for i, s in enumerate(srcs)]

        def compile_one(pair):
            src, obj = pair
            t0 = time.time()
            r = subprocess.run([*base, "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"nvcc failed on {src}:\n{r.stdout}{r.stderr}")
            print(f"compiled {src.name} in {time.time() - t0:.0f}s", file=sys.stderr, flush=True)

        with ThreadPoolExecutor(max(1, jobs)) as ex:
            list(ex.map(compile_one, zip(srcs, objs)))
        so = Path(tmp) / out.name
        r = subprocess.run([nvcc, "-shared", "-cudart", "static", "-gencode", "arch=compute_90a,code=sm_90a",
                            *map(str, objs), "-o", str(so)], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"link failed:\n{r.stdout}{r.stderr}")
        os.replace(so, out)
    return out


class FlashMLAError(RuntimeError):
    pass


class FlashMLA:
    """FlashMLA's dense sm90 bf16 decode, with the conventions of flash_mla.flash_mla_with_kvcache.
    Every call only launches kernels on the current stream (no syncs, no host reads): CUDA-graph capturable."""

    def __init__(self, so: Path | str):
        lib = ctypes.CDLL(str(so))
        P, I, L = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
        lib.mlatune_fm_sched_meta_size.argtypes, lib.mlatune_fm_sched_meta_size.restype = [], I
        lib.mlatune_fm_error_string.argtypes, lib.mlatune_fm_error_string.restype = [I], ctypes.c_char_p
        lib.mlatune_fm_get_meta.argtypes = [P, I, I, I, I, I, P, P, P]
        lib.mlatune_fm_get_meta.restype = I
        lib.mlatune_fm_decode.argtypes = [P] * 10 + [I] * 8 + [L] * 7 + [I, ctypes.c_float, I, P]
        lib.mlatune_fm_decode.restype = I
        self.lib = lib
        self.meta_ints = lib.mlatune_fm_sched_meta_size()

    def _check(self, rc: int, what: str):
        if rc:
            raise FlashMLAError(f"FlashMLA {what} failed ({rc}): {self.lib.mlatune_fm_error_string(rc).decode()}")

    @staticmethod
    def num_sm_parts(device, s_q: int, h_q: int, h_k: int = 1) -> int:
        """dense_decode.h: max(num_sms / h_k / ceil_div(s_q*h_q/h_k, 64), 1)."""
        import torch

        sms = torch.cuda.get_device_properties(device).multi_processor_count
        return max(sms // h_k // -(-(s_q * h_q // h_k) // 64), 1)

    def metadata(self, cache_seqlens, s_q: int, h_q: int, h_k: int = 1):
        """(tile_scheduler_metadata int32 [num_sm_parts, 8], num_splits int32 [batch + 1]) on the seqlens' device.
        Reuse them only while batch, s_q, h_q, h_k and the seqlens' values stay the same (as FlashMLA's sched_meta)."""
        import torch

        if cache_seqlens.dtype != torch.int32 or cache_seqlens.dim() != 1 or not cache_seqlens.is_cuda:
            raise ValueError("cache_seqlens must be a 1-D int32 CUDA tensor")
        if h_k < 1 or h_q % h_k:
            raise ValueError(f"h_q ({h_q}) must be a multiple of h_k ({h_k})")
        seqlens = cache_seqlens.contiguous()
        b, dev = seqlens.shape[0], seqlens.device
        parts = self.num_sm_parts(dev, s_q, h_q, h_k)
        meta = torch.empty(parts, self.meta_ints, dtype=torch.int32, device=dev)
        splits = torch.empty(b + 1, dtype=torch.int32, device=dev)
        with torch.cuda.device(dev):
            rc = self.lib.mlatune_fm_get_meta(seqlens.data_ptr(), b, s_q, h_q, h_k, parts, meta.data_ptr(),
                                              splits.data_ptr(), torch.cuda.current_stream(dev).cuda_stream)
        self._check(rc, "get_meta")
        return meta, splits

    def __call__(self, q, kv_cache, block_table, cache_seqlens, meta, num_splits, softmax_scale: float | None = None,
                 causal: bool = False, head_dim_v: int = D_V):
        """q [b, s_q, h_q, 576] bf16, kv_cache [blocks, 64, h_k, 576] bf16, block_table int32 [b, max_blocks],
        cache_seqlens int32 [b] -> out [b, s_q, h_q, 512] bf16, lse [b, h_q, s_q] fp32 (natural log)."""
        import torch

        if q.dtype != torch.bfloat16 or kv_cache.dtype != torch.bfloat16:
            raise ValueError(f"q and kv_cache must be bfloat16 (got {q.dtype}, {kv_cache.dtype})")
        if q.dim() != 4 or kv_cache.dim() != 4 or q.shape[-1] != D_QK or kv_cache.shape[-1] != D_QK:
            raise ValueError(f"need q [b, s_q, h_q, {D_QK}] and kv_cache [blocks, {PAGE}, h_k, {D_QK}], got "
                             f"{tuple(q.shape)} and {tuple(kv_cache.shape)}")
        if head_dim_v != D_V:
            raise ValueError(f"head_dim_v must be {D_V}")
        if kv_cache.shape[1] != PAGE:
            raise ValueError(f"page size (kv_cache.shape[1]) must be {PAGE}, got {kv_cache.shape[1]}")
        for name, t in (("block_table", block_table), ("cache_seqlens", cache_seqlens), ("meta", meta),
                        ("num_splits", num_splits)):
            if t.dtype != torch.int32:
                raise ValueError(f"{name} must be int32, got {t.dtype}")
        b, s_q, h_q, d = q.shape
        num_blocks, _, h_k, _ = kv_cache.shape
        if b == 0 or h_q % h_k:
            raise ValueError(f"need batch > 0 and h_q ({h_q}) a multiple of h_k ({h_k})")
        if block_table.dim() != 2 or block_table.shape[0] != b or block_table.stride(-1) != 1:
            raise ValueError(f"block_table must be [{b}, max_blocks] with a contiguous last dim")
        if tuple(cache_seqlens.shape) != (b,) or not cache_seqlens.is_contiguous():
            raise ValueError(f"cache_seqlens must be contiguous [{b}]")
        if q.stride(-1) != 1 or kv_cache.stride(-1) != 1:
            raise ValueError("q and kv_cache need a contiguous last dim")
        dev = q.device
        if not all(t.device == dev for t in (kv_cache, block_table, cache_seqlens, meta, num_splits)):
            raise ValueError("all tensors must be on q's device")
        if torch.cuda.get_device_capability(dev) != (9, 0):
            raise ValueError("FlashMLA's dense decode runs on sm90a (H100/H200) only")
        parts = self.num_sm_parts(dev, s_q, h_q, h_k)
        if tuple(meta.shape) != (parts, self.meta_ints) or tuple(num_splits.shape) != (b + 1,) \
                or not meta.is_contiguous() or not num_splits.is_contiguous():
            raise ValueError(f"meta/num_splits must be contiguous [{parts}, {self.meta_ints}] and [{b + 1}]; "
                             "make them with metadata() for these shapes")
        if softmax_scale is None:
            softmax_scale = d ** -0.5
        # dense_decode.h: fold the heads sharing a KV head into the query rows.
        hpk = h_q // h_k
        rows = s_q * hpk
        qr = q.view(b, s_q, h_k, hpk, d).transpose(2, 3).reshape(b, rows, h_k, d)
        f32 = dict(dtype=torch.float32, device=dev)
        out = torch.empty(b, h_k, rows, D_V, dtype=q.dtype, device=dev)
        lse = torch.empty(b, h_k, rows, **f32)
        lse_accum = torch.empty(b + parts, h_k, rows, **f32)
        out_accum = torch.empty(b + parts, h_k, rows, D_V, **f32)
        with torch.cuda.device(dev):
            rc = self.lib.mlatune_fm_decode(
                qr.data_ptr(), kv_cache.data_ptr(), block_table.data_ptr(), cache_seqlens.data_ptr(),
                meta.data_ptr(), num_splits.data_ptr(), out.data_ptr(), lse.data_ptr(), out_accum.data_ptr(),
                lse_accum.data_ptr(), b, s_q, h_q, h_k, d, D_V, num_blocks, PAGE,
                qr.stride(0), qr.stride(1), qr.stride(2), kv_cache.stride(0), kv_cache.stride(1), kv_cache.stride(2),
                block_table.stride(0), parts, float(softmax_scale), int(bool(causal)),
                torch.cuda.current_stream(dev).cuda_stream)
        self._check(rc, "decode")
        out = out.view(b, h_k, s_q, hpk, D_V).transpose(1, 2).reshape(b, s_q, h_q, D_V)
        lse = lse.view(b, h_k, s_q, hpk).transpose(2, 3).reshape(b, h_q, s_q)
        return out, lse


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="python -m mlatune.peer", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    bp = sub.add_parser("build", help="compile FlashMLA's dense sm90 bf16 decode into a shared library")
    bp.add_argument("--flashmla", type=Path, required=True, help="FlashMLA checkout (work tree)")
    bp.add_argument("--cutlass", type=Path, default=None, help="CUTLASS checkout; default FLASHMLA/csrc/cutlass")
    bp.add_argument("--out", type=Path, required=True, help="the .so to write")
    bp.add_argument("--jobs", type=int, default=2, help="parallel nvcc processes")
    a = ap.parse_args(argv)
    t0 = time.time()
    so = build(a.flashmla, a.cutlass, a.out, a.jobs)
    print(f"built {so} ({so.stat().st_size / 2**20:.1f} MiB) in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
