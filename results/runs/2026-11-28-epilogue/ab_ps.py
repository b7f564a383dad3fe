"""A/B of the persistent seesaw kernel (gluon=5): before (the next segment's tiles requested after the epilogue) and
after (requested before it), same inputs, same plan, one process. "after" is the installed kernel: run with
overlap.diff applied (git apply) and, as argv[1], kernels/mla_gluon_ps.py of commit f010d1f saved with its import
made absolute (`from mlatune.kernels.mla_gluon_ss import ...`). Run from the repository root on an sm_90 GPU."""
import importlib, importlib.util, json, os, sys
import torch
from mlatune.kernels import Config
from mlatune.workload import Workload, make_inputs, timing_seqlens
from mlatune.bench import time_cuda
md = importlib.import_module("mlatune.kernels.mla_decode")
new_k = md.split_kernel_ps
spec = importlib.util.spec_from_file_location("ps_old", sys.argv[1] if len(sys.argv) > 1 else ".devscripts/ps_old.py")
old = importlib.util.module_from_spec(spec); spec.loader.exec_module(old)
cfg = Config(block_n=64, block_h=64, num_splits=0, num_warps=8, num_stages=2, gluon=5)
res = []
for (batch, L, h, s_q, dist) in [(128, 1024, 128, 1, "fixed"), (128, 1024, 128, 1, "normal"), (128, 4096, 16, 1, "normal"),
                                 (128, 4096, 32, 1, "normal"), (16, 32768, 128, 1, "lognormal"), (8, 8192, 128, 2, "lognormal")]:
    w = Workload(batch=batch, seqlen=L, h_q=h, s_q=s_q, dist=dist)
    x = make_inputs(w, "cuda", seqlens=timing_seqlens(w))
    q, kv, bt, sl = x["q"], x["kv_cache"], x["block_table"], x["cache_seqlens"]
    plan = md.schedule(cfg, sl, 1, int(sl.max()), int(sl.sum()), rows=h * s_q)
    partials = md.alloc_partials(batch, h * s_q, max(plan.slots, 1), q.device) if plan.combine else None
    outs = {}
    for name, k in (("before", old.split_kernel_ps), ("after", new_k), ("before2", old.split_kernel_ps), ("after2", new_k)):
        md.split_kernel_ps = k
        out = torch.full((batch, s_q, h, 512), float("nan"), dtype=q.dtype, device="cuda")
        lse = torch.full((batch, h, s_q), float("nan"), dtype=torch.float32, device="cuda")
        fn = lambda: md.launch(q, kv, bt, sl, out, lse, 576 ** -0.5, s_q > 1, cfg, 1, "bf16", partials=partials, order=plan)
        fn(); torch.cuda.synchronize()
        outs[name] = (out.clone(), lse.clone())
        t = time_cuda(fn)
        r = dict(batch=batch, L=L, h=h, s_q=s_q, dist=dist, variant=name, us=round(t.median_us, 2), p20=round(t.p20_us, 2), p80=round(t.p80_us, 2),
                 segments=int(plan.table.numel() // 4), parts=plan.parts)
        if name != "before":
            o0, l0 = outs["before"]
            r["max_abs_diff_vs_before"] = (out.float() - o0.float()).abs().max().item()
            r["lse_diff_vs_before"] = (lse - l0).abs().nan_to_num(0.0).max().item()
        print(json.dumps(r), flush=True); res.append(r)
    md.split_kernel_ps = new_k
json.dump(res, open(os.environ.get("OUT", "/tmp") + "/ab_ps.json", "w"), indent=1)
