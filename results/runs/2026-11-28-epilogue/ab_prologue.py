"""A/B of the seesaw kernel's fixed costs (gluon=3, one split, fixed lengths): base (commit f6e8ad8), the kernel under test
in kernels/ (then: the output staged through shared memory and q by TMA, i.e. the kernel of the commit that adds this
file with `git apply qtma.diff`), the same without q by TMA (Q_TMA=False: the kept form), and a bound without the output
store. Run from the repository root on an sm_90 GPU."""
import importlib, importlib.util, json, os, subprocess, sys
import torch, triton
from mlatune.kernels.config import D_QK
from mlatune.kernels.reference import mla_decode_ref
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.bench import time_cuda
md = importlib.import_module("mlatune.kernels.mla_decode")
new = open("kernels/mla_gluon_ss.py").read()
base = subprocess.run(["git", "show", "f6e8ad8:kernels/mla_gluon_ss.py"], capture_output=True, text=True, check=True).stdout
store = """    gl.store(OUT + gl.expand_dims(o_off, 1) + gl.expand_dims(dv, 0), val, mask=gl.expand_dims(r < H * S_Q, 1))"""
assert new.count(store) == 1
variants = {"base": (base, False), "new": (new, True), "new_noqtma": (new, False),
            "new_nostore": (new.replace(store, "    pass"), True)}
os.makedirs("/tmp/ssv", exist_ok=True)
mods = {}
for name, (src, _) in variants.items():
    p = f"/tmp/ssv/ss_{name}.py"; open(p, "w").write(src)
    spec = importlib.util.spec_from_file_location(f"ss_{name}", p)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); mods[name] = m

def launch(m, qtma, x, out, lse, h, s_q, L):
    q, kv, bt, sl = x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"]
    kd, rd, use_tma = m.descriptors(kv)
    grid = (triton.cdiv(h * s_q, 64), 1, q.shape[0])
    k = m.split_kernel_ss
    extra = {}
    head = (q,)
    if "QD" in k.arg_names:
        qd, ok = m.q_descriptor(q)
        head = (q, qd); extra = dict(Q_TMA=qtma and ok)
    return k[grid](*head, kv, kd, rd, bt, sl, sl, out, lse, out, lse, D_QK ** -0.5 * 1.4426950408889634, 1, L,
        q.stride(0), q.stride(1), q.stride(2), kv.stride(0), kv.stride(1), bt.stride(0), 0, 0, 0, 0, 0,
        out.stride(0), out.stride(1), out.stride(2), lse.stride(0), lse.stride(1), h, s_q, PAGE=kv.shape[1], BLOCK_N=64,
        STAGES=2, ONE_SPLIT=True, CAUSAL=s_q > 1, DV=512, DR=64, USE_TMA=use_tma, ORDERED=False, num_warps=4, **extra)

res = []
shapes = [(66, 1024, 128, 1), (128, 1024, 128, 1), (128, 1024, 64, 2), (128, 1024, 32, 1), (128, 4096, 128, 1), (128, 4096, 16, 1), (3, 700, 20, 3)]
for (batch, L, h, s_q) in shapes:
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q)
    x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
    Lm = int(x["cache_seqlens"].max())
    ro, rl = mla_decode_ref(x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"], causal=s_q > 1) if batch <= 66 else (None, None)
    for name, m in mods.items():
        out = torch.full((batch, s_q, h, 512), float("nan"), dtype=x["q"].dtype, device="cuda")
        lse = torch.full((batch, h, s_q), float("nan"), dtype=torch.float32, device="cuda")
        fn = lambda: launch(m, variants[name][1], x, out, lse, h, s_q, Lm)
        fn(); torch.cuda.synchronize()
        err = None
        if ro is not None and name != "new_nostore":
            err = ((out.float() - ro.float()).norm() / ro.float().norm()).item()
            err = max(err, ((lse - rl).abs() / rl.abs().clamp_min(1e-6)).max().item())
        t = time_cuda(fn)
        r = dict(batch=batch, L=L, h=h, s_q=s_q, variant=name, us=round(t.median_us, 2), p20=round(t.p20_us, 2), p80=round(t.p80_us, 2), err=err)
        print(json.dumps(r), flush=True); res.append(r)
json.dump(res, open(os.environ.get("OUT", "/tmp") + "/ab_prologue.json", "w"), indent=1)
