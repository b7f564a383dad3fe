"""Stall samples at mbarrier waits (each wait's try-wait and the branch of its loop) and at wgmma waits
(WARPGROUP.DEPBAR), per barrier address and per instruction, from ncu's per-SASS-instruction counters:
FlashMLA's kernel (../2026-11-29-combine/source_fm.csv.gz) and gluon=3 before the P1 hand-off change
(source_g3_before_order.csv.gz); batch 66, 16k, h_q 128. python waits.py > waits.txt"""
import collections, csv, gzip, io, os, re
HERE = os.path.dirname(os.path.abspath(__file__))


def load(p):
    lines = gzip.open(p, "rt").read().splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith('"Address","Source"'))
    return list(csv.DictReader(io.StringIO("\n".join(lines[i:]))))


def samples(r):
    return int(r["Warp Stall Sampling (All Samples)"] or 0)


for name, path in (("FlashMLA", HERE + "/../2026-11-29-combine/source_fm.csv.gz"), ("gluon=3", HERE + "/source_g3_before_order.csv.gz")):
    rows = load(path)
    total = sum(map(samples, rows))
    waits = collections.Counter()
    for i, r in enumerate(rows):
        if "TRYWAIT" in r["Source"]:
            m = re.search(r"\+(0x[0-9a-f]+)\]", r["Source"])
            nxt = samples(rows[i + 1]) if "BRA" in rows[i + 1]["Source"] else 0
            waits[m.group(1) if m else "?"] += samples(r) + nxt
    print(f"{name}: {total} stall samples; at mbarrier waits {sum(waits.values())}")
    for k, v in sorted(waits.items()):
        if v >= 100:
            print(f"  mbarrier {k}: {v}")
    deps = [(i, samples(r), r["Source"].strip()) for i, r in enumerate(rows) if "WARPGROUP.DEPBAR" in r["Source"]]
    print(f"  at wgmma waits {sum(d[1] for d in deps)}; the largest:")
    for i, s, src in sorted(deps, key=lambda d: -d[1])[:5]:
        print(f"    #{i} {s} {src}")
