# fp8 Gluon kernel (gluon=4): GPU tests, then its configs in the fp8 sweep (exhaustive over gluon=4 only)
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
timeout 200 python -m pytest -v -x tests/test_gluon.py tests/test_kernel.py -k "fp8 and (against_reference or one_split or fp16_q or dequant or 64bit)" -p no:randomly > $OUT/gpu-tests.log 2>&1; rc=$?; echo "tests rc=$rc"; tail -5 $OUT/gpu-tests.log | cut -c1-200
if [ $rc -ne 0 ]; then grep -E "Error|assert|mismatch|err" $OUT/gpu-tests.log | head -40 | cut -c1-300; exit 1; fi
DB=$OUT/h200.db; cp results/h200.db $DB
timeout 240 mlatune sweep .devscripts/fp8-g4.toml --db $DB -q --jobs 16 > $OUT/sweep.log 2>&1; echo "sweep rc=$?"; tail -3 $OUT/sweep.log
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute('select kernel_hash, status, count(*) from measurements group by 1,2').fetchall()); c.close()"; rm -f $DB-wal $DB-shm
