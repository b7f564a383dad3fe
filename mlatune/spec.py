"""Sweep specs: load a TOML file, check every key and type, and expand it into workloads, a knob space and settings."""
from __future__ import annotations

import ast
import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .kernels.config import Config

KNOBS = tuple(f.name for f in dataclasses.fields(Config))  # block_n, block_h, num_splits, num_warps, num_stages, ...
WORKLOAD_FIELDS = ("batch", "seqlen", "h_q", "s_q", "kv_format", "page_size", "dist", "causal")
STRATEGIES = ("exhaustive", "random", "halving", "coordinate")
KV_FORMATS = ("bf16", "fp8", "fp8_flashmla")
DISTS = ("fixed", "normal", "lognormal")
# Names a constraint may use besides knobs and workload fields.
CONSTRAINT_FUNCS = {"min": min, "max": max, "abs": abs}
_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.Compare, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Name, ast.Load, ast.Constant, ast.IfExp,
    ast.Tuple, ast.List, ast.Call,
)


class SpecError(ValueError):
    """A malformed sweep spec; the message names the file, the key and what was expected."""


@dataclass
class Search:
    strategy: str = "exhaustive"
    budget: float | None = None  # int: measurements per workload; float in (0, 1]: fraction of valid configs
    seed: int = 0
    eta: int = 3  # halving: one in eta short-timed configs goes on to a full timing
    warm_start: bool = True  # halving, coordinate: start from the winners of already-swept neighbouring workloads


@dataclass
class Timing:
    warmup: int = 5
    min_reps: int = 20
    max_reps: int = 400
    target_noise: float = 0.01
    time_cap_s: float = 2.0
    graph: bool = True
    short_reps: int = 10  # reps of a short (screening) timing in the halving strategy
    timeout_s: float = 120.0  # one verification + timing, compile included
    prepare_timeout_s: float = 600.0  # building one workload's inputs and reference


@dataclass
class Constraint:
    text: str
    code: object

    def __call__(self, env: dict) -> bool:
        return bool(eval(self.code, {"__builtins__": {}, **CONSTRAINT_FUNCS}, env))


@dataclass
class Spec:
    path: str
    name: str
    text: str
    description: str
    workloads: list  # list[mlatune.workload.Workload]
    space: dict[str, list[int]]
    constraints: list[Constraint] = field(default_factory=list)
    search: Search = field(default_factory=Search)
    timing: Timing = field(default_factory=Timing)


_TYPES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _err(path, key, msg) -> SpecError:
    return SpecError(f"{path}: [{key}] {msg}")


def _check_type(path, key, v, typ):
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, bool) and typ is not bool:
        raise _err(path, key, f"expected {_TYPES[typ]}, got {v!r}")
    if not isinstance(v, typ):
        raise _err(path, key, f"expected {_TYPES[typ]}, got {type(v).__name__} {v!r}")
    return v


def _as_list(path, key, v, typ, choices=None, positive=False) -> list:
    vals = v if isinstance(v, list) else [v]
    if not vals:
        raise _err(path, key, f"empty grid: expected a non-empty list of {_TYPES[typ]} values")
    out = []
    for x in vals:
        x = _check_type(path, key, x, typ)
        if choices is not None and x not in choices:
            raise _err(path, key, f"expected one of {list(choices)}, got {x!r}")
        if positive and x < 1:
            raise _err(path, key, f"expected positive integers, got {x}")
        out.append(x)
    return list(dict.fromkeys(out))


def _unknown(path, section, table, known):
    extra = sorted(set(table) - set(known))
    if extra:
        where = f"{section}.{extra[0]}" if section else extra[0]
        raise _err(path, where, f"unknown key; expected one of {sorted(known)}")


def _workloads(path, grids) -> list:
    from .workload import Workload

    if isinstance(grids, dict):
        grids = [grids]
    if not isinstance(grids, list) or not grids:
        raise _err(path, "workloads", "expected a table ([workloads]) or an array of tables ([[workloads]])")
    seen = {}
    for i, g in enumerate(grids):
        sec = "workloads" if len(grids) == 1 else f"workloads#{i + 1}"
        if not isinstance(g, dict):
            raise _err(path, sec, "expected a table of grid lists")
        _unknown(path, sec, g, WORKLOAD_FIELDS)
        for req in ("batch", "seqlen"):
            if req not in g:
                raise _err(path, f"{sec}.{req}", "missing: expected a list of positive integers")
        defaults = {"h_q": [128], "s_q": [1], "kv_format": ["bf16"], "page_size": [64], "dist": ["fixed"], "causal": [True]}
        lists = {}
        for k in WORKLOAD_FIELDS:
            key = f"{sec}.{k}"
            v = g.get(k, defaults.get(k))
            if k in ("kv_format",):
                lists[k] = _as_list(path, key, v, str, KV_FORMATS)
            elif k == "dist":
                lists[k] = _as_list(path, key, v, str, DISTS)
            elif k == "causal":
                lists[k] = _as_list(path, key, v, bool)
            else:
                lists[k] = _as_list(path, key, v, int, positive=True)
        for vals in itertools.product(*(lists[k] for k in WORKLOAD_FIELDS)):
            d = dict(zip(WORKLOAD_FIELDS, vals))
            try:
                w = Workload(**d)
            except ValueError as e:
                raise _err(path, sec, str(e)) from None
            seen.setdefault(wkey(w), w)
    return list(seen.values())


def wkey(w) -> str:
    """Workload key used by the store (Workload.key() plus causality)."""
    return f"{w.key()}_c{int(w.causal)}"


def _constraint(path, i, text) -> Constraint:
    key = f"space.constraints[{i}]"
    if not isinstance(text, str):
        raise _err(path, key, f"expected a string expression, got {text!r}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise _err(path, key, f"bad expression {text!r}: {e.msg}") from None
    names = set(KNOBS) | set(WORKLOAD_FIELDS) | {"rows"} | set(CONSTRAINT_FUNCS)
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise _err(path, key, f"bad expression {text!r}: {type(node).__name__} is not allowed "
                       "(use arithmetic, comparisons, and/or/not, min/max/abs)")
        if isinstance(node, ast.Name) and node.id not in names:
            raise _err(path, key, f"bad expression {text!r}: unknown name {node.id!r}; expected one of {sorted(names)}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in CONSTRAINT_FUNCS):
            raise _err(path, key, f"bad expression {text!r}: only min, max and abs may be called")
    return Constraint(text, compile(tree, f"<constraint {i}>", "eval"))


def _space(path, t) -> tuple[dict, list]:
    if not isinstance(t, dict):
        raise _err(path, "space", "expected a table")
    _unknown(path, "space", t, KNOBS + ("constraints",))
    defaults = Config().to_dict()
    space = {k: _as_list(path, f"space.{k}", t.get(k, [defaults[k]]), int) for k in KNOBS}
    cons = t.get("constraints", [])
    if not isinstance(cons, list):
        raise _err(path, "space.constraints", "expected a list of expression strings")
    return space, [_constraint(path, i, c) for i, c in enumerate(cons)]


def _settings(path, section, t, cls, checks):
    if not isinstance(t, dict):
        raise _err(path, section, "expected a table")
    obj = cls()
    _unknown(path, section, t, obj.__dataclass_fields__)
    for k, v in t.items():
        typ = type(getattr(obj, k)) if getattr(obj, k) is not None else float
        if k == "budget":
            typ = int if isinstance(v, int) and not isinstance(v, bool) else float
        v = _check_type(path, f"{section}.{k}", v, typ)
        ok, want = checks.get(k, (lambda x: True, ""))
        if not ok(v):
            raise _err(path, f"{section}.{k}", f"expected {want}, got {v!r}")
        setattr(obj, k, v)
    return obj


_SEARCH_CHECKS = {
    "strategy": (lambda v: v in STRATEGIES, f"one of {list(STRATEGIES)}"),
    "budget": (lambda v: (isinstance(v, int) and v >= 1) or (isinstance(v, float) and 0 < v <= 1),
               "an integer >= 1 (measurements per workload) or a fraction in (0, 1]"),
    "eta": (lambda v: v >= 2, "an integer >= 2"),
}
_TIMING_CHECKS = {
    "warmup": (lambda v: v >= 0, "an integer >= 0"),
    "min_reps": (lambda v: v >= 1, "an integer >= 1"),
    "max_reps": (lambda v: v >= 1, "an integer >= 1"),
    "short_reps": (lambda v: v >= 1, "an integer >= 1"),
    "target_noise": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "time_cap_s": (lambda v: v > 0, "a positive number of seconds"),
    "timeout_s": (lambda v: v > 0, "a positive number of seconds"),
    "prepare_timeout_s": (lambda v: v > 0, "a positive number of seconds"),
}


def parse_spec(text: str, path: str = "<spec>") -> Spec:
    """Parse and validate spec text; raises SpecError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    _unknown(path, "", data, ("name", "description", "workloads", "space", "search", "timing"))
    if "workloads" not in data:
        raise _err(path, "workloads", "missing: expected a [workloads] table of grid lists")
    name = _check_type(path, "name", data.get("name", Path(path).stem), str)
    desc = _check_type(path, "description", data.get("description", ""), str)
    workloads = _workloads(path, data["workloads"])
    space, cons = _space(path, data.get("space", {}))
    search = _settings(path, "search", data.get("search", {}), Search, _SEARCH_CHECKS)
    timing = _settings(path, "timing", data.get("timing", {}), Timing, _TIMING_CHECKS)
    if timing.max_reps < timing.min_reps:
        raise _err(path, "timing.max_reps", f"expected >= min_reps ({timing.min_reps}), got {timing.max_reps}")
    if search.strategy in ("random",) and search.budget is None:
        raise _err(path, "search.budget", "missing: the random strategy needs a budget (count or fraction)")
    spec = Spec(path, name, text, desc, workloads, space, cons, search, timing)
    _check_feasible(spec)
    return spec


def load_spec(path) -> Spec:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read spec: {e.strerror}") from None
    return parse_spec(text, str(path))


def _check_feasible(spec: Spec) -> None:
    """Every workload must keep at least one config after the constraints and the static rules."""
    from .space import enumerate_space

    for w in spec.workloads:
        try:
            sp = enumerate_space(spec, w, smem_limit=None)
        except Exception as e:  # a constraint that raises (division by zero, bad types)
            raise _err(spec.path, "space.constraints", f"evaluating for workload {wkey(w)} failed: {e}") from None
        if not sp.valid:
            if not sp.excluded and sp.invalid:
                raise _err(spec.path, "space", f"every config is invalid for workload {wkey(w)}, "
                           f"e.g. {sp.invalid[0][0].key()}: {sp.invalid[0][1]}")
            culprit = sp.excluded[0][1] if sp.excluded else "?"
            raise _err(spec.path, "space.constraints", f"the constraints exclude every config for workload {wkey(w)} "
                       f"(e.g. {culprit}); expected constraints that leave at least one config")
