# gluon=3 with the output staged, partials as before: GPU tests, then its three bf16 sweeps (other rows relabelled: same SASS)
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
timeout 150 python -m pytest -q tests/test_gluon.py -k "(against_reference and g3) or seesaw_any or fp16_and_public" -p no:randomly > $OUT/gpu-tests.log 2>&1; rc=$?; echo "tests rc=$rc"; tail -2 $OUT/gpu-tests.log | cut -c1-300
DB=$OUT/h200.db; cp /work/.device/5/h200.db $DB 2>/dev/null || cp .devscripts/h200_a.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='3e0f8ad45eb3' where kernel_hash='c3cbf92f76bf' and config_id not in (select id from configs where gluon=3)\").rowcount; c.commit(); print('relabelled', n)"
for s in flashmla-bench deepseek-v3 offgrid; do timeout 200 mlatune sweep sweeps/$s.toml --db $DB -q --jobs 16 >> $OUT/sweeps.log 2>&1; echo "$s rc=$?"; tail -2 $OUT/sweeps.log; done
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute(\"select status, count(*) from measurements where kernel_hash='3e0f8ad45eb3' group by 1\").fetchall()); c.close()"; rm -f $DB-wal $DB-shm
