"""The `mlatune` command line: sweep, check and results (plus the table commands of cli_tables)."""
from __future__ import annotations

import importlib
import os
import sys


def _choose_backend() -> bool:
    """Use the Triton interpreter when no GPU is available. Must run before mlatune.kernels is imported,
    because @triton.jit reads TRITON_INTERPRET at import time. Returns True when interpreting."""
    if "TRITON_INTERPRET" not in os.environ:
        import torch

        if not torch.cuda.is_available():
            os.environ["TRITON_INTERPRET"] = "1"
    return os.environ.get("TRITON_INTERPRET") == "1"


INTERPRETED = _choose_backend()

import click  # noqa: E402

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_DB = "results/mlatune.db"

MAIN_HELP = f"""Autotune, check and ship Triton MLA (DeepSeek) decode kernels.

\b
The usual loop:
  mlatune check                                   # does the kernel match the reference here?
  mlatune sweep sweeps/quick.toml --dry-run       # what would a sweep run, and how much?
  mlatune sweep sweeps/flashmla-bench.toml        # verify, time and store every variant
  mlatune results                                 # best config per workload so far

A sweep spec (TOML) lists workloads (batch, seqlen, h_q, s_q, kv_format, page_size, dist, causal
grids), the knob space (block_n, block_h, num_splits, num_warps, num_stages, plus constraints),
a search strategy (exhaustive, random, halving, coordinate) and timing settings; see sweeps/*.toml.

Every variant is first checked against an fp32 reference on fresh random inputs with NaN-poisoned
outputs; only correct ones are timed (CUDA graphs, L2 flushed, median with spread). Kernels run in
a worker process, so a crash or hang is recorded and the sweep goes on. Results go to one SQLite
file ({DEFAULT_DB}) committed per measurement: rerun the same command to resume after any kill.

Without a GPU, kernels run through the Triton interpreter (TRITON_INTERPRET=1); those timings are
labelled interpreted and are not for tuning. Python: mlatune.store.results(db) -> DataFrame.

\b
Exit codes (all commands):
  0  success
  1  runtime failure (worker could not start, store not writable, a check failed,
     a workload with no correct config)
  2  usage or spec error (bad option, malformed spec), reported before any GPU work
"""


@click.group(help=MAIN_HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="mlatune")
def main():
    pass


def _devices(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        out = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected GPU indices like 0,1; got {value!r}", param_hint="--devices") from None
    if not out or any(i < 0 for i in out) or len(set(out)) != len(out):
        raise click.BadParameter(f"expected distinct GPU indices like 0,1; got {value!r}", param_hint="--devices")
    return out


@main.command()
@click.argument("spec", default="sweeps/quick.toml", type=click.Path(dir_okay=False))
@click.option("--db", default=DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
              help="SQLite results file (created if missing). Same spec + same db resumes.")
@click.option("--fresh", is_flag=True, help="Forget this spec's stored measurements (this device and kernel) and start over.")
@click.option("--dry-run", is_flag=True, help="Show the plan (workloads, configs kept and pruned, measurements to run) and exit.")
@click.option("--devices", default=None, help="Comma-separated GPU indices, one worker each, e.g. 0,1. Default: GPU 0.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after N new measurements (resume later).")
@click.option("--strategy", type=click.Choice(["exhaustive", "random", "halving", "coordinate"]), default=None,
              help="Override the spec's [search] strategy.")
@click.option("--budget", default=None, help="Override the spec's [search] budget: a count per workload (16) or a fraction (0.25).")
@click.option("--runner", default=None, hidden=True, help="Dotted module with the kernel launcher (testing).")
@click.option("--jobs", type=click.IntRange(min=0), default=0, show_default=True,
              help="GPU: first compile every variant the plan needs in N processes (fills Triton's cache; "
                   "compiling dominates short sweeps). 0 compiles each variant when it is first measured.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print one line per workload.")
def sweep(spec, db, fresh, dry_run, devices, limit, strategy, budget, runner, jobs, quiet):
    """Verify, time and store every (workload, config) pair a sweep spec asks for.

    SPEC is a TOML sweep spec (default sweeps/quick.toml). For each workload the search strategy picks
    configs; each is checked against the reference first (wrong answers are stored as `incorrect`
    and never selected), then timed. Configs that cannot run here are stored as `invalid` with the
    reason; a worker crash or a run past timing.timeout_s is stored as `crashed` / `timeout` and a
    new worker carries on. Ctrl-C or a kill keeps every finished measurement; run the same command
    again to resume.

    \b
    Examples:
      mlatune sweep sweeps/quick.toml                       # CPU: through the interpreter
      mlatune sweep sweeps/flashmla-bench.toml --db results/h200.db --jobs 16   # compile in parallel first
      mlatune sweep sweeps/deepseek-v3.toml --devices 0,1 --limit 200
      mlatune sweep sweeps/deepseek-v3.toml --dry-run
      mlatune sweep sweeps/flashmla-bench.toml --strategy exhaustive --db results/exh.db
    """
    from .spec import SpecError, load_spec
    from .sweep import Options, SweepFailed

    try:
        sp = load_spec(spec)
    except SpecError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    devs = _devices(devices)
    if strategy:
        sp.search.strategy = strategy
    if budget is not None:
        try:
            b = int(budget) if budget.isdigit() else float(budget)
        except ValueError:
            b = 0
        if not ((isinstance(b, int) and b >= 1) or (isinstance(b, float) and 0 < b <= 1)):
            raise click.BadParameter(f"expected a count >= 1 or a fraction in (0, 1], got {budget!r}", param_hint="--budget")
        sp.search.budget = b
    if sp.search.strategy == "random" and sp.search.budget is None:
        raise click.BadParameter("the random strategy needs a budget", param_hint="--budget")
    if dry_run:
        _dry_run(sp, db)
        return
    opts = Options(db=db, fresh=fresh, devices=devs, limit=limit, jobs=jobs)
    if runner:
        opts.runner = runner
    from .progress import run_with_progress

    try:
        summary = run_with_progress(sp, opts, quiet=quiet)
    except SweepFailed as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE if "--devices" in str(e) else EXIT_FAIL)
    except KeyboardInterrupt:
        click.echo("interrupted: finished measurements are stored; rerun the same command to resume", err=True)
        sys.exit(130)
    if summary.failed:
        for k, why in summary.failed.items():
            click.echo(f"error: workload {k}: {why}", err=True)
        sys.exit(EXIT_FAIL)
    if not summary.stopped:
        from .sweep import make_plan

        missing = [p.key for p in make_plan(sp) if p.key not in summary.best]
        if missing:
            click.echo(f"error: no correct config for {len(missing)} workload(s): {', '.join(missing[:5])}", err=True)
            sys.exit(EXIT_FAIL)


def _dry_run(sp, db):
    from rich.console import Console
    from rich.table import Table

    from .space import device_runs_gluon, device_smem_limit
    from .spec import wkey
    from .sweep import kernel_hash, make_plan

    dev = "cpu" if INTERPRETED else "cuda:0"
    plan = make_plan(sp, device_smem_limit(dev), device_runs_gluon(dev))
    done = {}
    if os.path.exists(db):
        from .store import results

        df = results(db, kernel_hash=kernel_hash())
        done = df.groupby("workload_key").size().to_dict() if len(df) else {}
    t = Table(title=f"{sp.name}: {len(plan)} workloads, strategy {sp.search.strategy}"
              + (f" (budget {sp.search.budget})" if sp.search.budget is not None else ""))
    for col in ("workload", "configs", "pruned invalid", "excluded", "to measure", "stored"):
        t.add_column(col, justify="left" if col == "workload" else "right", no_wrap=col == "workload")
    tot = [0, 0, 0, 0, 0]
    for p in plan:
        row = [len(p.space.valid), len(p.space.invalid), len(p.space.excluded), p.planned, done.get(wkey(p.workload), 0)]
        tot = [a + b for a, b in zip(tot, row)]
        t.add_row(p.key, *map(str, row))
    t.add_row("total", *map(str, tot), style="bold")
    con = Console()
    con.print(t)
    mode = "Triton interpreter (timings not for tuning)" if INTERPRETED else "GPU"
    con.print(f"{tot[3]} measurements planned on the {mode}; db {db}. "
              f"Timing: warmup {sp.timing.warmup}, reps {sp.timing.min_reps}..{sp.timing.max_reps}, "
              f"noise target {sp.timing.target_noise:g}, cap {sp.timing.time_cap_s:g} s, graph {sp.timing.graph}, "
              f"timeout {sp.timing.timeout_s:g} s per variant.")


@main.command()
@click.option("--batch", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--seqlen", default=300, show_default=True, type=click.IntRange(min=0))
@click.option("--h-q", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--s-q", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--kv-format", default="bf16", show_default=True, type=click.Choice(["bf16", "fp8", "fp8_flashmla"]))
@click.option("--page-size", default=64, show_default=True, type=int)
@click.option("--dist", default="fixed", show_default=True, type=click.Choice(["fixed", "normal", "lognormal"]))
@click.option("--causal/--no-causal", default=True, show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
def check(batch, seqlen, h_q, s_q, kv_format, page_size, dist, causal, seed):
    """Run the kernel once (default config) on a small workload and compare with the fp32 reference.

    Works without a GPU through the Triton interpreter. Exit 0 if the output passes the gate
    (relative L2 error of out, lse error, inf positions, no NaN, all of out written), 1 if not.
    """
    import torch

    md = importlib.import_module("mlatune.kernels.mla_decode")
    from .verify import LSE_TOL, OUT_REL_TOL, device_inputs, reference, verify_config
    from .workload import Workload

    try:
        w = Workload(batch, seqlen, h_q, s_q, kv_format, page_size, dist, causal)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    dev = "cpu" if INTERPRETED else "cuda"
    cfg = md.default_config(h_q, s_q)
    inputs = device_inputs(w, dev, seed)
    ref = reference(inputs, causal)
    chk = verify_config(md, inputs, ref, cfg, causal)
    where = "Triton interpreter (cpu)" if INTERPRETED else torch.cuda.get_device_name()
    click.echo(f"workload {w.key()} causal={causal} config {cfg.key()} on {where}")
    click.echo(f"  out relative L2 error {chk.err_rel:.3g} (tol {OUT_REL_TOL:g})")
    click.echo(f"  lse max abs error     {chk.err_lse:.3g} (tol {LSE_TOL:g}*max(1,|lse|))")
    click.echo("PASS" if chk.ok else f"FAIL: {chk.reason}")
    sys.exit(EXIT_OK if chk.ok else EXIT_FAIL)


@main.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False))
@click.option("--sweep", "sweep_name", default=None, help="Only rows measured by this sweep (spec name).")
@click.option("--all-hashes", is_flag=True, help="Include rows from other kernel source hashes (stale kernels).")
def results(db, sweep_name, all_hashes):
    """Summarize a results database: outcomes per device and the best config per workload.

    For anything more, use Python: `from mlatune.store import results; df = results("results/mlatune.db")`
    gives one row per measurement (workload fields, knobs, status, reason, time_us, p20/p80, GB/s, TFLOPS,
    err_rel, interpreted, ...).
    """
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from .store import results as load
    from .sweep import kernel_hash

    filt = {} if all_hashes else {"kernel_hash": kernel_hash()}
    if sweep_name:
        filt["sweep"] = sweep_name
    try:
        df = load(db, **filt)
    except FileNotFoundError as e:
        click.echo(f"error: {e}; run `mlatune sweep` first", err=True)
        sys.exit(EXIT_FAIL)
    con = Console()
    if df.empty:
        con.print(f"no measurements in {db}" + (f" for {filt}" if filt else ""))
        return
    counts = df.groupby(["device", "status"]).size().unstack(fill_value=0)
    t = Table(title=f"{db}: {len(df)} measurements")
    t.add_column("device")
    for s in counts.columns:
        t.add_column(s, justify="right")
    for dev, row in counts.iterrows():
        t.add_row(str(dev), *(str(int(v)) for v in row))
    con.print(t)
    ok = df[df.status == "ok"].sort_values("time_us")
    tried = df.groupby(["device", "workload_key"]).size()
    for dev, g in ok.groupby("device"):
        best = g.groupby("workload_key", sort=False).head(1).sort_values("workload_key")
        t = Table(title=f"best config per workload on {dev}")
        for col in ("workload", "config", "time us", "spread", "GB/s", "TFLOPS", "of copy BW", "tried"):
            t.add_column(col, justify="left" if col in ("workload", "config") else "right", no_wrap=col == "workload")
        for _, r in best.iterrows():
            frac = f"{r.frac_copy_bw:.0%}" if pd.notna(r.frac_copy_bw) else "-"
            spread = f"{(r.p80_us - r.p20_us) / r.time_us:.1%}" if pd.notna(r.p80_us) else "-"
            t.add_row(r.workload_key, r.config_key, f"{r.time_us:.1f}", spread, f"{r.gbps:.0f}", f"{r.tflops:.1f}",
                      frac, str(tried[(dev, r.workload_key)]))
        con.print(t)
    if df.interpreted.any():
        con.print("[yellow]rows from the Triton interpreter (cpu) are not for tuning[/yellow]")


@main.command("compare-search")
@click.argument("exhaustive_db", type=click.Path(exists=True, dir_okay=False))
@click.argument("smart_db", type=click.Path(exists=True, dir_okay=False))
def compare_search(exhaustive_db, smart_db):
    """How close a smart search got to an exhaustive one, and with what fraction of the measurements.

    Run the same spec twice on one GPU, e.g.

    \b
      mlatune sweep S.toml --strategy exhaustive --db results/exh.db
      mlatune sweep S.toml --strategy halving --budget 0.25 --db results/smart.db
      mlatune compare-search results/exh.db results/smart.db

    ratio = the exhaustive run's time of the config the smart run picked / the exhaustive best.
    """
    from rich.console import Console
    from rich.table import Table

    from .search import compare_strategies
    from .store import results as load
    from .sweep import kernel_hash

    h = kernel_hash()
    df = compare_strategies(load(exhaustive_db, kernel_hash=h), load(smart_db, kernel_hash=h))
    if df.empty:
        click.echo("no workload has ok measurements in both databases", err=True)
        sys.exit(EXIT_FAIL)
    t = Table(title="smart search vs exhaustive")
    for c in ("workload", "exhaustive best", "us", "smart pick", "ratio", "measured", "of space"):
        t.add_column(c, justify="left" if c in ("workload", "exhaustive best", "smart pick") else "right", no_wrap=c == "workload")
    for _, r in df.iterrows():
        t.add_row(r.workload_key, r.exhaustive_config, f"{r.exhaustive_best_us:.1f}", r.smart_config, f"{r.ratio:.3f}",
                  str(r.measured), f"{r.frac:.0%}")
    Console().print(t)
    gm = float(df.ratio.prod() ** (1 / len(df)))
    click.echo(f"workloads {len(df)}: geomean ratio {gm:.4f}, worst {df.ratio.max():.4f}, "
               f"within 2%: {(df.ratio <= 1.02).mean():.0%}; measurements {df.measured.sum()} of {df.space.sum()} "
               f"({df.measured.sum() / df.space.sum():.1%})")


try:
    from .cli_tables import register
except ImportError:
    register = None
if register is not None:
    register(main)


if __name__ == "__main__":
    main()
