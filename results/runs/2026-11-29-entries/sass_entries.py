"""SHA-1 (first 12 hex digits) of the SASS of gluon=3's seven variants and gluon=5's (and 7's) three (offline sm_90 compiles, no GPU).
Run on each tree: python sass_entries.py OUT.json (sass_entries.json holds the results of the trees compared)."""
import sys, json, hashlib
from mlatune.offline import KERNELS, compile_gluon, _cuobjdump
out = {}
for kw in [dict(), dict(one_split=True), dict(ordered=True), dict(causal=True), dict(causal=True, one_split=True), dict(page=16), dict(tma=False)]:
    k = compile_gluon(64, 2, version=3, **kw)
    out[json.dumps(kw)] = hashlib.sha1(_cuobjdump(k.asm["cubin"], "-sass").encode()).hexdigest()[:12]
for v in (5, 7) if 7 in KERNELS else (5,):  # gluon=7 exists from db60021 on
    for kw in [dict(), dict(causal=True), dict(page=16)]:
        k = compile_gluon(64, 2, version=v, **kw)
        out[f"g{v}" + json.dumps(kw)] = hashlib.sha1(_cuobjdump(k.asm["cubin"], "-sass").encode()).hexdigest()[:12]
json.dump(out, open(sys.argv[1], "w"), indent=0); print(out)
