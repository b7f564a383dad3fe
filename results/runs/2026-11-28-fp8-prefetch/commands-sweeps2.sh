# second call: the fp8 sweep on the database of the first (results/h200.db after it was copied back)
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
DB=$OUT/h200.db; cp results/h200.db $DB
timeout 400 mlatune sweep sweeps/fp8.toml --db $DB -q --jobs 16 > $OUT/sweep-fp8.log 2>&1; echo "fp8 rc=$?"; tail -2 $OUT/sweep-fp8.log
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute('select kernel_hash, status, count(*) from measurements group by 1,2').fetchall()); c.close()"; rm -f $DB-wal $DB-shm
