"""Test runner whose output is wrong in configurable ways (for the verification gate)."""
from mlatune.kernels.mla_decode import *  # noqa: F401,F403
from mlatune.kernels.mla_decode import launch as _launch

MODE = {"mode": "ok"}  # tests set MODE["mode"]


def launch(q, kv_cache, block_table, cache_seqlens, out, lse, *args, **kw):
    mode = MODE["mode"]
    if mode == "unwritten":  # compute into a scratch buffer, copy back all but the last head
        tmp = out.new_empty(out.shape)
        _launch(q, kv_cache, block_table, cache_seqlens, tmp, lse, *args, **kw)
        out[:, :, :-1] = tmp[:, :, :-1]
        return out, lse
    _launch(q, kv_cache, block_table, cache_seqlens, out, lse, *args, **kw)
    if mode == "scaled":
        out.mul_(1.05)
    elif mode == "lse":
        lse.add_(0.01)
    elif mode == "nan":
        out[0, 0, 0, 0] = float("nan")
    elif mode == "inf_lse":
        lse[0, 0, 0] = float("inf")
    return out, lse
