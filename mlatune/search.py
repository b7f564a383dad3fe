"""Search strategies over one workload's configs: exhaustive, random within a budget, successive halving and
coordinate descent, both started from neighbouring workloads' winners. measure(cfg, fidelity) -> us or None."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .kernels.config import Config
from .spec import KNOBS

SHORT, FULL = 0, 1  # timing fidelities: a short screening timing, and the full one
Measure = Callable[[Config, int], "float | None"]


@dataclass
class Result:
    best: Config | None = None
    best_us: float | None = None
    calls: int = 0  # measure() calls made
    full: dict = field(default_factory=dict)  # config -> full-fidelity time (ok only)


def budget_count(budget, n: int, default: float = 0.25) -> int:
    """Measurements per workload: an int is a count, a float in (0, 1] a fraction of the n configs."""
    if budget is None:
        budget = default
    k = budget if isinstance(budget, int) else math.ceil(budget * n)
    return max(1, min(n, k))


def planned(strategy: str, n: int, budget=None) -> int:
    """How many measure() calls a strategy makes on n valid configs (an upper bound for halving)."""
    if strategy == "exhaustive":
        return n
    k = budget_count(budget, n)
    return n if (strategy == "halving" and k >= n) else k


def neighbours(cfg: Config, configs: Sequence[Config]) -> list[Config]:
    """Configs that differ from cfg in exactly one knob, by one step in that knob's sorted values."""
    values = {k: sorted({getattr(c, k) for c in configs}) for k in KNOBS}
    have = set(configs)
    out = []
    for k in KNOBS:
        vals = values[k]
        v = getattr(cfg, k)
        if v not in vals:
            continue
        i = vals.index(v)
        for j in (i - 1, i + 1):
            if 0 <= j < len(vals):
                c = Config(**{**cfg.to_dict(), k: vals[j]})
                if c in have:
                    out.append(c)
    return out


def _full(configs, measure, res: Result) -> Result:
    for c in configs:
        t = measure(c, FULL)
        res.calls += 1
        if t is not None:
            res.full[c] = t
            if res.best_us is None or t < res.best_us:
                res.best, res.best_us = c, t
    return res


def exhaustive(configs: Sequence[Config], measure: Measure) -> Result:
    return _full(configs, measure, Result())


def random_search(configs: Sequence[Config], measure: Measure, budget=None, seed: int = 0) -> Result:
    k = budget_count(budget, len(configs))
    return _full(random.Random(seed).sample(list(configs), k), measure, Result())


def halving(configs: Sequence[Config], measure: Measure, budget=None, seed: int = 0, eta: int = 3,
            warm: Sequence[Config] = ()) -> Result:
    """Screen with short timings, then time the best 1/eta fully.

    Screening order: warm-start configs (winners of neighbouring workloads), then about 60% of the screening
    budget from those and a random sample, the rest on one-knob neighbours of the best screened so far."""
    configs = list(configs)
    k = budget_count(budget, len(configs))
    if k >= len(configs):
        return exhaustive(configs, measure)
    n_full = max(1, k // (eta + 1))
    n_short = k - n_full
    rng = random.Random(seed)
    pool = set(configs)
    seen: dict[Config, float | None] = {}
    res = Result()

    def screen(c):
        if c in seen or c not in pool or len(seen) >= n_short:
            return
        seen[c] = measure(c, SHORT)
        res.calls += 1

    first = [c for c in dict.fromkeys(warm) if c in pool]
    rest = [c for c in configs if c not in set(first)]
    rng.shuffle(rest)
    explore = max(1, round(0.6 * n_short)) if len(first) < n_short else n_short
    for c in first + rest:
        if len(seen) >= explore:
            break
        screen(c)
    while len(seen) < n_short:  # local search around the leaders
        leaders = sorted((t, i, c) for i, (c, t) in enumerate(seen.items()) if t is not None)
        fresh = [n for _, _, c in leaders[:3] for n in neighbours(c, configs) if n not in seen]
        if not fresh:
            fresh = [c for c in rest if c not in seen][:1]
            if not fresh:
                break
        screen(fresh[0])
    ranked = sorted((t, i, c) for i, (c, t) in enumerate(seen.items()) if t is not None)
    return _full([c for _, _, c in ranked[:n_full]], measure, res)


# coordinate descent visits the knobs that matter most first
COORD_ORDER = ("num_splits", "block_h", "block_n", "num_warps", "num_stages")


def coordinate(configs: Sequence[Config], measure: Measure, budget=None, seed: int = 0,
               warm: Sequence[Config] = ()) -> Result:
    """Coordinate descent with full timings. Start from the warm configs (neighbouring winners, the default),
    then time every value of one knob at a time, the others held at the best so far; repeat the passes while
    the best moves, and spend what is left on one-knob neighbours of the leaders."""
    configs = list(configs)
    k = budget_count(budget, len(configs))
    if k >= len(configs):
        return exhaustive(configs, measure)
    pool = set(configs)
    res = Result()

    def full(c):
        if c in res.full or c not in pool or res.calls >= k:
            return
        res.calls += 1
        t = measure(c, FULL)
        res.full[c] = t
        if t is not None and (res.best_us is None or t < res.best_us):
            res.best, res.best_us = c, t

    starts = [c for c in dict.fromkeys(warm) if c in pool][: max(1, k // 4)]
    rng = random.Random(seed)
    rest = configs[:]
    rng.shuffle(rest)
    for c in starts or rest[:1]:
        full(c)
    for c in rest:  # no start ran: take random configs until one does
        if res.best is not None or res.calls >= k:
            break
        full(c)
    knobs = COORD_ORDER + tuple(n for n in KNOBS if n not in COORD_ORDER)
    moved = True
    while moved and res.best is not None and res.calls < k:
        before = res.best
        for knob in knobs:
            cur = res.best
            for c in configs:
                if all(getattr(c, n) == getattr(cur, n) for n in KNOBS if n != knob):
                    full(c)
        moved = res.best != before
    while res.calls < k and res.best is not None:
        leaders = sorted((t, i, c) for i, (c, t) in enumerate(res.full.items()) if t is not None)[:3]
        fresh = [n for _, _, c in leaders for n in neighbours(c, configs) if n not in res.full]
        if not fresh:
            break
        full(fresh[0])
    res.full = {c: t for c, t in res.full.items() if t is not None}
    return res


def run(strategy: str, configs: Sequence[Config], measure: Measure, budget=None, seed: int = 0, eta: int = 3,
        warm: Sequence[Config] = ()) -> Result:
    if strategy == "coordinate":
        return coordinate(configs, measure, budget, seed, warm)
    if strategy == "exhaustive":
        return exhaustive(configs, measure)
    if strategy == "random":
        return random_search(configs, measure, budget, seed)
    if strategy == "halving":
        return halving(configs, measure, budget, seed, eta, warm)
    raise ValueError(f"unknown strategy {strategy!r}")


def workload_distance(a, b) -> float:
    """How far apart two workloads are for warm starts; inf across different head/query/format groups."""
    if (a.h_q, a.s_q, a.kv_format, a.page_size) != (b.h_q, b.s_q, b.kv_format, b.page_size):
        return math.inf
    return abs(math.log2(a.batch / b.batch)) + abs(math.log2(max(a.seqlen, 1) / max(b.seqlen, 1))) + (a.dist != b.dist)


def warm_configs(w, winners: dict, k: int = 2, per: int = 3) -> list[Config]:
    """Top configs of the k nearest finished workloads. winners: {workload: [Config fastest first]}."""
    near = sorted((workload_distance(w, o), i, o) for i, o in enumerate(winners) if o != w)
    out = []
    for d, _, o in near[:k]:
        if d == math.inf:
            break
        out += winners[o][:per]
    return list(dict.fromkeys(out))


def compare_strategies(exhaustive_df, smart_df):
    """Per workload, how close a smart run got to an exhaustive one (both results() DataFrames of one device
    and kernel hash): ratio = exhaustive time of the smart pick / exhaustive best; frac = measurements the smart
    run made (attempts, pruned configs excluded) / configs the exhaustive run measured."""
    import pandas as pd

    rows = []
    ex = exhaustive_df[exhaustive_df.status != "invalid"]
    sm = smart_df[smart_df.status != "invalid"]
    for wk, g in ex.groupby("workload_key"):
        s = sm[sm.workload_key == wk]
        ok_ex, ok_s = g[g.status == "ok"], s[(s.status == "ok") & (s.fidelity.fillna(FULL) >= FULL)]
        if ok_ex.empty or ok_s.empty:
            continue
        best = ok_ex.time_us.min()
        pick = ok_s.sort_values("time_us").iloc[0]
        pick_ex = ok_ex[ok_ex.config_key == pick.config_key].time_us
        rows.append(dict(workload_key=wk, exhaustive_best_us=best, exhaustive_config=ok_ex.sort_values("time_us").iloc[0].config_key,
                         smart_config=pick.config_key, smart_us=pick.time_us,
                         ratio=(pick_ex.iloc[0] / best) if len(pick_ex) else float("nan"),
                         measured=int(s.attempts.fillna(1).sum()), space=len(g), frac=s.attempts.fillna(1).sum() / len(g)))
    return pd.DataFrame(rows)
