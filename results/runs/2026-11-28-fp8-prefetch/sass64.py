"""SASS and shared memory of four 64-row (8-warp) gluon=6 variants and two one-warpgroup ones, compiled offline for sm_90,
as a JSON file: run it before a change (git stash) and after, then compare the two files (the check behind the v11
relabel of the 64-row rows, runs/README.md). Usage: python sass64.py OUT.json"""
import json, os, re, sys
os.environ.pop("TRITON_INTERPRET", None)
from mlatune.offline import _cuobjdump, compile_gluon
out = {}
for bh, st, causal, one, page, fp16, ordered in [(64, 1, False, False, 64, False, False), (64, 1, True, False, 16, False, True),
                                                 (64, 1, False, True, 64, True, False), (64, 1, True, False, 1, False, False),
                                                 (16, 2, False, False, 64, False, True), (32, 2, True, False, 64, False, False)]:
    k = compile_gluon(128 if bh == 64 else 64, st, causal, one, page, version=6, block_h=bh, fp16=fp16, ordered=ordered)
    sass = _cuobjdump(k.asm["cubin"], "-sass")
    ins = [re.sub(r"\s+", " ", op).strip() for op in re.findall(r"/\*[0-9a-f]{4,}\*/\s+(.*?);", sass)]
    out[str((bh, st, causal, one, page, fp16, ordered))] = dict(shared=k.metadata.shared, ins=ins)
json.dump(out, open(sys.argv[1], "w"))
