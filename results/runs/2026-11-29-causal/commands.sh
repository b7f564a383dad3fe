# 2026-11-29 (third session), one H200, seven calls. Each call began with: python -m pip install --no-deps --no-build-isolation -e .
# ab_ss.py is ../2026-11-29-combine/ab_ss.py; its OLD copies: git show REV:kernels/mla_gluon_ss.py > DIR/ss_old.py, and
# git show REV:kernels/mla_gluon_ps.py | sed 's/^from \.mla_gluon_ss import/from ss_old import/' > DIR/ps_old.py

# call 1 (1745cd1 + the s_q 2 mask, c262f59): GPU tests of the causal paths, then the A/B (OLD = 1745cd1's kernels)
timeout 260 python -m pytest -q tests/test_gluon.py -k "causal_beyond or persistent or (against_reference and (g3 or g5 or g7) and (40-2 or 128-2))" -p no:randomly > $OUT/gpu-tests-causal.log 2>&1
AB=causal OLD=.devscripts/old6 timeout 250 python results/runs/2026-11-29-combine/ab_ss.py > $OUT/ab_causal.log 2>&1

# call 2 (same tree, hash 8aae7d1177b5): relabel all but the s_q 2 causal rows of gluon 3/5/7, sweep (807 rows), FlashMLA
DB=$OUT/h200.db; cp results/h200.db $DB; H=8aae7d1177b5
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute(\"update measurements set kernel_hash='$H' where kernel_hash='fab69b3fbc89' and not (config_id in (select id from configs where gluon in (3,5,7)) and workload_id in (select id from workloads where s_q=2 and causal=1))\"); c.commit()"
for s in flashmla-bench deepseek-v3 offgrid; do mlatune sweep sweeps/$s.toml --db $DB -q --jobs 16 >> $OUT/sweeps.log 2>&1; done
python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --out $OUT > $OUT/small.log 2>&1   # small batches 1.038, 31 of 60
# (its FlashMLA-grid run failed: --out's folder did not exist; smallbatch now makes it)

# call 3 (same tree): FlashMLA's grid on the same inputs (0.946); ncu of gluon=3 (sections and per-instruction counters)
python -m mlatune.smallbatch --db /tmp/h.db --lib .devscripts/flashmla_sm90.so --sweep flashmla-bench --max-batch 128 --min-seqlen 0 --out $OUT/fb
ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel --section SourceCounters --section WarpStateStats --page source --print-source sass --csv python results/runs/2026-11-29-combine/prof.py g3 66 16384 128 1 fixed > $OUT/source_g3.csv # -> source_g3_before_order.csv.gz (gzip)

# call 4 (7497f4d, the P1 hand-off after PV on P0): A/B (OLD = c262f59's kernels), then the GPU tests
AB=order OLD=.devscripts/old7 timeout 300 python results/runs/2026-11-29-combine/ab_ss.py > $OUT/ab_order.log 2>&1
timeout 270 python -m pytest -q tests/test_gluon.py -k "persistent or (against_reference and (g3 or g5 or g7)) or seesaw_any or causal_beyond or fp16_and_public" -p no:randomly > $OUT/gpu-tests-order.log 2>&1

# call 5 (same tree, hash fccb4184c8c5): relabel all but gluon 3/5/7 from 8aae7d1177b5, sweep (1,728 rows), FlashMLA
DB=$OUT/h200.db; cp results/h200.db $DB; H=fccb4184c8c5
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute(\"update measurements set kernel_hash='$H' where kernel_hash='8aae7d1177b5' and config_id not in (select id from configs where gluon in (3,5,7))\"); c.commit()"
for s in flashmla-bench deepseek-v3 offgrid; do mlatune sweep sweeps/$s.toml --db $DB -q --jobs 16 >> $OUT/sweeps.log 2>&1; done
python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --out $OUT > $OUT/small.log 2>&1
python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --sweep flashmla-bench --max-batch 128 --min-seqlen 0 --out $OUT/fb >> $OUT/small.log 2>&1

# call 6 (fence.diff on 7497f4d): ncu summary of the kept kernel (old8 = 7497f4d's ss module swapped in), A/B of the fence
S="--section SpeedOfLight --section WarpStateStats --section SchedulerStats --section InstructionStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy"
mkdir -p /tmp/old && cp .devscripts/old8/ss_old.py /tmp/old/
PYTHONPATH=/tmp/old ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel $S python -c "
import sys, importlib, ss_old; md = importlib.import_module('mlatune.kernels.mla_decode'); md.split_kernel_ss = ss_old.split_kernel_ss
sys.argv = ['prof.py', 'g3', '66', '16384', '128', '1', 'fixed']; exec(open('results/runs/2026-11-29-combine/prof.py').read())" > $OUT/ncu_g3.txt 2>&1
AB=fence OLD=.devscripts/old8 timeout 280 python results/runs/2026-11-29-combine/ab_ss.py > $OUT/ab_fence.log 2>&1

# here: relabel fccb4184c8c5 -> 4e8415254620 (docstring), then
mlatune export --db results/h200.db --out results/configs --sweep deepseek-v3 --sweep flashmla-bench --sweep defaults --sweep fp8
python -m mlatune.anchors --db results/h200.db --csv results/runs/2026-11-29-causal/versus_flashmla.csv > results/runs/2026-11-29-causal/anchors.txt
python -m mlatune.evaluate --db results/h200.db --grid flashmla-bench deepseek-v3 defaults fp8 --csv results/runs/2026-11-29-causal/eval > results/runs/2026-11-29-causal/eval.txt
mlatune report --db results/h200.db --out results/plots --sweep deepseek-v3 --sweep flashmla-bench --sweep defaults --sweep fp8

# call 7 (v0l_after_m1.diff on e8819b7): warpgroup 0 requests tile 2j+2's left half after the other's maximum (not kept, 1.0045)
AB=v0l OLD=.devscripts/old9 timeout 230 python results/runs/2026-11-29-combine/ab_ss.py > $OUT/ab_v0l.log 2>&1
