python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
# the variants' sources: run results/runs/2026-11-28-fp8-registers/make_variants.sh in a git checkout first (it needs commit 9d66240) and carry .devscripts
timeout 420 python results/runs/2026-11-28-fp8-registers/ab_fp8r.py D2,A,C,A2,A@168,A2@168 > $OUT/ab.jsonl 2> $OUT/ab.err; echo "ab rc=$?"; tail -3 $OUT/ab.err
python - <<'P'
import json, os, collections
rows = [json.loads(l) for l in open(os.environ["OUT"] + "/ab.jsonl")]
bad = [r for r in rows if "error" in r or not r.get("ok")]
print("rows", len(rows), "bad", len(bad), bad[:3])
best = collections.defaultdict(dict)
for r in rows:
    if r.get("ok"):
        k = (r["batch"], r["seqlen"], r["s_q"]); v = r["variant"]
        best[k][v] = min(best[k].get(v, 1e9), r["us"])
for k, d in best.items(): print(k, {v: round(t, 1) for v, t in d.items()})
P
