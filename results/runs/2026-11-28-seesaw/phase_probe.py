"""Phase probe of the seesaw kernel (results/runs/2026-11-28-seesaw/1b-phase_probe.json): time copies of
kernels/mla_gluon_ss.py with one phase removed. Their results are wrong on purpose; this is timing only.

The text edits match the kernel of commit d0e8ba8 (the probe-1 form), which predates this file. Reproduce on
an H200, from the repository root:
  cp results/runs/2026-11-28-seesaw/phase_probe.py /tmp/ && git checkout d0e8ba8 \
    && pip install --no-deps --no-build-isolation -e . && OUT=. python /tmp/phase_probe.py
"""
import importlib.util, sys, os, json, re
import torch
from mlatune.kernels import mla_decode as _unused  # noqa
md = importlib.import_module("mlatune.kernels.mla_decode")
from mlatune.kernels import Config
from mlatune.workload import Workload, make_inputs
from mlatune.bench import time_cuda

src = open("kernels/mla_gluon_ss.py").read()

def sub(s, old, new, count=1):
    assert s.count(old) >= 1, old[:80]
    return s.replace(old, new)

def no_loads(s):
    # drop every in-loop load and the waits on the loads' barriers inside the pair functions
    s = re.sub(r"\n(\s+)_load_half\(KV, BT, k_(l|r)\.index\((0|1)\), k_rope\.index\((0|1)\), bars\.index\((\d)\), b, t0 \+ (\d+), end,\n\s+stride_kb, stride_kt, stride_btb, PAGE, (0|1), ld, ldr\)",
               r"\n\1pass", s)
    s = s.replace("        mbarrier.wait(bars.index(0), ph ^ 1)\n        mbarrier.wait(bars.index(1), ph ^ 1)\n", "")
    s = s.replace("        mbarrier.wait(bars.index(2), ph ^ 1)\n        mbarrier.wait(bars.index(3), ph ^ 1)\n", "")
    return s

def no_exp(s):
    s = sub(s, "    p = gl.exp2(x - gl.expand_dims(m0, 1))\n", "    p = x - gl.expand_dims(m0, 1)\n")
    s = sub(s, "    p = gl.exp2(x - gl.expand_dims(m1, 1))\n", "    p = x - gl.expand_dims(m1, 1)\n")
    return s

def no_qk(s):  # scores of the next tile = zeros (no QK^T in the loop)
    s = sub(s, "        s = warpgroup_mma(q_l.index(z), k_l.index(z).permute((1, 0)), zero, use_acc=False, is_async=True)\n", "        s = zero\n")
    s = sub(s, "        s = warpgroup_mma(q_r.index(z), k_r.index(z).permute((1, 0)), s, is_async=True)\n        s = warpgroup_mma(q_rope, k_rope.index(z).permute((1, 0)), s, is_async=True)\n        s = warpgroup_mma_wait(0, deps=[s])\n", "")
    s = sub(s, "        s = _scores(q_l.index(z), q_r.index(z), q_rope, k_l.index(1 + z), k_r.index(1 + z), k_rope.index(1 + z), zero)\n", "        s = zero\n")
    return s

variants = {"base": src, "noload": no_loads(src), "noexp": no_exp(src), "noload_noexp": no_exp(no_loads(src)),
            "noqk": no_qk(src)}
os.makedirs("/tmp/ssv", exist_ok=True)
mods = {}
for name, s in variants.items():
    p = f"/tmp/ssv/ss_{name}.py"
    open(p, "w").write(s)
    spec = importlib.util.spec_from_file_location(f"ss_{name}", p)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    mods[name] = m
res = []
for (h, s_q, L, batch) in [(128, 1, 4096, 128), (64, 1, 4096, 128), (128, 2, 4096, 128)]:
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q, causal=True)
    x = make_inputs(w, device="cuda", seed=1)
    q, kv, bt, sl = x["q"], x["kv_cache"], x["block_table"].cuda(), x["cache_seqlens"].cuda()
    out = torch.empty(batch, s_q, h, 512, dtype=q.dtype, device="cuda"); lse = torch.empty(batch, h, s_q, dtype=torch.float32, device="cuda")
    for cfgs in (1, 3):
        for name, m in mods.items():
            md.split_kernel_ss = m.split_kernel_ss
            cfg = Config(block_n=64, block_h=64, num_splits=cfgs, num_warps=8, num_stages=2, gluon=3)
            fn = lambda: md.launch(q, kv, bt, sl, out, lse, 576 ** -0.5, s_q > 1, cfg, cfgs, "bf16", max_seqlen=L)
            t = time_cuda(fn)
            r = dict(h=h, s_q=s_q, L=L, batch=batch, splits=cfgs, variant=name, us=round(t.median_us, 1))
            print(json.dumps(r), flush=True); res.append(r)
json.dump(res, open(os.environ.get("OUT", "/tmp") + "/phase_probe.json", "w"), indent=1)
