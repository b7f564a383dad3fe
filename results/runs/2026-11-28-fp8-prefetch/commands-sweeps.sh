# The re-sweeps under f1709d7af9ed: rows of the other kernels relabelled (their code and launch arguments did not
# change, runs/README.md), then gluon=6 at h_q 16 (exhaustive) and 64/128 (exhaustive), in the first call;
# the fp8 sweep (coordinate search; it resumes and skips what is measured) in the second.
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
R=results/runs/2026-11-28-fp8-prefetch
python -c "from mlatune.kernels.config import source_hash; print('hash', source_hash())"
DB=$OUT/h200.db; cp results/h200.db $DB
python -c "import sqlite3; c=sqlite3.connect('$DB'); n=c.execute(\"update measurements set kernel_hash='f1709d7af9ed' where kernel_hash='21a78dd3e498' and config_id in (select id from configs where gluon != 6)\").rowcount; c.commit(); print('relabelled', n)"
timeout 250 mlatune sweep $R/fp8-g6.toml --db $DB -q --jobs 16 > $OUT/sweep-g6.log 2>&1; echo "g6 rc=$?"; tail -2 $OUT/sweep-g6.log
timeout 250 mlatune sweep $R/fp8-g6-64.toml --db $DB -q --jobs 16 > $OUT/sweep-g6-64.log 2>&1; echo "g6-64 rc=$?"; tail -2 $OUT/sweep-g6-64.log
python -c "import sqlite3; c=sqlite3.connect('$DB'); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); print(c.execute('select kernel_hash, status, count(*) from measurements group by 1,2').fetchall()); c.close()"; rm -f $DB-wal $DB-shm
