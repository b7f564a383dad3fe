"""How good the tuned tables are, from an exhaustive sweep database: tables against the best fixed config, and
the runtime's table lookup against the per-shape best (oracle) on shapes outside the tuning grid."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .kernels.config import Config
from .store import results
from .table import load, normalize_device, table_path

KNOBS = [f for f in Config.__dataclass_fields__]
SHAPE = ["batch", "seqlen", "h_q", "s_q", "kv_format", "page_size", "dist", "causal"]


def _geomean(xs) -> float:
    xs = list(xs)
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    df = df[(df.status == "ok") & ~df.interpreted.astype(bool)].copy()
    df["cfg"] = df[KNOBS].astype(int).astype(str).agg("_".join, axis=1)
    return df


def _table_time(df: pd.DataFrame, tables_dir: Path) -> pd.DataFrame:
    """Per workload: the time of the config the table picks (nearest bucket) and of the per-workload best."""
    rows = []
    for shape, g in df.groupby(SHAPE):
        w = dict(zip(SHAPE, shape))
        dev = normalize_device(g.device.iloc[0])
        t = load(table_path(tables_dir, dev, w["kv_format"], w["page_size"], w["h_q"], w["s_q"]))
        pick = t.config(w["batch"], w["seqlen"])
        key = "_".join(str(int(getattr(pick, k))) for k in KNOBS)
        hit = g[g.cfg == key]
        rows.append(dict(w, table_us=float(hit.time_us.iloc[0]) if len(hit) else float("nan"),
                         oracle_us=float(g.time_us.min()), picked=key, measured=len(hit) > 0))
    return pd.DataFrame(rows)


def fixed_vs_tables(db, tables_dir, sweeps) -> pd.DataFrame:
    """Per (h_q, s_q) family: the single config with the best geomean time over the family's grid workloads
    (among configs measured on all of them) against the tables' picks."""
    df = _ok(results(db))
    df = df[df.sweep.isin(sweeps)]
    picked = _table_time(df, Path(tables_dir))
    out = []
    for (h, s), g in df.groupby(["h_q", "s_q"]):
        n = g.groupby(SHAPE).ngroups
        cover = g.groupby("cfg").filter(lambda c: c.groupby(SHAPE).ngroups == n)
        score = cover.groupby("cfg").time_us.apply(lambda x: _geomean(x))
        best = score.idxmin()
        fixed = g[g.cfg == best].set_index(SHAPE).time_us
        p = picked[(picked.h_q == h) & (picked.s_q == s)].set_index(SHAPE)
        for k, r in p.iterrows():
            out.append(dict(zip(SHAPE, k), fixed_cfg=best, fixed_us=float(fixed.loc[k]), table_us=r.table_us,
                            oracle_us=r.oracle_us, speedup=float(fixed.loc[k]) / r.table_us))
    return pd.DataFrame(out)


def runtime_vs_oracle(db, tables_dir, sweeps) -> pd.DataFrame:
    df = _ok(results(db))
    p = _table_time(df[df.sweep.isin(sweeps)], Path(tables_dir))
    p["of_oracle"] = p.oracle_us / p.table_us
    return p


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default="results/h200.db")
    ap.add_argument("--tables", default="results/configs")
    ap.add_argument("--grid", nargs="+", default=["flashmla-bench", "deepseek-v3"], help="sweeps the tables were built from")
    ap.add_argument("--offgrid", nargs="+", default=["offgrid"], help="sweeps of shapes outside the tables' grid")
    ap.add_argument("--csv", default=None, help="write both tables to this prefix (_fixed.csv, _offgrid.csv)")
    a = ap.parse_args()
    pd.set_option("display.width", 200)
    f = fixed_vs_tables(a.db, a.tables, a.grid)
    print(f"(a) tables vs best fixed config per (h_q, s_q), {len(f)} grid workloads: geomean speedup "
          f"{_geomean(f.speedup):.3f}, worst {f.speedup.min():.3f}")
    print(f.sort_values("speedup").head(5)[SHAPE[:4] + ["dist", "fixed_cfg", "fixed_us", "table_us", "speedup"]].to_string(index=False))
    o = runtime_vs_oracle(a.db, a.tables, a.offgrid)
    print(f"(b) runtime lookup vs per-shape best on {len(o)} off-grid workloads: geomean {_geomean(o.of_oracle):.3f} "
          f"of oracle speed, worst {o.of_oracle.min():.3f}")
    print(o.sort_values("of_oracle")[SHAPE[:4] + ["dist", "picked", "table_us", "oracle_us", "of_oracle"]].to_string(index=False))
    if a.csv:
        f.to_csv(a.csv + "_fixed.csv", index=False)
        o.to_csv(a.csv + "_offgrid.csv", index=False)


if __name__ == "__main__":
    main()
