"""How good the tuned tables are, from a sweep database: tables against the best fixed config, the runtime's
table lookup against the per-shape best (oracle) on shapes outside the tuning grid, and fp8 caches against bf16."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .kernels.config import Config, source_hash
from .kernels.mla_decode import default_config
from .store import results
from .table import load, normalize_device, table_path

KNOBS = [f for f in Config.__dataclass_fields__]
SHAPE = ["batch", "seqlen", "h_q", "s_q", "kv_format", "page_size", "dist", "causal"]


def _geomean(xs) -> float:
    xs = list(xs)
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def _current(db) -> pd.DataFrame:
    """The measurements of the installed kernels (their source hash): rows of older kernels stay in a database."""
    return results(db, kernel_hash=source_hash())


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
    """Per table family (kv format, page, h_q, s_q): the single config with the best geomean time over the
    family's grid workloads (among configs measured on all of them) against the tables' picks."""
    df = _ok(_current(db))
    df = df[df.sweep.isin(sweeps)]
    picked = _table_time(df, Path(tables_dir))
    out = []
    for (fmt, page, h, s), g in df.groupby(["kv_format", "page_size", "h_q", "s_q"]):  # one table's family
        n = g.groupby(SHAPE).ngroups
        cover = g.groupby("cfg").filter(lambda c: c.groupby(SHAPE).ngroups == n)
        score = cover.groupby("cfg").time_us.apply(lambda x: _geomean(x))
        best = score.idxmin()
        fixed = g[g.cfg == best].set_index(SHAPE).time_us
        p = picked[(picked.kv_format == fmt) & (picked.page_size == page) & (picked.h_q == h) & (picked.s_q == s)].set_index(SHAPE)
        for k, r in p.iterrows():
            out.append(dict(zip(SHAPE, k), fixed_cfg=best, fixed_us=float(fixed.loc[k]), table_us=r.table_us,
                            oracle_us=r.oracle_us, speedup=float(fixed.loc[k]) / r.table_us))
    return pd.DataFrame(out)


def runtime_vs_oracle(db, tables_dir, sweeps) -> pd.DataFrame:
    df = _ok(_current(db))
    p = _table_time(df[df.sweep.isin(sweeps)], Path(tables_dir))
    p["of_oracle"] = p.oracle_us / p.table_us
    return p


def fp8_vs_bf16(db) -> pd.DataFrame:
    """Per workload measured with an fp8 cache: the best time per format next to the best bf16 time on the same
    shape, and for the per-tensor format the best with and without qk_fp8. The ratios (fp8 time over bf16
    time) compare work rates (TFLOPS), because different sweeps draw different seqlens for the same
    normal or lognormal workload; for fixed lengths this is the plain time ratio."""
    df = _ok(_current(db))
    shape = [k for k in SHAPE if k != "kv_format"]
    best = df.groupby(shape + ["kv_format"]).time_us.min().unstack("kv_format")
    rate = df.groupby(shape + ["kv_format"]).tflops.max().unstack("kv_format")
    fp8 = df[df.kv_format == "fp8"]
    for flag in (0, 1):
        best[f"fp8_qk{flag}"] = fp8[fp8.qk_fp8 == flag].groupby(shape).time_us.min()
    for f in ("fp8", "fp8_flashmla"):
        if f in rate and "bf16" in rate:
            best[f"{f}_over_bf16"] = rate["bf16"] / rate[f]
    best = best.dropna(subset=["bf16"]).dropna(subset=["fp8", "fp8_flashmla"], how="all").reset_index()
    return best


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
    fm = f.dropna(subset=["speedup"])
    print(f"(a) tables vs best fixed config per table family, {len(fm)} grid workloads "
          f"({len(f) - len(fm)} whose pick was not measured there): geomean speedup {_geomean(fm.speedup):.3f}, "
          f"worst {fm.speedup.min():.3f}")
    print(f.sort_values("speedup").head(5)[SHAPE[:4] + ["dist", "fixed_cfg", "fixed_us", "table_us", "speedup"]].to_string(index=False))
    o = runtime_vs_oracle(a.db, a.tables, a.offgrid)
    om = o.dropna(subset=["of_oracle"])
    print(f"(b) runtime lookup vs per-shape best on {len(om)} off-grid workloads ({len(o) - len(om)} whose pick was "
          f"not measured there): geomean {_geomean(om.of_oracle):.3f} of oracle speed, worst {om.of_oracle.min():.3f}")
    print(o.sort_values("of_oracle")[SHAPE[:4] + ["dist", "picked", "table_us", "oracle_us", "of_oracle"]].to_string(index=False))
    v = fp8_vs_bf16(a.db)
    if len(v):
        print(f"(c) fp8 caches: time over bf16's at equal work, best configs, {len(v)} shapes: per-tensor geomean "
              f"{_geomean(v.fp8_over_bf16.dropna()):.3f}, FlashMLA layout {_geomean(v.fp8_flashmla_over_bf16.dropna()):.3f}")
        print(v.round(3).to_string(index=False))
    if a.csv:
        f.to_csv(a.csv + "_fixed.csv", index=False)
        o.to_csv(a.csv + "_offgrid.csv", index=False)
        v.to_csv(a.csv + "_fp8.csv", index=False)


if __name__ == "__main__":
    main()


def replay_search(db, sweep: str | None, strategy: str = "halving", budget=0.25, eta: int = 3, seed: int = 0) -> pd.DataFrame:
    """Replay a search strategy on an exhaustive sweep's recorded timings (no GPU): a full timing returns the
    recorded median; a short one adds noise drawn from the recorded p20-p80 spread, widened for its fewer reps.
    Returns, per workload, the replayed pick's time over the exhaustive best and the measurements it used."""
    import random

    from . import search
    from .workload import Workload

    df = _ok(_current(db) if isinstance(db, (str, Path)) else db.assign(interpreted=False))
    if sweep is not None:
        df = df[df.sweep == sweep]
    df = df.sort_values("created_at") if "created_at" in df else df
    rng = random.Random(seed)
    winners, rows = {}, []
    for shape, g in df.groupby(SHAPE, sort=False):
        w = Workload(**{k: (bool(v) if k == "causal" else (str(v) if isinstance(v, str) else int(v))) for k, v in zip(SHAPE, shape)})
        by = {Config(**{k: int(r[k]) for k in KNOBS}): r for _, r in g.iterrows()}

        def measure(cfg, fidelity, by=by):
            r = by[cfg]
            if fidelity == search.FULL:
                return float(r.time_us)
            sigma = max(float(r.p80_us - r.p20_us), 0.0) / 1.35 / float(r.time_us) * math.sqrt(2)
            return float(r.time_us) * (1 + rng.gauss(0, sigma))

        warm = search.warm_configs(w, winners) + [default_config(w.h_q, w.s_q)]  # as the sweep does
        res = search.run(strategy, list(by), measure, budget=budget, seed=seed, eta=eta, warm=warm)
        best = float(g.time_us.min())
        winners[w] = sorted(res.full, key=res.full.get)
        rows.append(dict(zip(SHAPE, shape), picked_us=float(by[res.best].time_us), best_us=best,
                         ratio=float(by[res.best].time_us) / best, calls=res.calls, space=len(by)))
    return pd.DataFrame(rows)
