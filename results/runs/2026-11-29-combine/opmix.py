"""Instruction mix and stall samples of FlashMLA's and gluon=3's kernels from ncu's per-SASS-instruction counters
(source_fm.csv.gz, source_g3.csv.gz; batch 66, 16k, h_q 128, one program per sequence and row group): executed
warp instructions and stall samples by opcode, then stall reasons. python opmix.py > opmix.txt"""
import os
HERE = os.path.dirname(os.path.abspath(__file__))
import csv, gzip, io, sys, collections
def load(p):
    lines = gzip.open(p, 'rt').read().splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith('"Address","Source"'))
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[i:]))))
    return rows
tot = {}
for name, p in (("fm", HERE + "/source_fm.csv.gz"), ("g3", HERE + "/source_g3.csv.gz")):
    rows = load(p)
    ops = collections.Counter(); stalls = collections.Counter(); samp = collections.Counter()
    keys = [k for k in rows[0] if k.startswith("stall_") and "Not Issued" not in k]
    for r in rows:
        src = r["Source"].strip()
        toks = src.split()
        op = toks[0]
        if op.startswith("@"): op = toks[1]
        base = op.split(".")[0]
        n = int(r["Instructions Executed"] or 0)
        ops[base] += n
        s = int(r["Warp Stall Sampling (All Samples)"] or 0)
        samp[base] += s
        for k in keys: stalls[k] += int(r[k] or 0)
    tot[name] = (ops, stalls, samp)
    print(name, "instructions", sum(ops.values()), "samples", sum(samp.values()))
allops = set(tot["fm"][0]) | set(tot["g3"][0])
print(f"{'op':12s} {'fm inst':>12s} {'g3 inst':>12s} {'diff':>12s} {'fm samp':>8s} {'g3 samp':>8s}")
for op in sorted(allops, key=lambda o: -abs(tot["g3"][0][o] - tot["fm"][0][o]))[:30]:
    a, b = tot["fm"][0][op], tot["g3"][0][op]
    print(f"{op:12s} {a:12d} {b:12d} {b-a:12d} {tot['fm'][2][op]:8d} {tot['g3'][2][op]:8d}")
print("stalls (all samples):")
for k in sorted(tot["g3"][1], key=lambda k: -(tot["g3"][1][k])):
    a, b = tot["fm"][1][k], tot["g3"][1][k]
    if a or b: print(f"{k:28s} {a:8d} {b:8d} {b-a:8d}")
