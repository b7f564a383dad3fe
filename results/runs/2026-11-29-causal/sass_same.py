"""Is the new seesaw code's SASS the old one's for given (gluon, causal mode)? old = .devscripts/old6 copies."""
import sys, importlib, hashlib, re
sys.path.insert(0, ".devscripts/old8")
from mlatune import offline
ss = importlib.import_module("mlatune.kernels.mla_gluon_ss"); ps = importlib.import_module("mlatune.kernels.mla_gluon_ps")
import ss_old, ps_old
new_ss, new_ps = ss.split_kernel_ss, ps.split_kernel_ps
def sass(v, causal_new, causal_old, page, one_split, old):
    ss.split_kernel_ss, ps.split_kernel_ps = (ss_old.split_kernel_ss, ps_old.split_kernel_ps) if old else (new_ss, new_ps)
    if old:  # the old kernels took a bool
        orig = offline.compile_gluon
    k = offline.compile_gluon(64, 2, causal_old if old else causal_new, one_split, page, v)
    t = offline._cuobjdump(k.asm["cubin"], "-sass")
    t = "\n".join(l for l in t.splitlines() if "/*" in l and ";" in l)
    return hashlib.sha1(re.sub(r"/\*[0-9a-f]{4}\*/", "", t).encode()).hexdigest()[:12], offline.resources(k.asm["cubin"])
for v, new_c, old_c, page, one in [(3, 0, 0, 64, False), (3, 1, 1, 64, True), (5, 2, 2, 16, False), (7, 1, 1, 64, False)]:
    a = sass(v, new_c, old_c, page, one, False); b = sass(v, new_c, old_c, page, one, True)
    print(v, "new mode", new_c, "old", old_c, "page", page, "one", one, "new", a, "old", b, "SAME" if a[0] == b[0] else "DIFF", flush=True)
