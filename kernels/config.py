"""Kernel knobs (Config) and the rules that say which combinations cannot run."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

D_LATENT = 512  # V dims, the cache's first 512
D_ROPE = 64
D_QK = D_LATENT + D_ROPE  # 576
FP8_LAYOUT_BYTES = 656  # FlashMLA fp8 token: 512 e4m3 + 4 fp32 scales + 64 bf16

# Register file per SM thread budget used by the estimate below.
MAX_REGS_PER_THREAD = 255


@dataclass(frozen=True)
class Config:
    """One kernel variant. num_splits=0 sizes the split count from batch, seqlen and SM count."""

    block_n: int = 64  # KV tokens per tile
    block_h: int = 64  # query rows (heads x s_q) per program
    num_splits: int = 0  # KV splits per sequence; 0 = auto
    num_warps: int = 8
    num_stages: int = 2
    trans: int = 0  # 1: compute S^T = K Q^T (KV tile on the MMA's M axis)
    qk_fp8: int = 0  # 1: quantize q to e4m3 per row and run QK^T on fp8 tensor cores (fp8 cache only)
    gluon: int = 0  # Gluon sm_90 kernels: 1 splits QK^T's columns (mla_gluon.py), 2 its dims (mla_gluon_ws.py),
    #                 3 gives whole tiles to alternate warpgroups (FlashMLA's seesaw, mla_gluon_ss.py); 4 is for the
    #                 per-tensor fp8 cache: 16 or 32 rows, tiles dequantized to bf16 in shared memory, S^T = K Q^T
    #                 (mla_gluon_fp8.py); 5 is 3 as one program per SM part over a balanced segment plan (mla_gluon_ps.py);
    #                 6 is 4 with both matmuls' fp8 tiles dequantized into registers, no bf16 tile (mla_gluon_fp8r.py);
    #                 7 is 5 with an mbarrier per 64-dim chunk of each tile half, so QK^T starts on a chunk as it lands

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; expected a subset of {sorted(names)}")
        vals = {}
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"config key {k!r} must be an integer, got {v!r}")
            vals[k] = v
        return cls(**vals)

    def key(self) -> str:
        k = "n{block_n}_h{block_h}_s{num_splits}_w{num_warps}_st{num_stages}_t{trans}_f{qk_fp8}".format(**asdict(self))
        return k + f"_g{self.gluon}" if self.gluon else k  # keys from before the gluon knob stay valid


def _pow2(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


def kv_bytes_per_elem(kv_format: str) -> int:
    return 2 if kv_format == "bf16" else 1


def smem_estimate(cfg: Config, kv_format: str = "bf16") -> int:
    """Bytes of shared memory: pipelined KV tiles (as bf16 after dequant) plus q and P."""
    if cfg.gluon == 4:  # fp8 stages, the bf16 tile, q, P^T, 512 bytes of scratch (cross-warp reductions, epilogue).
        # The offline sm_90 compiles take exactly this at block_h 32 (225,792 bytes with three stages), 256 less at 16.
        return (cfg.num_stages * cfg.block_n * D_QK + cfg.block_n * D_QK * 2 + cfg.block_h * D_QK * 2
                + cfg.block_n * cfg.block_h * 2 + 512)
    if cfg.gluon == 6:  # fp8 stages, q, P^T, scratch (on one warpgroup also the row maxima, two [4, block_h] fp32
        # buffers); the offline sm_90 compiles take 57,856 bytes (16 rows, one stage) to 189,440 (32 rows, four stages),
        # 768 or 512 under this; 165,888 at 64 rows (8 warps), 512 under
        scratch = 2048 if cfg.block_h == 64 else 768 + 32 * cfg.block_h
        return cfg.num_stages * cfg.block_n * D_QK + cfg.block_h * D_QK * 2 + cfg.block_n * cfg.block_h * 2 + scratch
    if cfg.gluon in (3, 5, 7):  # q latent, two whole tiles, P0 and P1; 2 KB for row maxima/factors/sums, mbarriers and the
        # partitions' captures (stages fixed), and gluon=7's 16 chunk mbarriers. The offline sm_90 compiles take 231,292
        # (3), 231,332 (5) and 231,444 bytes (7); this says 231,424 and 231,552.
        return (cfg.block_h * D_LATENT * 2 + 2 * cfg.block_n * D_QK * 2 + 2 * cfg.block_h * cfg.block_n * 2 + 2048
                + (128 if cfg.gluon == 7 else 0))
    if cfg.gluon == 2:  # KV stages, the two partial score tiles (fp32), P, q's rope dims, row factors
        return (cfg.num_stages * cfg.block_n * D_QK * 2 + 2 * cfg.block_h * cfg.block_n * 4 + cfg.block_h * cfg.block_n * 2
                + cfg.block_h * D_ROPE * 2 + 512)
    tile = cfg.block_n * D_QK * 2
    staged = cfg.num_stages * cfg.block_n * D_QK * kv_bytes_per_elem(kv_format)
    scratch = 1024 if cfg.gluon else 0  # the Gluon kernel's cross-warpgroup row reductions
    return staged + (tile if kv_format != "bf16" else 0) + cfg.block_h * D_QK * 2 + cfg.block_h * cfg.block_n * 2 + scratch


def regs_estimate(cfg: Config) -> int:
    """Rough 32-bit registers per thread for the fp32 accumulator and the score tile."""
    threads = cfg.num_warps * 32
    acc = cfg.block_h * D_LATENT
    scores = 2 * cfg.block_h * cfg.block_n
    return math.ceil((acc + scores) / threads)


def check_config(cfg: Config, kv_format: str = "bf16", smem_limit: int | None = None,
                 sm90: bool | None = None) -> list[str]:
    """Reasons this config cannot run; an empty list means valid. sm90=False (a device that is not Hopper,
    or the interpreter) rules out the Gluon kernel; None leaves the device unchecked."""
    bad = []
    if not (_pow2(cfg.block_n) and 16 <= cfg.block_n <= 256):
        bad.append(f"block_n={cfg.block_n}: must be a power of two in [16, 256] (tl.dot needs >= 16)")
    if not (_pow2(cfg.block_h) and 16 <= cfg.block_h <= 128):
        bad.append(f"block_h={cfg.block_h}: must be a power of two in [16, 128] (tl.dot needs >= 16)")
    if not (0 <= cfg.num_splits <= 256):
        bad.append(f"num_splits={cfg.num_splits}: must be in [0, 256] (0 = auto)")
    if cfg.num_warps not in (1, 2, 4, 8, 16):
        bad.append(f"num_warps={cfg.num_warps}: must be 1, 2, 4, 8 or 16")
    if not (1 <= cfg.num_stages <= 6):
        bad.append(f"num_stages={cfg.num_stages}: must be in [1, 6]")
    if cfg.trans not in (0, 1):
        bad.append(f"trans={cfg.trans}: must be 0 or 1")
    elif cfg.trans and kv_format != "bf16":
        bad.append(f"trans=1 is for bf16/fp16 caches only, not {kv_format!r}")
    if cfg.qk_fp8 not in (0, 1):
        bad.append(f"qk_fp8={cfg.qk_fp8}: must be 0 or 1")
    elif cfg.qk_fp8 and kv_format != "fp8":
        bad.append(f"qk_fp8=1 needs the per-tensor fp8 cache (kv_format 'fp8'), not {kv_format!r}")
    if cfg.gluon not in (0, 1, 2, 3, 4, 5, 6, 7):
        bad.append(f"gluon={cfg.gluon}: must be 0 to 7")
    elif cfg.gluon:
        bad += _gluon_rules(cfg, kv_format, sm90)
    if bad:
        return bad
    regs = regs_estimate(cfg)
    if regs > MAX_REGS_PER_THREAD:
        bad.append(
            f"registers: accumulator and scores need ~{regs} per thread with {cfg.num_warps} warps "
            f"(limit {MAX_REGS_PER_THREAD}); use more warps or a smaller block_h/block_n"
        )
    if smem_limit is not None:
        smem = smem_estimate(cfg, kv_format)
        if smem > smem_limit:
            bad.append(f"shared memory: ~{smem} bytes needed, device allows {smem_limit}; lower num_stages or block_n")
    return bad


def _gluon_rules(cfg: Config, kv_format: str, sm90: bool | None) -> list[str]:
    g = f"gluon={cfg.gluon}"
    bad = []
    if sm90 is False:
        bad.append(f"{g} needs an sm_90 (Hopper) GPU; the Triton interpreter cannot run Gluon kernels")
    if cfg.gluon in (4, 6):
        return bad + _gluon_fp8_rules(cfg, kv_format)
    if kv_format != "bf16":
        bad.append(f"{g} is for bf16/fp16 caches only, not {kv_format!r}")
    if cfg.block_h != 64 or cfg.num_warps != 8:
        bad.append(f"{g} runs 64 rows on two warpgroups: needs block_h=64 and num_warps=8, "
                   f"got block_h={cfg.block_h}, num_warps={cfg.num_warps}")
    if persistent(cfg) and cfg.num_splits != 0:
        bad.append(f"{g} plans its own segments from the sequence lengths: needs num_splits=0, got {cfg.num_splits}")
    if cfg.gluon in (3, 5, 7) and (cfg.block_n, cfg.num_stages) != (64, 2):
        bad.append(f"{g} works on pairs of 64-token tiles, two buffers: needs block_n=64 and num_stages=2, "
                   f"got block_n={cfg.block_n}, num_stages={cfg.num_stages}")
    elif cfg.block_n not in (32, 64):
        bad.append(f"{g} needs block_n 32 or 64, got {cfg.block_n}")
    if cfg.trans or cfg.qk_fp8:
        bad.append(f"{g} does not combine with trans or qk_fp8")
    return bad


def _gluon_fp8_rules(cfg: Config, kv_format: str) -> list[str]:
    g = f"gluon={cfg.gluon}"
    stages = 4 if cfg.gluon == 6 else 3  # gluon=6 has no bf16 tile: room for a fourth fp8 stage
    bad = []
    if kv_format != "fp8":
        bad.append(f"{g} is for the per-tensor fp8 cache (kv_format 'fp8') only, not {kv_format!r}")
    if cfg.gluon == 6 and cfg.block_h == 64:  # two warpgroups, each on 64 of a tile's 128 tokens
        if (cfg.num_warps, cfg.block_n, cfg.num_stages) != (8, 128, 1):
            bad.append(f"{g} runs 64 rows on two warpgroups over 128-token tiles, one stage: needs num_warps=8, "
                       f"block_n=128 and num_stages=1, got num_warps={cfg.num_warps}, block_n={cfg.block_n}, "
                       f"num_stages={cfg.num_stages}")
    else:
        if cfg.block_h not in (16, 32) or cfg.num_warps != 4:
            rows = "16 or 32 rows on one warpgroup, or 64 on two" if cfg.gluon == 6 else "16 or 32 rows on one warpgroup"
            bad.append(f"{g} runs {rows} (the wgmma N): needs block_h 16 or 32 and num_warps=4"
                       + (", or block_h 64 and num_warps=8" if cfg.gluon == 6 else "")
                       + f", got block_h={cfg.block_h}, num_warps={cfg.num_warps}")
        if cfg.block_n != 64 or not 1 <= cfg.num_stages <= stages:
            bad.append(f"{g} puts 64-token tiles on the wgmma M axis, 1 to {stages} fp8 stages: needs block_n=64 and "
                       f"num_stages 1-{stages}, got block_n={cfg.block_n}, num_stages={cfg.num_stages}")
    if cfg.trans or cfg.qk_fp8:
        bad.append(f"{g} does not combine with trans or qk_fp8")
    return bad


def persistent(cfg: Config) -> bool:
    """The persistent seesaw kernel (gluon 5, and 7 with chunked tile barriers): it plans its own segments."""
    return cfg.gluon in (5, 7)


def takes_order(cfg: Config) -> bool:
    """The kernel can take its (sequence, split) pieces in a given order (schedule()): gluon 3 and 6."""
    return cfg.gluon in (3, 6)


def auto_splits(batch: int, row_groups: int, max_seqlen: int, num_sms: int, block_n: int) -> int:
    """Split count that fills about two waves of SMs without splits shorter than 4 tiles."""
    programs = max(1, batch * row_groups)
    want = math.ceil(2 * num_sms / programs)
    cap = max(1, math.ceil(max_seqlen / (4 * block_n)))
    return int(max(1, min(want, cap, 64)))


def source_hash() -> str:
    """Short hash of the code that decides results and speed: the Triton kernels, the launch geometry
    and the knob rules. Input checks and docs can change without invalidating tuned tables."""
    import hashlib
    import importlib
    import inspect

    from . import fp8

    md = importlib.import_module(__package__ + ".mla_decode")  # the module; the package re-exports a function of that name

    parts = [md._split_kernel.fn, md._e4m3_to_f16.fn, md._q_chunk.fn, md._k_chunk.fn, md._combine_kernel.fn,
             md.launch, md.schedule, md.split_length, md.resolve_splits, md.kv_views, md.plan_segments,
             md._launch_persistent, md.Segments,
             auto_splits, persistent, takes_order, Config, _gluon_rules, _gluon_fp8_rules, fp8.quantize_flashmla, fp8.quantize_per_tensor]
    h = hashlib.sha256()
    for obj in parts:
        h.update(inspect.getsource(obj).encode())
    # The Gluon kernels' whole modules, read as text: the hash stays the same where Triton has no Gluon.
    h.update(f"segment cost {md.SEGMENT_COST_TILES}".encode())
    for name in ("mla_gluon.py", "mla_gluon_ws.py", "mla_gluon_ss.py", "mla_gluon_ps.py", "mla_gluon_fp8.py",
                 "mla_gluon_fp8r.py"):
        h.update((Path(md.__file__).parent / name).read_bytes())
    return h.hexdigest()[:12]
