# The kernel with per-warp row sums at 32 rows too and the row maxima through shared memory (one barrier), hash
# 671af0033f0c: its GPU tests, then the rows of every other kernel and of gluon=6 at 64 rows (identical SASS, checked
# offline) relabelled from f1709d7af9ed, and gluon=6 at h_q 16 measured again (exhaustive).
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
R=results/runs/2026-11-28-fp8-prefetch
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
timeout 200 python -m pytest -q -x tests/test_gluon.py -p no:randomly \
  -k "fp8_kernel_against or fp8r_any or fp8_kernel_one or fp8_kernel_fp16 or fp8_dequant or launch_passes" > $OUT/gpu-tests-final.log 2>&1
rc=$?; echo "tests rc=$rc"; tail -2 $OUT/gpu-tests-final.log | cut -c1-200
if [ $rc -ne 0 ]; then grep -E "Error|assert|mismatch|err" $OUT/gpu-tests-final.log | head -30 | cut -c1-300; exit 1; fi
DB=$OUT/h200.db; cp results/h200.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='671af0033f0c' where kernel_hash='f1709d7af9ed' and config_id in (select id from configs where gluon != 6 or block_h = 64)\").rowcount; c.commit(); print('relabelled', n)"
timeout 200 mlatune sweep $R/fp8-g6.toml --db $DB -q --jobs 16 > $OUT/sweep-g6-final.log 2>&1; echo "g6 rc=$?"; tail -2 $OUT/sweep-g6-final.log
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute('select kernel_hash, status, count(*) from measurements group by 1,2').fetchall()); c.close()"; rm -f $DB-wal $DB-shm
