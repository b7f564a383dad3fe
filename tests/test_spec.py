"""Spec parsing: a good spec expands as expected; each malformed spec names the file, the key and what was expected."""
import pytest

from mlatune.space import enumerate_space
from mlatune.spec import SpecError, load_spec, parse_spec

GOOD = """
name = "t"
[workloads]
batch = [1, 4]
seqlen = [64, 1024]
h_q = [16, 128]
s_q = 1
dist = ["fixed", "lognormal"]
[space]
block_n = [16, 32, 64]
block_h = [16, 32, 64]
num_splits = [0, 4]
num_warps = [4, 8]
num_stages = [1, 2]
constraints = ["block_h <= max(16, rows)", "not (block_h == 64 and num_warps == 4)"]
[search]
strategy = "halving"
budget = 0.25
[timing]
min_reps = 10
target_noise = 0.02
"""


def test_good_spec_expands():
    sp = parse_spec(GOOD, "good.toml")
    assert sp.name == "t" and len(sp.workloads) == 2 * 2 * 2 * 2
    assert sp.search.strategy == "halving" and sp.search.budget == 0.25
    assert sp.timing.min_reps == 10 and sp.timing.target_noise == 0.02 and sp.timing.warmup == 5
    w16 = next(w for w in sp.workloads if w.h_q == 16)
    w128 = next(w for w in sp.workloads if w.h_q == 128)
    s16, s128 = enumerate_space(sp, w16), enumerate_space(sp, w128)
    assert all(c.block_h == 16 for c in s16.valid)
    assert {c.block_h for c in s128.valid} == {16, 32, 64}
    assert not any(c.block_h == 64 and c.num_warps == 4 for c in s128.valid)
    assert len(s128.valid) + len(s128.invalid) + len(s128.excluded) == 3 * 3 * 2 * 2 * 2


def test_array_of_grids_dedups():
    text = """
[[workloads]]
batch = [1, 2]
seqlen = 64
h_q = 16
[[workloads]]
batch = [2, 8]
seqlen = [64]
h_q = 16
"""
    sp = parse_spec(text, "multi.toml")
    assert sorted(w.batch for w in sp.workloads) == [1, 2, 8]


def test_shipped_specs_load():
    for name in ("quick", "deepseek-v3", "flashmla-bench"):
        sp = load_spec(f"sweeps/{name}.toml")
        assert sp.workloads and sp.name == name


def test_smem_limit_prunes_with_reason():
    sp = parse_spec(GOOD, "good.toml")
    w = next(w for w in sp.workloads if w.h_q == 128)
    sp_small = enumerate_space(sp, w, smem_limit=100_000)
    assert any("shared memory" in r for _, r in sp_small.invalid)
    assert len(sp_small.valid) < len(enumerate_space(sp, w).valid)


BASE = "[workloads]\nbatch = [1]\nseqlen = [64]\nh_q = [16]\n"


@pytest.mark.parametrize("text,key,expect", [
    (BASE + "bogus = 1\n", "workloads.bogus", "unknown key"),
    (BASE.replace("[16]", "[]"), "workloads.h_q", "empty grid"),
    (BASE.replace("[1]", '["one"]'), "workloads.batch", "integer"),
    (BASE.replace("[1]", "[1.5]"), "workloads.batch", "integer"),
    (BASE + 'dist = ["uniform"]\n', "workloads.dist", "one of"),
    (BASE + "causal = [1]\n", "workloads.causal", "true or false"),
    (BASE + "page_size = [48]\n", "workloads", "page_size"),
    ("[workloads]\nbatch = [1]\n", "workloads.seqlen", "missing"),
    ("name = 'x'\n", "workloads", "missing"),
    (BASE + "[space]\nblock_n = 32\nblock_m = [1]\n", "space.block_m", "unknown key"),
    (BASE + "[space]\nblock_n = [true]\n", "space.block_n", "integer"),
    (BASE + "[space]\nconstraints = ['block_n > 1000']\n", "space.constraints", "exclude every config"),
    (BASE + "[space]\nconstraints = ['block_n >']\n", "space.constraints[0]", "bad expression"),
    (BASE + "[space]\nconstraints = ['__import__(\"os\")']\n", "space.constraints[0]", "bad expression"),
    (BASE + "[space]\nconstraints = ['block_n.real > 1']\n", "space.constraints[0]", "Attribute"),
    (BASE + "[space]\nconstraints = ['foo > 1']\n", "space.constraints[0]", "unknown name 'foo'"),
    (BASE + "[space]\nblock_h = [16]\nconstraints = ['block_n / (block_h - 16) > 0']\n", "space.constraints", "division by zero"),
    (BASE + "[space]\nblock_h = [256]\n", "space", "every config is invalid"),
    (BASE + "[search]\nstrategy = 'genetic'\n", "search.strategy", "one of"),
    (BASE + "[search]\nstrategy = 'random'\n", "search.budget", "needs a budget"),
    (BASE + "[search]\nbudget = 1.5\n", "search.budget", "fraction"),
    (BASE + "[timing]\nmin_reps = 'ten'\n", "timing.min_reps", "integer"),
    (BASE + "[timing]\ngraph = 1\n", "timing.graph", "true or false"),
    (BASE + "[timing]\nmin_reps = 50\nmax_reps = 10\n", "timing.max_reps", "min_reps"),
    (BASE + "[timing]\nflush = true\n", "timing.flush", "unknown key"),
    ("[workloads\n", "", "not valid TOML"),
])
def test_bad_spec_messages(text, key, expect):
    with pytest.raises(SpecError) as ei:
        parse_spec(text, "bad.toml")
    msg = str(ei.value)
    assert msg.startswith("bad.toml: ")
    assert f"[{key}]" in msg or not key
    assert expect in msg


def test_missing_file():
    with pytest.raises(SpecError, match="nope.toml: cannot read"):
        load_spec("nope.toml")


def test_constraint_eval_has_no_builtins():
    sp = parse_spec(BASE + "[space]\nconstraints = ['min(block_n, 64) >= 16 and abs(-1) == 1']\n", "c.toml")
    assert sp.constraints[0]({"block_n": 32})
    with pytest.raises(SpecError, match="unknown name 'open'"):
        parse_spec(BASE + "[space]\nconstraints = ['open is None']\n", "c.toml")
