"""Config enumeration: the product of a spec's knob lists, filtered by its constraints and by what can run."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from .kernels.config import Config, check_config
from .spec import KNOBS


@dataclass
class Space:
    valid: list[Config] = field(default_factory=list)
    invalid: list[tuple[Config, str]] = field(default_factory=list)  # cannot run here: record as invalid
    excluded: list[tuple[Config, str]] = field(default_factory=list)  # left out by a spec constraint


def constraint_env(cfg: Config, w) -> dict:
    env = cfg.to_dict()
    env.update(w.to_dict())
    env["rows"] = w.h_q * w.s_q
    return env


def enumerate_space(spec, w, smem_limit: int | None = None, sm90: bool | None = None) -> Space:
    """All knob combinations for workload w, split into valid, invalid (with reasons) and excluded.
    sm90: whether the device runs the Gluon sm_90 kernel (None: not checked)."""
    sp = Space()
    for vals in itertools.product(*(spec.space[k] for k in KNOBS)):
        cfg = Config(**dict(zip(KNOBS, vals)))
        env = constraint_env(cfg, w)
        failed = next((c.text for c in spec.constraints if not c(env)), None)
        if failed is not None:
            sp.excluded.append((cfg, f"constraint {failed!r}"))
            continue
        bad = check_config(cfg, w.kv_format, smem_limit, sm90)
        if bad:
            sp.invalid.append((cfg, "; ".join(bad)))
        else:
            sp.valid.append(cfg)
    return sp


def device_runs_gluon(device: str) -> bool:
    """Whether the device runs the Gluon sm_90 kernel (False in the interpreter)."""
    if not device.startswith("cuda"):
        return False
    import torch

    from .kernels.mla_decode import gluon_runs_on

    return gluon_runs_on(torch.device(device))


def device_smem_limit(device: str) -> int | None:
    """Shared memory per block (opt-in) of a CUDA device; None in the interpreter."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_properties(torch.device(device)).shared_memory_per_block_optin
