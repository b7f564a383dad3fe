# persistent seesaw (gluon=5): GPU tests, then its sweeps (other rows relabelled: their SASS is unchanged), then FlashMLA on the same inputs
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
timeout 240 python -m pytest -v -x tests/test_gluon.py -k "(against_reference and g5) or persistent or public_entry" -p no:randomly > $OUT/gpu-tests.log 2>&1; rc=$?; echo "tests rc=$rc"; tail -6 $OUT/gpu-tests.log | cut -c1-200
if [ $rc -ne 0 ]; then grep -E "Error|assert|mismatch|err" $OUT/gpu-tests.log | head -30; exit 1; fi
DB=$OUT/h200.db; cp results/h200.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='3111e04bd349' where kernel_hash='0b98b225af9a'\").rowcount; c.commit(); print('relabelled', n)"
for s in flashmla-bench deepseek-v3 offgrid; do timeout 150 mlatune sweep sweeps/$s.toml --db $DB -q --jobs 16 >> $OUT/sweeps.log 2>&1; echo "$s rc=$?"; tail -2 $OUT/sweeps.log; done
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute('select kernel_hash, status, count(*) from measurements group by 1,2').fetchall())"
timeout 150 python -m mlatune.smallbatch --db $DB --lib .devscripts/flashmla_sm90.so --out $OUT > $OUT/smallbatch.log 2>&1; echo "small rc=$?"; tail -2 $OUT/smallbatch.log
mkdir -p $OUT/fb; timeout 170 python -m mlatune.smallbatch --db $DB --sweep flashmla-bench --max-batch 128 --min-seqlen 0 --lib .devscripts/flashmla_sm90.so --out $OUT/fb > $OUT/bench.log 2>&1; echo "bench rc=$?"; tail -2 $OUT/bench.log
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()"; rm -f $DB-wal $DB-shm
