# gluon=6 with the prefetch (16 rows) and the piece order: its GPU tests, then the order A/B (ab_order.py)
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
R=results/runs/2026-11-28-fp8-prefetch
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
timeout 330 python -m pytest -q -x tests/test_gluon.py -p no:randomly \
  -k "fp8_kernel_against or fp8r_any or fp8_kernel_one or fp8_kernel_fp16 or fp8_dequant or launch_passes" > $OUT/gpu-tests.log 2>&1
rc=$?; echo "tests rc=$rc"; tail -2 $OUT/gpu-tests.log | cut -c1-200
if [ $rc -ne 0 ]; then grep -E "Error|assert|mismatch|err" $OUT/gpu-tests.log | head -30 | cut -c1-300; exit 1; fi
timeout 200 python $R/ab_order.py > $OUT/ab_order.jsonl 2> $OUT/ab_order.err; echo "ab rc=$?"; tail -2 $OUT/ab_order.err
python - <<'P'
import json, os, collections
rows = [json.loads(l) for l in open(os.environ["OUT"] + "/ab_order.jsonl")]
print("rows", len(rows), "not ok", sum(not r["ok"] for r in rows))
best = collections.defaultdict(dict)
for r in rows:
    k = (r["batch"], r["seqlen"], r["s_q"]); v = "ordered" if r["ordered"] else "batch order"
    best[k][v] = min(best[k].get(v, 1e9), r["us"])
for k, d in best.items(): print(k, d, round(d["ordered"] / d["batch order"], 3))
P
