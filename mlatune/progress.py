"""Rich progress display for a sweep: bar with ETA, outcome counts, best so far per workload, final summary."""
from __future__ import annotations

import threading
from collections import Counter

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .sweep import Options, Summary, Sweep

STATUS_STYLE = {"ok": "green", "invalid": "yellow", "incorrect": "red", "crashed": "magenta", "timeout": "cyan"}


class Display:
    def __init__(self, console: Console, quiet: bool):
        self.console, self.quiet = console, quiet
        self.lock = threading.Lock()
        self.counts = Counter()
        self.skipped = 0
        self.best: dict[str, tuple[float, str]] = {}
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console)
        self.task = None
        self.live = None
        self.interpreted = False

    def counts_text(self) -> str:
        parts = [f"[{STATUS_STYLE[s]}]{s} {self.counts[s]}[/]" for s in STATUS_STYLE]
        return " ".join(parts) + (f" skipped {self.skipped}" if self.skipped else "")

    def best_table(self, n: int = 8) -> Table:
        t = Table(title="best so far" + (" (interpreter: not for tuning)" if self.interpreted else ""), title_justify="left")
        for c in ("workload", "config", "time us"):
            t.add_column(c, justify="right" if c == "time us" else "left")
        for k, (tm, cfg) in list(self.best.items())[-n:]:
            t.add_row(k, cfg, f"{tm:.1f}")
        return t

    def render(self):
        return Group(self.progress, self.best_table())

    def __call__(self, e: dict):
        with self.lock:
            kind = e["kind"]
            if kind == "start":
                self.interpreted = e["interpreted"]
                total = sum(p.planned + len(p.space.invalid) for p in e["plan"])
                mode = "Triton interpreter: timings not for tuning" if e["interpreted"] else e["device"]
                self.console.print(f"run {e['run_id']} on {mode}: {len(e['plan'])} workloads, up to {total} measurements")
                self.task = self.progress.add_task("", total=total)
                if not self.quiet:
                    self.live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
                    self.live.start()
            elif kind == "result":
                if e["new"]:
                    self.counts[e["status"]] += 1
                else:
                    self.skipped += 1
                if e["status"] == "ok" and e["time_us"] is not None:
                    b = self.best.get(e["key"])
                    if b is None or e["time_us"] < b[0]:
                        self.best[e["key"]] = (e["time_us"], e["config"])
                if self.task is not None:
                    self.progress.update(self.task, advance=1, description=self.counts_text())
            elif kind == "workload_done" and self.quiet:
                b = self.best.get(e["key"])
                self.console.print(f"{e['key']}: " + (f"best {b[1]} {b[0]:.1f} us" if b else "no correct config")
                                   + f"  [{self.counts_text()}]")
            elif kind in ("info", "fresh", "workload_failed"):
                text = e.get("text") or (f"--fresh: forgot {e['deleted']} stored measurements" if kind == "fresh"
                                         else f"workload {e.get('key')} failed: {e.get('reason')}")
                self.console.print(text)
            if self.live is not None:
                self.live.update(self.render())

    def close(self):
        if self.live is not None:
            self.live.stop()
            self.live = None


def summary_table(s: Summary) -> Table:
    t = Table(title=f"run {s.run_id} on {s.device}" + (" (interpreter: not for tuning)" if s.interpreted else ""))
    for c in ("workload", "best config", "time us", "GB/s", "of copy BW"):
        t.add_column(c, justify="left" if c in ("workload", "best config") else "right", no_wrap=c == "workload")
    for k in sorted(s.best):
        b = s.best[k]
        t.add_row(k, b.config, f"{b.time_us:.1f}", f"{b.gbps:.0f}" if b.gbps else "-",
                  f"{b.frac_copy_bw:.0%}" if b.frac_copy_bw else "-")
    return t


def run_with_progress(spec, opts: Options, quiet: bool = False, console: Console | None = None) -> Summary:
    console = console or Console(stderr=False)
    disp = Display(console, quiet or not console.is_terminal)
    try:
        s = Sweep(spec, opts, disp).run()
    finally:
        disp.close()
    console.print(summary_table(s))
    counts = ", ".join(f"{k} {s.counts[k]}" for k in STATUS_STYLE)
    console.print(f"new measurements: {s.measured} ({counts}); already stored: {s.skipped}"
                  + ("; stopped at --limit, rerun to continue" if s.stopped else ""))
    return s
