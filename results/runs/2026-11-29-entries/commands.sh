# 2026-11-29, one H200. Five calls; each began with: python -m pip install --no-deps --no-build-isolation -e .
# call 1 (28acb3b + overlap2.diff): diag.py time and three ncu summaries
timeout 260 python results/runs/2026-11-29-entries/diag.py time > $OUT/diag.log 2>&1; echo "diag rc=$?"; grep -v Warn $OUT/diag.log | cut -c1-230
S="--section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section LaunchStats --section Occupancy"
for v in g3 g5old g5new; do
  timeout 70 ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel $S python results/runs/2026-11-29-entries/diag.py ncu $v 128 16384 128 1 fixed > $OUT/ncu_$v.txt 2>&1; echo "ncu $v rc=$?"
done
grep -hE "split_kernel|Duration|DRAM Throughput|L2 Hit|L1/TEX Hit|Memory Throughput|Stall No Inst|Warp Cycles Per Issued|Issued Warp|No Eligible|Registers Per" $OUT/ncu_*.txt | cut -c1-150

# call 2 (same tree): stall reasons and per-instruction samples, batch 66, 16k, h_q 128
for v in g3 g5old; do
  timeout 90 ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\\.ratio,smsp__inst_executed.sum,sm__cycles_elapsed.avg,sm__cycles_active.avg python results/runs/2026-11-29-entries/diag.py ncu $v 66 16384 128 1 fixed > $OUT/stalls_$v.txt 2>&1; echo "stalls $v rc=$?"
  timeout 150 ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel --section SourceCounters --section WarpStateStats --page source --print-source sass --csv python results/runs/2026-11-29-entries/diag.py ncu $v 66 16384 128 1 fixed > $OUT/source_$v.csv 2> $OUT/source_$v.err; echo "source $v rc=$?"; gzip $OUT/source_$v.csv
done

# call 3 (entries read early in both kernels): A/B, then GPU tests
timeout 300 python results/runs/2026-11-29-entries/ab_entry.py > $OUT/ab_entry.log 2>&1; echo "ab rc=$?"
python - <<'PY'
import json, collections, os
rs = [json.loads(l) for l in open(os.environ["OUT"] + "/ab_entry.log") if l.startswith("{")]
g = collections.defaultdict(dict)
for r in rs: g[(r["batch"], r["L"], r["h"], r["s_q"], r["dist"], r["kernel"])][r["variant"]] = (r["us"], r.get("max_abs_diff_vs_old"), r.get("nan"))
for k, v in g.items(): print(k, {n: x[0] for n, x in v.items()}, "diff", max((x[1] or 0) for x in v.values()), "nan", any(x[2] for x in v.values()))
PY
timeout 270 python -m pytest -q -x tests/test_gluon.py -k "persistent or (against_reference and (g3 or g5)) or seesaw_any or fp16_and_public" -p no:randomly > $OUT/gpu-tests.log 2>&1; echo "tests rc=$?"; tail -3 $OUT/gpu-tests.log | cut -c1-300

# call 4 (kept form: early in gluon=5 only; hash 910fc34402b0): relabel, sweeps, FlashMLA comparisons, tests
H=$(python -c "from mlatune.kernels.config import source_hash; print(source_hash())"); echo "hash $H"
DB=$OUT/h200.db; cp results/h200.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='$H' where kernel_hash='3e0f8ad45eb3' and config_id not in (select id from configs where gluon=5)\").rowcount; c.commit(); print('relabelled', n)"
for s in flashmla-bench deepseek-v3 offgrid; do timeout 150 mlatune sweep sweeps/$s.toml --db $DB -q --jobs 16 >> $OUT/sweeps.log 2>&1; echo "$s rc=$?"; tail -1 $OUT/sweeps.log | cut -c1-200; done
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute(\"select status, count(*) from measurements where kernel_hash='$H' group by 1\").fetchall()); c.close()"; rm -f $DB-wal $DB-shm
mkdir -p $OUT/fb
timeout 150 python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --out $OUT > $OUT/smallbatch.log 2>&1; echo "small rc=$?"; tail -1 $OUT/smallbatch.log
timeout 150 python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --sweep flashmla-bench --max-batch 128 --min-seqlen 0 --out $OUT/fb > $OUT/bench.log 2>&1; echo "bench rc=$?"; tail -1 $OUT/bench.log
timeout 150 python -m pytest -q -x tests/test_gluon.py -k "persistent or (against_reference and g5)" -p no:randomly > $OUT/gpu-tests.log 2>&1; echo "tests rc=$?"; tail -1 $OUT/gpu-tests.log | cut -c1-200

# call 5: fp8 sweep with 3, 6 and 12 splits for gluon=6; FlashMLA's grid again
H=$(python -c "from mlatune.kernels.config import source_hash; print(source_hash())"); echo "hash $H"
DB=$OUT/h200.db; cp results/h200.db $DB
timeout 330 mlatune sweep sweeps/fp8.toml --db $DB -q --jobs 16 > $OUT/sweep-fp8.log 2>&1; echo "fp8 rc=$?"; tail -2 $OUT/sweep-fp8.log | cut -c1-200
mkdir -p $OUT/fb
timeout 150 python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --sweep flashmla-bench --max-batch 128 --min-seqlen 0 --out $OUT/fb > $OUT/bench.log 2>&1; echo "bench rc=$?"; tail -1 $OUT/bench.log
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute(\"select status, count(*) from measurements where kernel_hash='$H' group by 1\").fetchall()); c.close()"; rm -f $DB-wal $DB-shm

# call 6 (per-chunk tile barriers in gluon=5, chunks.diff on top of 46647ca; hash 559442284907): A/B, then (it passed the
# script's bar) the gluon=5 re-sweep and its GPU tests. The sweep said otherwise (chunks_sweep.csv); not kept.
H=$(python -c "from mlatune.kernels.config import source_hash; print(source_hash())"); echo "hash $H"
AB=chunks OLD=.devscripts/old2 timeout 120 python results/runs/2026-11-29-entries/ab_entry.py > $OUT/ab_chunks.log 2>&1; echo "ab rc=$?"
python - > $OUT/ab_summary.txt <<'PY'
import json, collections, math, os
rs = [json.loads(l) for l in open(os.environ["OUT"] + "/ab_chunks.log") if l.startswith("{")]
g = collections.defaultdict(dict)
for r in rs: g[(r["batch"], r["L"], r["h"], r["s_q"], r["dist"])][r["variant"]] = r
ratios, ok = [], len(g) == 6
for k, v in g.items():
    if len(v) < 4: ok = False; continue
    new, old = (v["new"]["us"] + v["new2"]["us"]) / 2, (v["old"]["us"] + v["old2"]["us"]) / 2
    bad = any(v[n].get("max_abs_diff_vs_old", 0) != 0 or v[n].get("nan") for n in ("new", "new2", "old2"))
    ok = ok and not bad; ratios.append(new / old)
    print(k, "old", old, "new", new, "ratio", round(new / old, 4), "diff/nan" if bad else "")
gm = math.exp(sum(map(math.log, ratios)) / max(len(ratios), 1))
print("geomean", round(gm, 4), "KEEP" if ok and gm < 0.99 else "DROP")
PY
cat $OUT/ab_summary.txt
if grep -q KEEP $OUT/ab_summary.txt; then
  DB=$OUT/h200.db; cp results/h200.db $DB
  python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='$H' where kernel_hash='910fc34402b0' and config_id not in (select id from configs where gluon=5)\").rowcount; c.commit(); print('relabelled', n)"
  for s in flashmla-bench:50 deepseek-v3:60 offgrid:20; do timeout ${s#*:} mlatune sweep sweeps/${s%:*}.toml --db $DB -q --jobs 16 >> $OUT/sweeps.log 2>&1; echo "${s%:*} rc=$?"; tail -1 $OUT/sweeps.log | cut -c1-120; done
  python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute(\"select status, count(*) from measurements where kernel_hash='$H' group by 1\").fetchall()); c.close()"; rm -f $DB-wal $DB-shm
fi
timeout 60 python -m pytest -q -x tests/test_gluon.py -k "persistent" -p no:randomly > $OUT/gpu-tests.log 2>&1; echo "tests rc=$?"; tail -1 $OUT/gpu-tests.log | cut -c1-200
