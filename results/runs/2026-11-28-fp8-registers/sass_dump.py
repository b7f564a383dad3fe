"""The SASS of eight gluon=4 and gluon=6 variants, compiled offline for sm_90 (no GPU), as instruction lists in a
JSON file; `python sass_dump.py A.json` before a change and `B.json` after, then `python sass_dump.py --compare A.json
B.json` says, per variant, whether the instructions and the shared memory are the same (the check behind a relabel)."""
import json
import os
import re
import sys

VARIANTS = [  # (gluon, block_h, stages, causal, one_split, page, fp16)
    (4, 16, 3, False, False, 64, False), (4, 32, 2, True, True, 16, False), (4, 16, 1, True, False, 1, True),
    (6, 16, 2, False, False, 64, False), (6, 32, 2, True, False, 64, False), (6, 16, 1, True, True, 16, False),
    (6, 32, 4, False, True, 1, True), (6, 16, 3, True, False, 256, False),
]


def dump(path):
    os.environ.pop("TRITON_INTERPRET", None)
    from mlatune.offline import _cuobjdump, compile_gluon

    out = {}
    for v, bh, st, causal, one, page, fp16 in VARIANTS:
        k = compile_gluon(64, st, causal, one, page, version=v, block_h=bh, fp16=fp16)
        sass = _cuobjdump(k.asm["cubin"], "-sass")
        ins = [re.sub(r"\s+", " ", op).strip() for op in re.findall(r"/\*[0-9a-f]{4,}\*/\s+(.*?);", sass)]
        out[str((v, bh, st, causal, one, page, fp16))] = dict(n=len(ins), shared=k.metadata.shared, ins=ins)
    json.dump(out, open(path, "w"))


def compare(a_path, b_path):
    a, b = json.load(open(a_path)), json.load(open(b_path))
    for k in a:
        same = a[k]["ins"] == b[k]["ins"] and a[k]["shared"] == b[k]["shared"]
        print(k, "same" if same else f"DIFFERENT ({a[k]['n']} -> {b[k]['n']} instructions)")


if __name__ == "__main__":
    compare(*sys.argv[2:4]) if sys.argv[1] == "--compare" else dump(sys.argv[1])
