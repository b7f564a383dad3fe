# gluon=3 with the output staged: GPU tests, then the flashmla-bench sweep (only gluon=3 rows are new; the rest relabelled: same SASS)
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
timeout 285 python -m pytest -q tests/test_gluon.py -k "against_reference or seesaw_any or persistent or fp16_and_public" -p no:randomly > $OUT/gpu-tests.log 2>&1; rc=$?; echo "tests rc=$rc"; tail -3 $OUT/gpu-tests.log | cut -c1-300
DB=$OUT/h200.db; cp results/h200.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='c3cbf92f76bf' where kernel_hash='f877672461a0' and config_id not in (select id from configs where gluon=3)\").rowcount; c.commit(); print('relabelled', n)"
timeout 200 mlatune sweep sweeps/flashmla-bench.toml --db $DB -q --jobs 16 >> $OUT/sweeps.log 2>&1; echo "sweep rc=$?"; tail -2 $OUT/sweeps.log
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute(\"select status, count(*) from measurements where kernel_hash='c3cbf92f76bf' group by 1\").fetchall()); c.close()"; rm -f $DB-wal $DB-shm
