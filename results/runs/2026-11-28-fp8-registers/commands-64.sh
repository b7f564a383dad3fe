# gluon=6 at 64 rows (two warpgroups): its GPU tests, then (other rows relabelled: SASS unchanged) its configs at h_q 64 and 128
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
set -f
timeout 90 python -m pytest -q -x $(cat results/runs/2026-11-28-fp8-registers/g64tests.txt) -p no:randomly > $OUT/gpu-tests-64.log 2>&1; rc=$?; echo "tests rc=$rc"; tail -2 $OUT/gpu-tests-64.log | cut -c1-200
if [ $rc -ne 0 ]; then grep -E "Error|assert|mismatch|err" $OUT/gpu-tests-64.log | head -30 | cut -c1-300; exit 1; fi
DB=$OUT/h200.db; cp results/h200.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='b0d97cfb8ee2' where kernel_hash='0dcf6354d5e7'\").rowcount; c.commit(); print('relabelled', n)"
timeout 90 mlatune sweep results/runs/2026-11-28-fp8-registers/fp8-g6-64.toml --db $DB -q --jobs 16 > $OUT/sweep-g6-64.log 2>&1; echo "g6-64 rc=$?"; tail -2 $OUT/sweep-g6-64.log
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute('select kernel_hash, status, count(*) from measurements group by 1,2').fetchall()); c.close()"; rm -f $DB-wal $DB-shm
