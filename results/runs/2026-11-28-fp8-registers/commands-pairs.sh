# gluon=6 with V^T's token pairs permuted before the conversion: its GPU tests, then its h_q 16 configs and the fp8 sweep
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
set -f
timeout 150 python -m pytest -q -x $(cat results/runs/2026-11-28-fp8-registers/g6tests.txt) -p no:randomly > $OUT/gpu-tests-pairs.log 2>&1; rc=$?; echo "tests rc=$rc"; tail -2 $OUT/gpu-tests-pairs.log | cut -c1-200
if [ $rc -ne 0 ]; then grep -E "Error|assert|mismatch|err" $OUT/gpu-tests-pairs.log | head -40 | cut -c1-300; exit 1; fi
DB=$OUT/h200.db; cp results/h200.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='0dcf6354d5e7' where kernel_hash='1e22a1e552bf' and config_id in (select id from configs where key not like '%_g6')\").rowcount; c.commit(); print('relabelled', n)"
timeout 150 mlatune sweep results/runs/2026-11-28-fp8-registers/fp8-g6.toml --db $DB -q --jobs 16 > $OUT/sweep-g6-pairs.log 2>&1; echo "g6 rc=$?"; tail -2 $OUT/sweep-g6-pairs.log
timeout 150 mlatune sweep sweeps/fp8.toml --db $DB -q --jobs 16 > $OUT/sweep-fp8-pairs.log 2>&1; echo "fp8 rc=$?"; tail -2 $OUT/sweep-fp8-pairs.log
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute('select kernel_hash, status, count(*) from measurements group by 1,2').fetchall()); c.close()"; rm -f $DB-wal $DB-shm
