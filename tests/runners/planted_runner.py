"""Test runner for the sweep: the real launcher, except block_n=32 aborts the process, num_splits=2 hangs
and block_h=32 writes a slightly wrong output."""
import os
import time

from mlatune.kernels.mla_decode import *  # noqa: F401,F403 - check_inputs, resolve_splits, alloc_partials
from mlatune.kernels.mla_decode import launch as _launch

CRASH = os.environ.get("MLATUNE_TEST_CRASH", "abort")


def launch(q, kv_cache, block_table, cache_seqlens, out, lse, softmax_scale, causal, cfg, splits, fmt, k_scale=None,
           partials=None, **kw):
    if cfg.block_n == 32:
        if CRASH == "segfault":
            import ctypes

            ctypes.string_at(0)  # read address 0: SIGSEGV
        elif CRASH == "exit":
            os._exit(7)
        os.abort()
    if cfg.num_splits == 2:
        time.sleep(3600)
    _launch(q, kv_cache, block_table, cache_seqlens, out, lse, softmax_scale, causal, cfg, splits, fmt, k_scale, partials, **kw)
    if cfg.block_h == 32:
        out.mul_(1.03)
    return out, lse
