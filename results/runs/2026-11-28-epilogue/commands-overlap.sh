# gluon=5 with the next segment's tiles requested before the epilogue: GPU tests, A/B, then its sweeps (other rows relabelled)
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
timeout 110 python -m pytest -q -x tests/test_gluon.py -k "persistent or (against_reference and g5) or fp16_and_public" -p no:randomly > $OUT/gpu-tests-ps.log 2>&1; rc=$?; echo "tests rc=$rc"; tail -2 $OUT/gpu-tests-ps.log | cut -c1-300
if [ $rc -ne 0 ]; then grep -E "Error|assert|mismatch|err" $OUT/gpu-tests-ps.log | head -20 | cut -c1-300; exit 1; fi
timeout 80 python .devscripts/ab_ps.py 2>&1 | grep -v Warning | cut -c1-230 | tail -40
DB=$OUT/h200.db; cp results/h200.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='68bccf6fe402' where kernel_hash='3e0f8ad45eb3' and config_id not in (select id from configs where gluon=5)\").rowcount; c.commit(); print('relabelled', n)"
for s in flashmla-bench deepseek-v3 offgrid; do timeout 45 mlatune sweep sweeps/$s.toml --db $DB -q --jobs 16 >> $OUT/sweeps-ps.log 2>&1; echo "$s rc=$?"; tail -1 $OUT/sweeps-ps.log; done
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute(\"select status, count(*) from measurements where kernel_hash='68bccf6fe402' group by 1\").fetchall()); c.close()"; rm -f $DB-wal $DB-shm
# the rest of callC (its test run was cut by its timeout after 16 of 18 passed): the two fp16 tests, A/B, sweeps
export PYTHONUNBUFFERED=1
timeout 35 python -m pytest -q -x tests/test_gluon.py -k "fp16_and_public and (3 or 5)" -p no:randomly > $OUT/gpu-tests-ps2.log 2>&1; rc=$?; echo "tests rc=$rc"; tail -1 $OUT/gpu-tests-ps2.log | cut -c1-200
if [ $rc -ne 0 ]; then exit 1; fi
timeout 55 python .devscripts/ab_ps.py > $OUT/ab_ps.log 2>&1; echo "ab rc=$?"; grep -v Warning $OUT/ab_ps.log | cut -c1-200 | tail -30
DB=$OUT/h200.db; cp results/h200.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='68bccf6fe402' where kernel_hash='3e0f8ad45eb3' and config_id not in (select id from configs where gluon=5)\").rowcount; c.commit(); print('relabelled', n)"
timeout 35 mlatune sweep sweeps/flashmla-bench.toml --db $DB -q --jobs 16 >> $OUT/sweeps-ps.log 2>&1; echo "fb rc=$?"
timeout 45 mlatune sweep sweeps/deepseek-v3.toml --db $DB -q --jobs 16 >> $OUT/sweeps-ps.log 2>&1; echo "ds rc=$?"
timeout 20 mlatune sweep sweeps/offgrid.toml --db $DB -q --jobs 16 >> $OUT/sweeps-ps.log 2>&1; echo "og rc=$?"
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute(\"select status, count(*) from measurements where kernel_hash='68bccf6fe402' group by 1\").fetchall()); c.close()"; rm -f $DB-wal $DB-shm
