"""CLI commands for tuned tables: `mlatune export`, `mlatune check-table` and `mlatune report`."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import click

from . import table as tbl

DB_HELP = "SQLite results database written by `mlatune sweep`."
HASH_HELP = ("Use rows measured with this kernel source hash. Default: the installed kernels' hash, "
             "the only one whose tables the runtime will load.")


def _results(db):
    """Every measurement in the database, as a DataFrame."""
    try:
        from .store import results
    except ImportError as exc:
        raise click.ClickException(f"cannot read results: mlatune.store is not available ({exc})") from None
    try:
        return results(db)
    except FileNotFoundError as exc:
        raise click.ClickException(f"{exc}; run `mlatune sweep` first or pass --db") from None


def _tables(db, sweep, allow_interpreted, kernel_hash):
    df = _results(db)
    try:
        tables = tbl.build_tables(df, sweep, kernel_hash or tbl.INSTALLED, allow_interpreted)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not tables:
        # say why nothing qualified: the usual causes are a stale hash, interpreter rows or a typo in --sweep
        want = kernel_hash or tbl.source_hash()
        ok = df[df["status"] == "ok"]
        lines = [f"no verified measurements to export from {db} (kernel hash {want}"
                 + (f", sweep {', '.join(sweep)}" if sweep else "") + ")",
                 f"  rows: {len(df)}, status ok: {len(ok)}, interpreted ok: {int(ok['interpreted'].astype(bool).sum())}",
                 f"  kernel hashes in the database: {', '.join(sorted(map(str, df['kernel_hash'].unique()))) or '-'}",
                 f"  sweeps in the database: {', '.join(sorted(map(str, df['sweep'].unique()))) or '-'}"]
        if len(ok) and ok["interpreted"].astype(bool).all():
            lines.append("  all ok rows are interpreter timings: pass --allow-interpreted (for testing only)")
        raise click.ClickException("\n".join(lines))
    return tables


def register(main: click.Group) -> None:
    """Add export, check-table and report to the `mlatune` command group."""

    @main.command("export")
    @click.option("--db", default="results/mlatune.db", show_default=True, type=click.Path(dir_okay=False), help=DB_HELP)
    @click.option("--out", default="results/configs", show_default=True, type=click.Path(file_okay=False),
                  help="Folder for the tables; <out>/<DEVICE>/mla_decode_<kv>_p<page>_h<h_q>_s<s_q>.json.")
    @click.option("--sweep", multiple=True, help="Only use measurements from this sweep (its spec name); repeat for several.")
    @click.option("--allow-interpreted", is_flag=True,
                  help="Also use Triton-interpreter timings (CPU). Only for testing the pipeline: they say nothing about GPU speed.")
    @click.option("--kernel-hash", default=None, help=HASH_HELP)
    def export_cmd(db, out, sweep, allow_interpreted, kernel_hash):
        """Write tuned config tables from the sweep database.

        For every (device, KV format, page size, h_q, s_q) measured, one JSON table with an entry per
        (batch, seqlen) bucket: the fastest config that passed verification there. Configs that ever
        produced a wrong answer for that table are never chosen. When the fastest wins by less than
        the measurement noise (its p80 overlaps the runner-up's p20), the config that is also near-best
        at the neighbouring buckets is preferred, so the table is smooth.

        Each table records its provenance: schema version, device, torch and Triton versions, the
        kernel source hash, the sweep and its date, and per entry the time and the speedup over the
        default config. Output is deterministic (sorted keys), so `git diff` of two exports is readable.

        \b
        Example:
          mlatune export --sweep deepseek-v3 --sweep flashmla-bench --sweep defaults
          mlatune check-table results/configs/*/*.json
        """
        tables = _tables(db, sweep, allow_interpreted, kernel_hash)
        for path, t in zip(tbl.write_tables(tables, out), tables):
            note = "  (interpreter timings)" if t["interpreted"] else ""
            click.echo(f"wrote {path}: {len(t['entries'])} entries, batches {t['batches']}, seqlens {t['seqlens']}{note}")

    @main.command("check-table")
    @click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
    @click.option("--ignore-hash", is_flag=True,
                  help="Do not require the table's kernel hash to match the installed kernels.")
    def check_table_cmd(files, ignore_hash):
        """Validate tuned config tables; exit 1 if any has errors.

        Checks the schema version, required keys and their types, that every config is a valid kernel
        config, that bucket entries are unique, that the file and folder names match the content, and
        that the kernel hash matches the installed kernels (the runtime ignores tables that fail any
        of these, with a warning, and falls back to the default config).

        \b
        Example:
          mlatune check-table results/configs/NVIDIA_H200/*.json
        """
        failed = 0
        for f in files:
            try:
                t = tbl.load(f, None if ignore_hash else tbl.INSTALLED)
            except tbl.TableError as exc:
                failed += 1
                click.echo(f"FAIL {f}")
                for p in exc.problems:
                    click.echo(f"  - {p}")
                continue
            d = t.data
            click.echo(f"ok   {f}: {d['device']} {d['kv_format']} page {d['page_size']} h_q {d['h_q']} s_q {d['s_q']}, "
                       f"{len(t.configs)} entries, sweep {d['sweep']} ({d['sweep_date']})")
            if d["interpreted"]:
                click.echo("  note: timings from the Triton interpreter; not for tuning")
        if failed:
            click.echo(f"{failed} of {len(files)} table(s) have errors", err=True)
            raise SystemExit(1)

    @main.command("report")
    @click.option("--db", default="results/mlatune.db", show_default=True, type=click.Path(dir_okay=False), help=DB_HELP)
    @click.option("--out", default="results/plots", show_default=True, type=click.Path(file_okay=False),
                  help="Folder for the PNGs.")
    @click.option("--sweep", multiple=True, help="Only use measurements from this sweep; repeat for several.")
    @click.option("--allow-interpreted", is_flag=True, help="Also use Triton-interpreter timings (testing only).")
    @click.option("--kernel-hash", default=None, help=HASH_HELP)
    def report_cmd(db, out, sweep, allow_interpreted, kernel_hash):
        """Plot the tuned configs: bandwidth and speedup over the default, per shape.

        Uses the same selection as `mlatune export`. For each device, KV format, page size and s_q it
        writes two PNGs with one panel per h_q and one line per batch size, against seqlen:

        \b
          best_<...>.png     achieved TB/s of the chosen config (time in us if bandwidth is missing)
          speedup_<...>.png  chosen config's speedup over the default config (where both were measured)
        """
        tables = _tables(db, sweep, allow_interpreted, kernel_hash)
        for p in plot_tables(tables, out):
            click.echo(f"wrote {p}")


def plot_tables(tables: list[dict], out) -> list[Path]:
    """Write the report PNGs for these tables; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = defaultdict(list)
    for t in tables:
        groups[(t["device"], t["kv_format"], t["page_size"], t["s_q"])].append(t)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for (dev, kv, page, s_q), ts in sorted(groups.items()):
        ts = sorted(ts, key=lambda t: t["h_q"])
        has_bw = all(e.get("gbps") for t in ts for e in t["entries"])
        kinds = [("best", "TB/s" if has_bw else "time (us)",
                  (lambda e: e["gbps"] / 1000) if has_bw else (lambda e: e["time_us"])),
                 ("speedup", "speedup over default", lambda e: e.get("speedup"))]
        all_batches = sorted({b for t in ts for b in t["batches"]})
        color = {b: f"C{i % 10}" for i, b in enumerate(all_batches)}  # one colour per batch in every panel
        for kind, ylabel, value in kinds:
            fig, axes = plt.subplots(1, len(ts), figsize=(4.5 * len(ts), 3.8), squeeze=False)
            for ax, t in zip(axes[0], ts):
                for b in t["batches"]:
                    pts = sorted((e["seqlen"], value(e)) for e in t["entries"] if e["batch"] == b and value(e) is not None)
                    if pts:
                        ax.plot(*zip(*pts), marker="o", ms=3, color=color[b], label=f"batch {b}")
                ax.set_xscale("log", base=2)
                ax.set_title(f"h_q {t['h_q']}")
                ax.set_xlabel("seqlen")
                ax.set_ylabel(ylabel)
                ax.grid(alpha=0.3)
                if kind == "speedup":
                    ax.axhline(1.0, color="grey", lw=0.8)
            for ax in axes[0]:
                if ax.get_legend_handles_labels()[0]:
                    ax.legend(fontsize=7)
            fig.suptitle(f"{dev} {kv} page {page} s_q {s_q}" + (" (interpreter)" if any(t["interpreted"] for t in ts) else ""))
            fig.tight_layout()
            p = out / f"{kind}_{dev}_{kv}_p{page}_s{s_q}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            paths.append(p)
    return paths
