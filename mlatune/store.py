"""SQLite results store: runs, workloads, configs and measurements, committed one measurement at a time."""
from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

STATUSES = ("ok", "invalid", "incorrect", "crashed", "timeout")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, sweep TEXT, spec_path TEXT, spec_text TEXT, device TEXT, driver TEXT,
    torch TEXT, triton TEXT, kernel_hash TEXT, runner TEXT, clocks TEXT, copy_gbps REAL, mm_tflops REAL,
    interpreted INTEGER, started_at TEXT, finished_at TEXT, outcome TEXT);
CREATE TABLE IF NOT EXISTS workloads (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE, batch INTEGER, seqlen INTEGER, h_q INTEGER, s_q INTEGER,
    kv_format TEXT, page_size INTEGER, dist TEXT, causal INTEGER);
CREATE TABLE IF NOT EXISTS configs (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE, block_n INTEGER, block_h INTEGER, num_splits INTEGER,
    num_warps INTEGER, num_stages INTEGER);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id), device TEXT, kernel_hash TEXT,
    workload_id INTEGER REFERENCES workloads(id), config_id INTEGER REFERENCES configs(id),
    status TEXT CHECK (status IN ('ok','invalid','incorrect','crashed','timeout')), reason TEXT,
    time_us REAL, p20_us REAL, p80_us REAL, reps INTEGER, fidelity INTEGER, gbps REAL, tflops REAL,
    frac_copy_bw REAL, frac_mm_peak REAL, err_rel REAL, err_lse REAL, interpreted INTEGER, created_at TEXT,
    attempts INTEGER DEFAULT 1,
    UNIQUE (device, kernel_hash, workload_id, config_id));
"""

COLUMNS = [
    "device", "kernel_hash", "torch", "triton", "sweep", "batch", "seqlen", "h_q", "s_q", "kv_format",
    "page_size", "dist", "causal", "block_n", "block_h", "num_splits", "num_warps", "num_stages", "status",
    "reason", "time_us", "p20_us", "p80_us", "gbps", "tflops", "err_rel", "interpreted", "created_at",
]
BASE_KNOBS = ("block_n", "block_h", "num_splits", "num_warps", "num_stages")
# Also returned by results(), after COLUMNS: knobs Config gained later (e.g. trans), then these.
EXTRA_COLUMNS = ["reps", "fidelity", "attempts", "frac_copy_bw", "frac_mm_peak", "err_lse", "workload_key", "config_key", "run_id"]


def _config_defaults() -> dict:
    from .kernels.config import Config

    return Config().to_dict()


def _select(knobs) -> str:
    cols = []
    for c in COLUMNS + [k for k in knobs if k not in BASE_KNOBS] + EXTRA_COLUMNS:
        src = {"torch": "r", "triton": "r", "sweep": "r", "workload_key": "w.key", "config_key": "c.key"}.get(c)
        if src and "." in src:
            cols.append(f"{src} AS {c}")
        elif src:
            cols.append(f"{src}.{c}")
        elif c in _WL:
            cols.append(f"w.{c}")
        elif c in knobs:
            cols.append(f"c.{c}")
        else:
            cols.append(f"m.{c}")
    return ("SELECT " + ", ".join(cols) + " FROM measurements m JOIN workloads w ON w.id = m.workload_id "
            "JOIN configs c ON c.id = m.config_id LEFT JOIN runs r ON r.id = m.run_id")


_WL = ("batch", "seqlen", "h_q", "s_q", "kv_format", "page_size", "dist", "causal")
_FILTER_SQL = {**{k: f"w.{k}" for k in _WL},
               **{k: f"c.{k}" for k in BASE_KNOBS},
               **{k: f"m.{k}" for k in ("device", "kernel_hash", "status", "interpreted", "fidelity", "run_id")},
               "sweep": "r.sweep", "torch": "r.torch", "triton": "r.triton",
               "workload_key": "w.key", "config_key": "c.key"}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """One connection, safe to share between threads; every write commits."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        have = {r[1] for r in self.db.execute("PRAGMA table_info(configs)")}
        for k in _config_defaults():  # knobs added to Config after this db was created
            if k not in have:
                self.db.execute(f"ALTER TABLE configs ADD COLUMN {k} INTEGER")
        self.db.commit()
        self.lock = threading.Lock()

    def close(self):
        self.db.close()

    def _id(self, table: str, key: str, fields: dict) -> int:
        row = self.db.execute(f"SELECT id FROM {table} WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0]
        cols = ["key", *fields]
        cur = self.db.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                              (key, *fields.values()))
        return cur.lastrowid

    def start_run(self, **fields) -> int:
        fields = {**fields, "started_at": now()}
        if isinstance(fields.get("clocks"), (dict, list)):
            fields["clocks"] = json.dumps(fields["clocks"])
        with self.lock:
            cur = self.db.execute(f"INSERT INTO runs ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
                                  tuple(fields.values()))
            self.db.commit()
            return cur.lastrowid

    def finish_run(self, run_id: int, outcome: str, clocks=None) -> None:
        with self.lock:
            if clocks is not None:
                old = self.db.execute("SELECT clocks FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
                seen = {"start": json.loads(old) if old else None, "end": clocks}
                self.db.execute("UPDATE runs SET clocks = ? WHERE id = ?", (json.dumps(seen), run_id))
            self.db.execute("UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?", (now(), outcome, run_id))
            self.db.commit()

    def lookup(self, device: str, kernel_hash: str, wkey: str, ckey: str) -> dict | None:
        """The stored measurement for this pair, or None."""
        with self.lock:
            cur = self.db.execute(
                "SELECT m.status, m.time_us, m.fidelity, m.reason FROM measurements m "
                "JOIN workloads w ON w.id = m.workload_id JOIN configs c ON c.id = m.config_id "
                "WHERE m.device = ? AND m.kernel_hash = ? AND w.key = ? AND c.key = ?", (device, kernel_hash, wkey, ckey))
            row = cur.fetchone()
        return None if row is None else dict(zip(("status", "time_us", "fidelity", "reason"), row))

    def record(self, run_id: int, device: str, kernel_hash: str, workload, wkey: str, cfg, status: str, **m) -> None:
        """Insert or replace one measurement and commit."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        with self.lock:
            wd = workload.to_dict()
            wd["causal"] = int(wd["causal"])
            wid = self._id("workloads", wkey, wd)
            cid = self._id("configs", cfg.key(), cfg.to_dict())
            prev = self.db.execute("SELECT attempts FROM measurements WHERE device = ? AND kernel_hash = ? AND "
                                   "workload_id = ? AND config_id = ?", (device, kernel_hash, wid, cid)).fetchone()
            fields = dict(run_id=run_id, device=device, kernel_hash=kernel_hash, workload_id=wid, config_id=cid,
                          status=status, created_at=now(), attempts=(prev[0] or 1) + 1 if prev else 1, **m)
            self.db.execute(f"INSERT OR REPLACE INTO measurements ({', '.join(fields)}) "
                            f"VALUES ({', '.join('?' * len(fields))})", tuple(fields.values()))
            self.db.commit()

    def forget(self, device: str, kernel_hash: str, wkeys: list[str]) -> int:
        """Delete measurements of these workloads on this device and kernel (for --fresh)."""
        with self.lock:
            n = 0
            for k in wkeys:
                n += self.db.execute(
                    "DELETE FROM measurements WHERE device = ? AND kernel_hash = ? AND workload_id IN "
                    "(SELECT id FROM workloads WHERE key = ?)", (device, kernel_hash, k)).rowcount
            self.db.commit()
            return n

    def best(self, device: str, kernel_hash: str) -> dict[str, list[tuple[float, str]]]:
        """Per workload key, its ok configs as (time_us, config key), fastest first."""
        with self.lock:
            rows = self.db.execute(
                "SELECT w.key, m.time_us, c.key FROM measurements m JOIN workloads w ON w.id = m.workload_id "
                "JOIN configs c ON c.id = m.config_id WHERE m.device = ? AND m.kernel_hash = ? AND m.status = 'ok' "
                "ORDER BY m.time_us", (device, kernel_hash)).fetchall()
        out: dict[str, list] = {}
        for wk, t, ck in rows:
            out.setdefault(wk, []).append((t, ck))
        return out


def results(db_path, **filters):
    """One row per measurement as a pandas DataFrame with flat columns: COLUMNS, then any knobs Config has
    beyond the first five (e.g. trans), then EXTRA_COLUMNS.

    Filters are column=value or column=[values], e.g. results("results/mlatune.db", status="ok", h_q=[64, 128]).
    """
    import pandas as pd

    if not Path(db_path).exists():
        raise FileNotFoundError(f"no results database at {db_path}")
    con = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
    try:
        have = [r[1] for r in con.execute("PRAGMA table_info(configs)") if r[1] not in ("id", "key")]
        defaults = _config_defaults()
        knobs = list(dict.fromkeys(list(defaults) + have))
        known = {**_FILTER_SQL, **{k: f"c.{k}" for k in have}}
        where, args = [], []
        for k, v in filters.items():
            if k not in known:
                raise ValueError(f"unknown filter {k!r}; expected one of {sorted(known)}")
            vals = list(v) if isinstance(v, (list, tuple, set)) else [v]
            vals = [int(x) if isinstance(x, bool) else x for x in vals]
            where.append(f"{known[k]} IN ({', '.join('?' * len(vals))})")
            args += vals
        sql = _select([k for k in knobs if k in have]) + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY m.id"
        df = pd.read_sql_query(sql, con, params=args)
    finally:
        con.close()
    for k in knobs:  # a knob this db predates: its rows ran with the default
        if k not in df.columns:
            df[k] = defaults.get(k)
        elif k in defaults:
            df[k] = df[k].fillna(defaults[k]).astype(int)
    df["causal"] = df["causal"].astype(bool)
    df["interpreted"] = df["interpreted"].fillna(0).astype(bool)
    extra_knobs = [k for k in knobs if k not in BASE_KNOBS]
    return df[COLUMNS + extra_knobs + EXTRA_COLUMNS]


def runs(db_path):
    """The runs table as a DataFrame."""
    import pandas as pd

    con = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
    try:
        return pd.read_sql_query("SELECT * FROM runs ORDER BY id", con)
    finally:
        con.close()
