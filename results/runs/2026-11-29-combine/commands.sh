# 2026-11-29 (second session), one H200. Each call began with: python -m pip install --no-deps --no-build-isolation -e .
# call 1 (60aa972): the combine's share of a gluon=5/7 call; the GPU tests that include gluon=7
timeout 150 python results/runs/2026-11-29-combine/combine_probe.py > $OUT/combine_probe.log 2>&1
timeout 300 python -m pytest -q -x tests/test_gluon.py -k "persistent or (against_reference and (g5 or g7)) or fp16_and_public" -p no:randomly > $OUT/gpu-tests-g7.log 2>&1

# call 2 (60aa972 + handoff.diff): A/B of named-barrier hand-offs; it missed its bar, so no sweep followed
timeout 170 python results/runs/2026-11-29-combine/ab_ss.py > $OUT/ab_handoff.log 2>&1   # AB=handoff (the default), OLD=.devscripts/old3

# call 3 (combine as a programmatic dependent launch; hash 33fa0d429613): A/B, GPU tests, relabel, gluon=5/7 re-sweep
timeout 130 python results/runs/2026-11-29-combine/ab_pdl.py > $OUT/ab_pdl.log 2>&1
timeout 190 python -m pytest -q -x tests/test_gluon.py -k "persistent or (against_reference and (g5 or g7)) or fp16_and_public" -p no:randomly > $OUT/gpu-tests-pdl.log 2>&1
DB=$OUT/h200.db; cp results/h200.db $DB; H=33fa0d429613
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute(\"update measurements set kernel_hash='$H' where kernel_hash='97cfa03523cd' and config_id not in (select id from configs where gluon in (5,7))\"); c.commit()"
for s in flashmla-bench deepseek-v3 offgrid; do mlatune sweep sweeps/$s.toml --db $DB -q --jobs 16 >> $OUT/sweeps.log 2>&1; done

# call 4 (same tree): FlashMLA on the same inputs (smallbatch_pdl.csv, flashmla_bench_pdl.csv)
python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --out $OUT > $OUT/smallbatch.log 2>&1
python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --sweep flashmla-bench --max-batch 128 --min-seqlen 0 --out $OUT/fb > $OUT/bench.log 2>&1

# call 5: other per-segment costs in the plan
timeout 200 python results/runs/2026-11-29-combine/ab_cost.py

# calls 6-7: ncu, FlashMLA and gluon=3 on the same work (batch 66, 16k, h_q 128, one program per sequence and row group)
S="--section SpeedOfLight --section WarpStateStats --section SchedulerStats --section InstructionStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy"
P=results/runs/2026-11-29-combine/prof.py
for v in fm:splitkv_mla_kernel g3:split_kernel; do
  ncu --launch-skip 2 --launch-count 1 -k regex:${v#*:} $S python $P ${v%:*} 66 16384 128 1 fixed > $OUT/ncu_${v%:*}.txt 2>&1
  ncu --launch-skip 2 --launch-count 1 -k regex:${v#*:} --section SourceCounters --section WarpStateStats --page source --print-source sass --csv python $P ${v%:*} 66 16384 128 1 fixed > $OUT/source_${v%:*}.csv
done

# call 8 (the softmax change; hash fab69b3fbc89): its A/B, cut by its 110 s timeout after 10 of 16 cases (cold machine)
AB=softmax OLD=.devscripts/old5 timeout 110 python results/runs/2026-11-29-combine/ab_ss.py > $OUT/ab_softmax.log 2>&1

# call 9 (same tree): relabel, gluon=3/5/7 re-sweep, FlashMLA on the same inputs, GPU tests
DB=$OUT/h200.db; cp results/h200.db $DB; H=fab69b3fbc89
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute(\"update measurements set kernel_hash='$H' where kernel_hash='33fa0d429613' and config_id not in (select id from configs where gluon in (3,5,7))\"); c.commit()"
for s in flashmla-bench deepseek-v3 offgrid; do mlatune sweep sweeps/$s.toml --db $DB -q --jobs 16 >> $OUT/sweeps.log 2>&1; done
python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --out $OUT > $OUT/small.log 2>&1
python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --sweep flashmla-bench --max-batch 128 --min-seqlen 0 --out $OUT/fb >> $OUT/small.log 2>&1
python -m pytest -q tests/test_gluon.py -k "persistent or (against_reference and (g3 or g7)) or seesaw_any or fp16_and_public" -p no:randomly > $OUT/gpu-tests-softmax.log 2>&1
