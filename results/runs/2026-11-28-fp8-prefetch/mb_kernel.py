"""Microbenchmark: wgmma m64nNk16 fp16 throughput per SM, A from registers or shared memory, one accumulator chain."""
import sys, torch, triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, warpgroup_mma, warpgroup_mma_wait


@gluon.jit
def mb(X, OUT, N: gl.constexpr, ITERS: gl.constexpr, AREG: gl.constexpr, CHAINS: gl.constexpr):
    mma_l: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, N, 16])
    a_l: gl.constexpr = gl.DotOperandLayout(0, mma_l, 2)
    ld: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
    b_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([16, N], gl.float16)
    a_sl: gl.constexpr = gl.NVMMASharedLayout.get_default_for([64, 16], gl.float16)
    rb = gl.arange(0, 16, layout=gl.SliceLayout(1, ld))
    cb = gl.arange(0, N, layout=gl.SliceLayout(0, ld))
    b_s = gl.allocate_shared_memory(gl.float16, [16, N], b_sl)
    b_s.store(gl.load(X + gl.expand_dims(rb, 1) * N + gl.expand_dims(cb, 0)))
    ra = gl.arange(0, 64, layout=gl.SliceLayout(1, ld))
    ca = gl.arange(0, 16, layout=gl.SliceLayout(0, ld))
    av = gl.load(X + gl.expand_dims(ra, 1) * 16 + gl.expand_dims(ca, 0))
    a_s = gl.allocate_shared_memory(gl.float16, [64, 16], a_sl)
    a_s.store(av)
    fence_async_shared()
    a = gl.convert_layout(av, a_l)
    acc0 = gl.zeros([64, N], gl.float32, mma_l)
    acc1 = gl.zeros([64, N], gl.float32, mma_l)
    for i in range(ITERS // 8):
        for j in gl.static_range(8):
            if AREG:
                acc0 = warpgroup_mma(a, b_s, acc0, is_async=True)
                if CHAINS == 2:
                    acc1 = warpgroup_mma(a, b_s, acc1, is_async=True)
            else:
                acc0 = warpgroup_mma(a_s, b_s, acc0, is_async=True)
                if CHAINS == 2:
                    acc1 = warpgroup_mma(a_s, b_s, acc1, is_async=True)
        acc0, acc1 = warpgroup_mma_wait(0, deps=[acc0, acc1])
    acc0, acc1 = warpgroup_mma_wait(0, deps=[acc0, acc1])
    gl.store(OUT + gl.program_id(0), gl.sum(gl.sum(acc0 + acc1, 1), 0))


