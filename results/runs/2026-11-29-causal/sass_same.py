"""Is the seesaw kernels' SASS the same as an older copy's? Offline sm_90 compiles (no GPU) of the tree's
mla_gluon_ss.py / mla_gluon_ps.py and of copies in $OLD (ss_old.py, ps_old.py; see ../2026-11-29-combine/ab_ss.py for
how they are made), per (gluon, causal mode, page, one split); addresses are dropped before the SASS is hashed.
Run from the repository root: TRITON_INTERPRET=0 OLD=.devscripts/old8 python results/runs/2026-11-29-causal/sass_same.py
(the relabelling to 8aae7d1177b5 compared new mode 2 with the old kernel's CAUSAL=True, listed as old mode 1)."""
import hashlib, importlib, os, re, sys
sys.path.insert(0, os.environ.get("OLD", ".devscripts/old8"))
from mlatune import offline
ss = importlib.import_module("mlatune.kernels.mla_gluon_ss")
ps = importlib.import_module("mlatune.kernels.mla_gluon_ps")
import ss_old, ps_old
NEW = (ss.split_kernel_ss, ps.split_kernel_ps)
OLD = (ss_old.split_kernel_ss, ps_old.split_kernel_ps)


def sass(v, causal, page, one_split, kernels):
    ss.split_kernel_ss, ps.split_kernel_ps = kernels  # compile_gluon looks the kernel up in its module
    k = offline.compile_gluon(64, 2, causal, one_split, page, v)
    t = offline._cuobjdump(k.asm["cubin"], "-sass")
    t = "\n".join(line for line in t.splitlines() if "/*" in line and ";" in line)
    return hashlib.sha1(re.sub(r"/\*[0-9a-f]{4}\*/", "", t).encode()).hexdigest()[:12], offline.resources(k.asm["cubin"])


for v, new_c, old_c, page, one in [(3, 0, 0, 64, False), (3, 1, 1, 64, True), (5, 2, 2, 16, False), (7, 1, 1, 64, False)]:
    a, b = sass(v, new_c, page, one, NEW), sass(v, old_c, page, one, OLD)
    print(v, "new mode", new_c, "old", old_c, "page", page, "one split", one, "new", a, "old", b,
          "SAME" if a[0] == b[0] else "DIFF", flush=True)
