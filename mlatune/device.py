"""Device facts for the record: name, driver, clocks (nvidia-smi), and measured, cached copy/matmul ceilings."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

INTERPRETER = "interpreter (cpu)"


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def nvidia_smi(fields: str, index: int | None = None) -> list[dict] | None:
    """Rows of `nvidia-smi --query-gpu=fields`, or None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    cmd = [exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"]
    if index is not None:
        cmd.append(f"--id={index}")
    try:
        txt = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    names = [f.strip() for f in fields.split(",")]
    return [dict(zip(names, (x.strip() for x in line.split(",")))) for line in txt.strip().splitlines()]


def clocks(indices: list[int]) -> list[dict] | None:
    """SM and memory clocks seen now (MHz), and the throttle reasons, per GPU index."""
    rows = nvidia_smi("index,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw,clocks_throttle_reasons.active")
    if rows is None:
        return None
    return [r for r in rows if r.get("index", "").isdigit() and int(r["index"]) in indices]


def driver_version() -> str | None:
    rows = nvidia_smi("driver_version")
    return rows[0]["driver_version"] if rows else None


def cache_dir() -> Path:
    base = os.environ.get("MLATUNE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlatune")
    return Path(base)


def measure_ceilings(device: str = "cuda") -> dict:
    """Copy bandwidth (2 GiB device-to-device copy, bytes read + written) and bf16 matmul peak (8192^3, random)."""
    import torch

    def med_ms(fn, reps=10):
        for _ in range(3):
            fn()
        ts = []
        for _ in range(reps):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize(device)
            ts.append(s.elapsed_time(e))
        return statistics.median(ts)

    with torch.cuda.device(device):
        n = 2 << 30
        src = torch.empty(n, dtype=torch.uint8, device=device)
        dst = torch.empty_like(src)
        copy_ms = med_ms(lambda: dst.copy_(src))
        del src, dst
        a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
        b = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
        mm_ms = med_ms(lambda: a @ b)
        del a, b
        torch.cuda.empty_cache()
    return {"copy_gbps": 2 * n / (copy_ms * 1e-3) / 1e9, "mm_tflops": 2 * 8192**3 / (mm_ms * 1e-3) / 1e12}


def cached_ceilings(device_name: str) -> dict | None:
    p = cache_dir() / "ceilings.json"
    try:
        return json.loads(p.read_text()).get(device_name)
    except (OSError, ValueError):
        return None


def save_ceilings(device_name: str, ceil: dict) -> None:
    p = cache_dir() / "ceilings.json"
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        data = {}
    data[device_name] = ceil
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(p)
