"""Search strategies against a fake timing function: budgets are kept, and halving with warm starts gets
within 2% of the exhaustive best with at most a quarter of the measurements on a smooth landscape."""
import itertools
import math
import random

from mlatune import search
from mlatune.kernels import Config
from mlatune.workload import Workload

SPACE = [Config(n, h, s, w, st) for n, h, s, w, st in
         itertools.product([16, 32, 64], [16, 32, 64], [0, 1, 2, 4, 8, 16], [4, 8], [1, 2, 3])]


def landscape(shift):
    """Smooth fake times with one optimum (moved by shift), plus 'failed' configs."""
    def t(c):
        if c.block_h == 64 and c.num_warps == 4:
            return None  # e.g. incorrect
        x = (math.log2(c.block_n) - 5 - shift) ** 2 + 0.5 * (math.log2(c.block_h) - 5) ** 2
        x += 0.3 * (math.log2(c.num_splits or 4) - 2 - shift) ** 2 + 0.2 * (c.num_warps == 4) + 0.1 * abs(c.num_stages - 2)
        return 100.0 * (1 + 0.2 * x)
    return t


def fake_measure(truth, noise, rng, log):
    def measure(c, fidelity):
        log.append((c, fidelity))
        t = truth(c)
        if t is None:
            return None
        return t * (1 + rng.gauss(0, noise if fidelity == search.SHORT else noise / 4))
    return measure


def test_exhaustive_and_random_budgets():
    truth = landscape(0)
    log = []
    r = search.exhaustive(SPACE, fake_measure(truth, 0.0, random.Random(0), log))
    assert len(log) == len(SPACE) and r.calls == len(SPACE)
    assert r.best_us == min(t for t in map(truth, SPACE) if t is not None)
    log = []
    r = search.random_search(SPACE, fake_measure(truth, 0.0, random.Random(0), log), budget=20, seed=1)
    assert len(log) == 20 and len(set(c for c, _ in log)) == 20
    log = []
    search.run("random", SPACE, fake_measure(truth, 0.0, random.Random(0), log), budget=0.1)
    assert len(log) == math.ceil(0.1 * len(SPACE))
    assert search.planned("random", len(SPACE), 0.1) == len(log)


def test_halving_close_to_exhaustive_with_quarter_budget():
    rng = random.Random(0)
    winners = {}
    ratios, fracs = [], []
    for i, shift in enumerate([0, 0, 0.3, 0.5, 1, 1, 1.2, 0.8]):
        w = Workload(1 + i, 1024, 64)
        truth = landscape(shift)
        best = min(t for t in map(truth, SPACE) if t is not None)
        log = []
        warm = search.warm_configs(w, winners)
        r = search.halving(SPACE, fake_measure(truth, 0.02, rng, log), budget=0.25, seed=i, warm=warm)
        winners[w] = [c for c, _ in sorted(r.full.items(), key=lambda kv: kv[1])]
        assert len(log) <= math.ceil(0.25 * len(SPACE)) and r.calls == len(log)
        assert any(f == search.FULL for _, f in log) and any(f == search.SHORT for _, f in log)
        ratios.append(truth(r.best) / best)
        fracs.append(len(log) / len(SPACE))
    assert max(fracs) <= 0.25
    assert sum(ratios) / len(ratios) <= 1.02, ratios


def test_halving_budget_covering_everything_is_exhaustive():
    log = []
    search.halving(SPACE[:10], fake_measure(landscape(0), 0, random.Random(0), log), budget=10)
    assert len(log) == 10 and all(f == search.FULL for _, f in log)


def test_neighbours_and_warm_configs():
    c = Config(32, 32, 2, 8, 2)
    nb = search.neighbours(c, SPACE)
    assert Config(16, 32, 2, 8, 2) in nb and Config(32, 32, 4, 8, 2) in nb and Config(32, 32, 2, 4, 2) in nb
    assert all(sum(getattr(a, k) != getattr(c, k) for k in search.KNOBS) == 1 for a in nb)
    a, b, far = Workload(8, 1024, 64), Workload(16, 1024, 64), Workload(8, 1024, 16)
    warm = search.warm_configs(Workload(8, 2048, 64), {a: [c], far: [Config()], b: [Config(16, 16, 0, 4, 1)]})
    assert warm[0] == c and Config() not in warm


def test_coordinate_finds_the_best_of_a_separable_landscape_within_budget():
    truth = landscape(1)
    best = min((t, c.key()) for c in SPACE if (t := truth(c)) is not None)
    for seed in range(5):
        log = []
        start = [Config(16, 16, 1, 8, 1)]  # far from the optimum
        r = search.coordinate(SPACE, fake_measure(truth, 0.0, random.Random(seed), log), budget=0.1, seed=seed, warm=start)
        assert r.calls == len(log) <= math.ceil(0.1 * len(SPACE))
        assert all(f == search.FULL for _, f in log)
        assert (truth(r.best), r.best.key()) == best


def test_coordinate_keeps_its_budget_and_survives_failures():
    truth = landscape(0)
    log = []
    start = [Config(16, 64, 0, 4, 1)]  # a start that fails (None): it must move on
    r = search.coordinate(SPACE, fake_measure(truth, 0.02, random.Random(3), log), budget=7, warm=start)
    assert r.calls == len(log) == 7
    assert r.best is not None and truth(r.best) is not None
    assert None not in r.full.values()
    r = search.run("coordinate", SPACE[:5], fake_measure(truth, 0.0, random.Random(0), []), budget=10)
    assert r.calls == 5  # budget over the space: exhaustive
