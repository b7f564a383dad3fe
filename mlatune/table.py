"""Tuned config tables: choose the best verified config per shape, write, load and validate the JSON, look up buckets."""
from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import os
import re
from bisect import bisect_left
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from .kernels.config import Config, check_config, source_hash
from .kernels.mla_decode import KV_FORMATS, default_config

if TYPE_CHECKING:  # pandas is for exporting only; the runtime loads tables without it
    import pandas as pd

SCHEMA_VERSION = 1
KERNEL = "mla_decode"
KNOBS = tuple(f.name for f in fields(Config))
FAMILY = ("device", "kernel_hash", "kv_format", "page_size", "h_q", "s_q")
WORKLOAD = ("batch", "seqlen", "dist", "causal")
BUCKET = ("batch", "seqlen")
# A config unmeasured at a neighbouring shape counts as this much slower than that shape's best.
MISSING_NEIGHBOUR = 2.0
INSTALLED = "installed"  # kernel_hash sentinel: compare against the installed kernels' source_hash()

TOP_KEYS = {
    "schema_version": int, "kernel": str, "kernel_hash": str, "device": str, "device_name": str,
    "torch": str, "triton": str, "sweep": str, "sweep_date": str, "interpreted": bool,
    "kv_format": str, "page_size": int, "h_q": int, "s_q": int, "entries": list,
}
ENTRY_KEYS = {"batch": int, "seqlen": int, "config": dict, "time_us": float}
OPTIONAL_ENTRY_KEYS = ("p20_us", "p80_us", "gbps", "default_time_us", "speedup")


def normalize_device(name: str) -> str:
    """'NVIDIA H200' -> 'NVIDIA_H200': runs of anything but letters and digits become one underscore."""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(name)).strip("_") or "unknown"


def table_name(kv_format: str, page_size: int, h_q: int, s_q: int) -> str:
    return f"{KERNEL}_{kv_format}_p{page_size}_h{h_q}_s{s_q}.json"


def table_path(root, device: str, kv_format: str, page_size: int, h_q: int, s_q: int) -> Path:
    return Path(root) / normalize_device(device) / table_name(kv_format, page_size, h_q, s_q)


# ---------------------------------------------------------------- choosing


def _geomean(xs) -> float:
    xs = list(xs)
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def _cfg_key(cfg: Config) -> str:
    return "_".join(f"{n}={getattr(cfg, n)}" for n in KNOBS)


def _cfg_keys(df: pd.DataFrame) -> pd.Series:
    """_cfg_key for each row, vectorized (knob columns already filled in)."""
    key = None
    for n in KNOBS:
        part = n + "=" + df[n].astype(int).astype(str)
        key = part if key is None else key + "_" + part
    return key


def filter_rows(df: pd.DataFrame, sweep: str | list[str] | tuple | None = None, kernel_hash: str | None = INSTALLED,
                allow_interpreted: bool = False) -> pd.DataFrame:
    """Rows eligible for a table: from `sweep` (if given), of `kernel_hash` (None: any), and not
    interpreter timings unless allow_interpreted. All statuses are kept: failures ban configs."""
    if sweep:
        df = df[df["sweep"].isin([sweep] if isinstance(sweep, str) else list(sweep))]
    if kernel_hash == INSTALLED:
        kernel_hash = source_hash()
    if kernel_hash is not None:
        df = df[df["kernel_hash"] == kernel_hash]
    if not allow_interpreted:
        df = df[~df["interpreted"].astype(bool)]
    return df


def _per_bucket(g: pd.DataFrame) -> pd.DataFrame:
    """One row per (bucket, config): times are geomeans over the bucket's workloads (dist, causal),
    `score`/`lo`/`hi` are median/p20/p80 relative to each workload's best, so they compare across configs."""
    ok = g[g["status"] == "ok"].astype({c: float for c in ("time_us", "p20_us", "p80_us", "gbps")})
    ok = ok[ok["time_us"] > 0]
    m = ok.groupby([*WORKLOAD, "cfg"], sort=True)[["time_us", "p20_us", "p80_us", "gbps"]].median().reset_index()
    best = m.groupby(list(WORKLOAD))["time_us"].transform("min")
    m["score"], m["lo"], m["hi"] = m["time_us"] / best, m["p20_us"].fillna(m["time_us"]) / best, m["p80_us"].fillna(m["time_us"]) / best
    geo = ("time_us", "p20_us", "p80_us", "score", "lo", "hi")
    logs = m.assign(**{c: m[c].astype(float).clip(lower=1e-9).map(math.log) for c in geo})
    agg = logs.groupby([*BUCKET, "cfg"], sort=True).agg(
        **{c: (c, "mean") for c in geo}, workloads=("score", "size"), gbps=("gbps", "mean"))
    for c in geo:
        agg[c] = agg[c].map(math.exp)
    agg = agg.reset_index()
    # a config must cover every workload the bucket's best-covered config covers
    agg = agg[agg["workloads"] == agg.groupby(list(BUCKET))["workloads"].transform("max")]
    return agg


def _choose(cands: pd.DataFrame, neighbours: list[pd.DataFrame]) -> pd.Series:
    """The bucket's pick: among configs whose p20 is within the best's p80 (a win smaller than the noise),
    the one closest to best at the neighbouring buckets; then the fastest; then the config key."""
    best = cands.loc[cands["score"].idxmin()]
    tied = cands[cands["lo"] <= best["hi"]].copy()
    if len(tied) == 1 or not neighbours:
        return best
    def near(cfg):
        rel = []
        for nb in neighbours:
            hit = nb.loc[nb["cfg"] == cfg, "score"]
            rel.append(min(float(hit.iloc[0]), MISSING_NEIGHBOUR) if len(hit) else MISSING_NEIGHBOUR)
        return _geomean(rel)
    tied["near"] = tied["cfg"].map(near)
    return tied.sort_values(["near", "score", "cfg"], kind="stable").iloc[0]


def _date(v) -> str:
    if isinstance(v, numbers.Real) and not isinstance(v, bool):  # epoch seconds
        return dt.datetime.fromtimestamp(v, dt.timezone.utc).isoformat(timespec="seconds")
    if isinstance(v, dt.datetime):  # pandas Timestamps are datetimes
        return v.isoformat()
    return str(v)


def _joined(s: pd.Series) -> str:
    return ", ".join(sorted({str(v) for v in s.dropna()}))


def _round(v, nd):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), nd)


def _family_table(g: pd.DataFrame) -> dict | None:
    first = g.iloc[0]
    h_q, s_q = int(first["h_q"]), int(first["s_q"])
    # a config that ever computed a wrong answer in this family is never selected
    banned = set(g.loc[g["status"] == "incorrect", "cfg"])
    # failures (crashed, timeout, invalid) exclude a config at that bucket only
    failed = {(int(r.batch), int(r.seqlen), r.cfg) for r in g[g["status"] != "ok"].itertuples()}
    firsts = g.drop_duplicates("cfg")
    configs = {k: Config(**{n: int(firsts[n].iloc[i]) for n in KNOBS}) for i, k in enumerate(firsts["cfg"])}
    agg = _per_bucket(g)
    default_key = _cfg_key(default_config(h_q, s_q))
    default_rows = agg[agg["cfg"] == default_key].set_index(list(BUCKET))
    usable = agg[[c not in banned and (int(b), int(l), c) not in failed
                  for b, l, c in zip(agg["batch"], agg["seqlen"], agg["cfg"])]]
    if usable.empty:
        return None
    buckets = {k: v for k, v in usable.groupby(list(BUCKET), sort=True)}
    batches = sorted({b for b, _ in buckets})
    seqlens = sorted({s for _, s in buckets})
    entries = []
    for (b, l), cands in buckets.items():
        bi, li = batches.index(b), seqlens.index(l)
        around = [(batches[i], l) for i in (bi - 1, bi + 1) if 0 <= i < len(batches)]
        around += [(b, seqlens[j]) for j in (li - 1, li + 1) if 0 <= j < len(seqlens)]
        pick = _choose(cands, [buckets[k] for k in around if k in buckets])
        cfg = configs[pick["cfg"]]
        d_time = float(default_rows.loc[(b, l), "time_us"]) if (b, l) in default_rows.index else None
        entries.append({
            "batch": int(b), "seqlen": int(l), "config": cfg.to_dict(),
            "time_us": _round(pick["time_us"], 3), "p20_us": _round(pick["p20_us"], 3), "p80_us": _round(pick["p80_us"], 3),
            "gbps": _round(pick["gbps"], 1), "workloads": int(pick["workloads"]), "candidates": int(len(cands)),
            "default_time_us": _round(d_time, 3),
            "speedup": _round(d_time / pick["time_us"], 4) if d_time else None,
        })
    return {
        "schema_version": SCHEMA_VERSION, "kernel": KERNEL, "kernel_hash": str(first["kernel_hash"]),
        "device": normalize_device(first["device"]), "device_name": _joined(g["device"]),
        "torch": _joined(g["torch"]), "triton": _joined(g["triton"]),
        "sweep": _joined(g["sweep"]), "sweep_date": _date(g["created_at"].max()),
        "interpreted": bool(g["interpreted"].astype(bool).any()),
        "kv_format": str(first["kv_format"]), "page_size": int(first["page_size"]), "h_q": h_q, "s_q": s_q,
        "default_config": default_config(h_q, s_q).to_dict(),
        "batches": [int(x) for x in batches], "seqlens": [int(x) for x in seqlens],
        "entries": entries,
    }


def build_tables(df: pd.DataFrame, sweep: str | list[str] | tuple | None = None, kernel_hash: str | None = INSTALLED,
                 allow_interpreted: bool = False) -> list[dict]:
    """One table dict per (device, kernel hash, kv_format, page_size, h_q, s_q), in sorted order.

    df has one row per measurement (the columns of mlatune.store.results). kernel_hash=INSTALLED keeps
    rows of the installed kernels only; None keeps all, but two hashes for one table file is an error."""
    df = filter_rows(df, sweep, kernel_hash, allow_interpreted).copy()
    if df.empty:
        return []
    for n, v in Config().to_dict().items():  # knobs Config gained after these rows were measured
        df[n] = df[n].fillna(v) if n in df else v
    df["cfg"] = _cfg_keys(df)
    df["device"] = df["device"].astype(str)
    tables = []
    for _, g in df.groupby(list(FAMILY), sort=True):
        t = _family_table(g)
        if t is not None:
            tables.append(t)
    seen = {}
    for t in tables:
        name = (t["device"], table_name(t["kv_format"], t["page_size"], t["h_q"], t["s_q"]))
        if name in seen:
            raise ValueError(f"{'/'.join(name)}: rows from kernel hashes {seen[name]} and {t['kernel_hash']}; "
                             "export one hash at a time (--kernel-hash)")
        seen[name] = t["kernel_hash"]
    return tables


def dumps(table: dict) -> str:
    """Deterministic JSON: sorted keys, entries already sorted by (batch, seqlen)."""
    return json.dumps(table, indent=1, sort_keys=True) + "\n"


def write_tables(tables: list[dict], out_dir) -> list[Path]:
    paths = []
    for t in tables:
        p = table_path(out_dir, t["device"], t["kv_format"], t["page_size"], t["h_q"], t["s_q"])
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".json.tmp")
        tmp.write_text(dumps(t))
        os.replace(tmp, p)
        paths.append(p)
    return paths


# ---------------------------------------------------------------- loading


class TableError(ValueError):
    """A table file that cannot be used; .problems lists why."""

    def __init__(self, path, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(f"{path}: " + "; ".join(problems))


def _type_ok(v, t) -> bool:
    if t is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if t is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, t)


def validate(data, path=None, kernel_hash: str | None = INSTALLED) -> list[str]:
    """Problems that make a table unusable (empty list: fine). kernel_hash=INSTALLED checks against the
    installed kernels; None skips that check. With a path, the file and folder names must match the content."""
    if not isinstance(data, dict):
        return [f"top level must be a JSON object, got {type(data).__name__}"]
    if data.get("schema_version") != SCHEMA_VERSION:
        return [f"schema_version is {data.get('schema_version')!r}; this mlatune reads {SCHEMA_VERSION}"]
    bad = [f"missing key {k!r}" for k in TOP_KEYS if k not in data]
    bad += [f"{k!r} must be {t.__name__}, got {data[k]!r}" for k, t in TOP_KEYS.items() if k in data and not _type_ok(data[k], t)]
    if bad:
        return bad
    if data["kernel"] != KERNEL:
        bad.append(f"kernel is {data['kernel']!r}, expected {KERNEL!r}")
    if kernel_hash == INSTALLED:
        kernel_hash = source_hash()
    if kernel_hash is not None and data["kernel_hash"] != kernel_hash:
        bad.append(f"kernel_hash {data['kernel_hash']} does not match the installed kernels ({kernel_hash}): "
                   "the table was tuned for other kernel source; re-run the sweep and export")
    if data["kv_format"] not in KV_FORMATS:
        bad.append(f"kv_format {data['kv_format']!r} not one of {KV_FORMATS}")
    for k in ("page_size", "h_q", "s_q"):
        if data[k] < 1:
            bad.append(f"{k} must be >= 1, got {data[k]}")
    if path is not None and not bad:
        p = Path(path)
        want = table_name(data["kv_format"], data["page_size"], data["h_q"], data["s_q"])
        if p.name != want:
            bad.append(f"file name {p.name} does not match its content (expected {want})")
        if p.parent.name != data["device"]:
            bad.append(f"folder {p.parent.name} does not match device {data['device']!r}")
    if not data["entries"]:
        bad.append("entries is empty")
    seen = set()
    for i, e in enumerate(data["entries"]):
        where = f"entries[{i}]"
        if not isinstance(e, dict):
            bad.append(f"{where} must be an object")
            continue
        miss = [f"{where}: missing {k!r}" for k in ENTRY_KEYS if k not in e]
        miss += [f"{where}: {k!r} must be {t.__name__}, got {e[k]!r}" for k, t in ENTRY_KEYS.items() if k in e and not _type_ok(e[k], t)]
        miss += [f"{where}: {k!r} must be a number or null, got {e[k]!r}" for k in OPTIONAL_ENTRY_KEYS
                 if e.get(k) is not None and not _type_ok(e[k], float)]
        if miss:
            bad += miss
            continue
        if e["batch"] < 1 or e["seqlen"] < 1:
            bad.append(f"{where}: batch and seqlen must be >= 1, got {e['batch']}, {e['seqlen']}")
        if (e["batch"], e["seqlen"]) in seen:
            bad.append(f"{where}: duplicate bucket batch={e['batch']} seqlen={e['seqlen']}")
        seen.add((e["batch"], e["seqlen"]))
        try:
            cfg = Config.from_dict(e["config"])
        except (ValueError, TypeError) as exc:
            bad.append(f"{where}: config: {exc}")
            continue
        if data["kv_format"] in KV_FORMATS:
            bad += [f"{where}: config {cfg.key()}: {r}" for r in check_config(cfg, data["kv_format"])]
    return bad


def _nearest(logs: list[float], x: float) -> int:
    """Index of the nearest grid point on a log2 scale; values outside the grid clamp to the edge;
    a tie (exact geometric midpoint) goes to the smaller bucket."""
    lx = math.log2(max(x, 1))
    i = bisect_left(logs, lx)
    if i == 0:
        return 0
    if i == len(logs):
        return len(logs) - 1
    return i - 1 if lx - logs[i - 1] <= logs[i] - lx else i


class Table:
    """A validated table, parsed once: lookup() is pure arithmetic, no I/O."""

    def __init__(self, data: dict, path=None):
        self.path, self.data = path, data
        self.configs = {(e["batch"], e["seqlen"]): Config.from_dict(e["config"]) for e in data["entries"]}
        self.entries = {(e["batch"], e["seqlen"]): e for e in data["entries"]}
        self.batches = sorted({b for b, _ in self.configs})
        self.seqlens = sorted({s for _, s in self.configs})
        self._lb = [math.log2(b) for b in self.batches]
        self._ls = [math.log2(s) for s in self.seqlens]

    def bucket(self, batch: int, seqlen: int) -> tuple[int, int]:
        """The nearest (batch, seqlen) entry on a log scale in both; clamps outside the grid."""
        key = (self.batches[_nearest(self._lb, batch)], self.seqlens[_nearest(self._ls, seqlen)])
        if key in self.configs:
            return key
        # sparse grid: the nearest existing entry in log2 distance (ties: smaller batch, then seqlen)
        lb, ls = math.log2(max(batch, 1)), math.log2(max(seqlen, 1))
        return min(self.configs, key=lambda k: ((math.log2(k[0]) - lb) ** 2 + (math.log2(k[1]) - ls) ** 2, k))

    def config(self, batch: int, seqlen: int) -> Config:
        return self.configs[self.bucket(batch, seqlen)]


def load(path, kernel_hash: str | None = INSTALLED) -> Table:
    """Read and validate a table file; raises TableError listing every problem."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(path, [f"cannot read: {exc}"]) from None
    except json.JSONDecodeError as exc:
        raise TableError(path, [f"not valid JSON: {exc}"]) from None
    problems = validate(data, path, kernel_hash)
    if problems:
        raise TableError(path, problems)
    return Table(data, path)
