"""Sweep orchestration: plan a spec, drive one worker per device through the search, store every outcome."""
from __future__ import annotations

import hashlib
import importlib.util
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

from . import device as devinfo
from . import search
from .space import Space, enumerate_space
from .spec import Spec, wkey
from .store import Store
from .worker import DEFAULT_RUNNER, Worker, WorkerDied, WorkerStartFailed, WorkerTimeout
from .workload import flops_bytes


class SweepFailed(RuntimeError):
    """The sweep could not run (no worker, bad device list, unwritable store)."""


class _Stop(Exception):
    pass


class _WorkloadFailed(Exception):
    pass


@dataclass
class Options:
    db: str = "results/mlatune.db"
    fresh: bool = False
    devices: list[int] | None = None  # GPU indices; None = GPU 0 (or the interpreter without a GPU)
    limit: int | None = None  # stop after this many new measurements
    runner: str = DEFAULT_RUNNER  # dotted module with check_inputs/resolve_splits/launch, signatures as in kernels.mla_decode
    interpret: bool | None = None  # None: use the interpreter only when no GPU is available
    jobs: int = 0  # GPU: compile the plan's variants in this many processes first (0 = compile as measured)


@dataclass
class Best:
    config: str
    time_us: float
    gbps: float | None = None
    frac_copy_bw: float | None = None


@dataclass
class Summary:
    run_id: int = 0
    device: str = ""
    interpreted: bool = False
    counts: Counter = field(default_factory=Counter)  # statuses of new measurements this invocation
    skipped: int = 0  # pairs already in the store
    best: dict = field(default_factory=dict)  # workload key -> Best
    failed: dict = field(default_factory=dict)  # workload key -> reason (inputs could not be built)
    stopped: bool = False  # hit --limit

    @property
    def measured(self) -> int:
        return sum(self.counts.values())


@dataclass
class PlanItem:
    workload: object
    key: str
    space: Space
    planned: int  # measurements the strategy will ask for (halving: upper bound)


def kernel_hash(runner: str = DEFAULT_RUNNER) -> str:
    """The kernel source hash; a planted runner's file is folded in so its results never mix with the real kernel's."""
    from .kernels.config import source_hash

    h = source_hash()
    if runner == DEFAULT_RUNNER:
        return h
    spec = importlib.util.find_spec(runner)
    if spec is None or not spec.origin:
        raise SweepFailed(f"runner module {runner!r} not found")
    with open(spec.origin, "rb") as f:
        return h + "+" + hashlib.sha256(f.read()).hexdigest()[:8]


def local_info(devices: list[str]) -> dict:
    """Device name, smallest shared-memory limit and versions, read here without starting a worker
    (so resuming a finished sweep starts none)."""
    import torch
    import triton

    from .kernels.mla_decode import gluon_runs_on

    info = {"torch": torch.__version__, "triton": triton.__version__, "name": devinfo.INTERPRETER, "smem_limit": None,
            "sm90": False}
    cuda = [torch.device(d) for d in devices if d.startswith("cuda")]
    if cuda:
        props = [torch.cuda.get_device_properties(d) for d in cuda]
        names = sorted({p.name for p in props})
        if len(names) > 1:
            raise SweepFailed(f"--devices mixes GPU models {names}; sweep one model at a time")
        info.update(name=names[0], smem_limit=min(p.shared_memory_per_block_optin for p in props),
                    sm90=all(gluon_runs_on(d) for d in cuda))
    return info


def make_plan(spec: Spec, smem_limit: int | None = None, sm90: bool | None = None) -> list[PlanItem]:
    """Workloads in sweep order (neighbours next to each other, for warm starts) with their config spaces.
    sm90=False records Gluon configs as invalid (they need a Hopper GPU)."""
    ws = sorted(spec.workloads, key=lambda w: (w.kv_format, w.page_size, w.h_q, w.s_q, w.dist, w.causal, w.batch, w.seqlen))
    items = []
    for w in ws:
        sp = enumerate_space(spec, w, smem_limit, sm90)
        items.append(PlanItem(w, wkey(w), sp, search.planned(spec.search.strategy, len(sp.valid), spec.search.budget)))
    return items


def _timing_dict(spec: Spec) -> dict:
    t = spec.timing
    return dict(warmup=t.warmup, min_reps=t.min_reps, max_reps=t.max_reps, target_noise=t.target_noise,
                time_cap_s=t.time_cap_s, graph=t.graph, short_reps=t.short_reps)


class Sweep:
    """One invocation of a sweep. observer(event: dict) is called from device threads."""

    def __init__(self, spec: Spec, opts: Options, observer=None):
        self.spec, self.opts, self.observer = spec, opts, observer or (lambda e: None)
        self.summary = Summary()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.winners: dict = {}  # Workload -> [Config fastest first]
        self.workers: list[Worker] = []
        self.fatal: Exception | None = None

    def emit(self, **e):
        try:
            self.observer(e)
        except Exception:  # noqa: BLE001 - a display bug must not stop a sweep
            pass

    # ---- setup
    def _devices(self) -> tuple[list[str], bool]:
        interpret = self.opts.interpret
        if interpret is None:
            interpret = not devinfo.gpu_available()
        if interpret:
            if self.opts.devices:
                raise SweepFailed("--devices needs CUDA GPUs, and none is available (running through the interpreter)")
            return ["cpu"], True
        import torch

        n = torch.cuda.device_count()
        idx = self.opts.devices or [0]
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise SweepFailed(f"--devices {bad}: this machine has {n} GPU(s), indices 0..{n - 1}")
        return [f"cuda:{i}" for i in idx], False

    def run(self) -> Summary:
        spec, opts, s = self.spec, self.opts, self.summary
        devices, interpret = self._devices()
        khash = kernel_hash(opts.runner)
        self.workers = [Worker(d, opts.runner, interpret, start_timeout=180.0)
                        for d in devices]
        try:
            info = local_info(devices)
            s.device, s.interpreted = info["name"], interpret
            ceil = None if interpret else self._ceilings(info["name"])
            self.ceil = ceil or {}
            smem = info["smem_limit"]
            plan = make_plan(spec, smem, info["sm90"])
            try:
                self.store = Store(opts.db)
            except Exception as e:  # noqa: BLE001
                raise SweepFailed(f"cannot open the results store {opts.db}: {e}") from None
            if opts.fresh:
                n = self.store.forget(s.device, khash, [p.key for p in plan])
                self.emit(kind="fresh", deleted=n)
            idx = [int(d.split(":")[1]) for d in devices if d.startswith("cuda")]
            s.run_id = self.store.start_run(
                sweep=spec.name, spec_path=spec.path, spec_text=spec.text, device=s.device,
                driver=devinfo.driver_version() if not interpret else None, torch=info["torch"], triton=info["triton"],
                kernel_hash=khash, runner=opts.runner, clocks=devinfo.clocks(idx) if idx else None,
                copy_gbps=self.ceil.get("copy_gbps"), mm_tflops=self.ceil.get("mm_tflops"), interpreted=int(interpret))
            self.khash = khash
            if opts.jobs > 1 and not interpret and opts.runner == DEFAULT_RUNNER:
                self._precompile(plan)
            self.emit(kind="start", plan=plan, device=s.device, interpreted=interpret, run_id=s.run_id)
            self._drive(plan)
            outcome = "limit" if s.stopped else ("failed" if s.failed else "done")
            self.store.finish_run(s.run_id, outcome, devinfo.clocks(idx) if idx else None)
            return s
        except SweepFailed:
            if getattr(self, "store", None) is not None and s.run_id:
                self.store.finish_run(s.run_id, "failed")
            raise
        except KeyboardInterrupt:
            self.stop.set()
            for wk in self.workers:
                wk.kill()
            if getattr(self, "store", None) is not None and s.run_id:
                self.store.finish_run(s.run_id, "interrupted")
            raise
        finally:
            for wk in self.workers:
                wk.close()

    def _ceilings(self, name: str) -> dict | None:
        """Cached per device name; otherwise measured once in worker 0."""
        c = devinfo.cached_ceilings(name)
        if c:
            return c
        self.emit(kind="info", text=f"measuring copy bandwidth and matmul peak of {name} (once per device)")
        try:
            c = self.workers[0].call({"op": "ceilings"}, timeout=300)
        except (WorkerDied, WorkerTimeout, WorkerStartFailed) as e:
            self.emit(kind="info", text=f"ceiling measurement failed: {e}")
            return None
        if "copy_gbps" not in c:
            return None
        c = {"copy_gbps": c["copy_gbps"], "mm_tflops": c["mm_tflops"]}
        devinfo.save_ceilings(name, c)
        return c

    # ---- the loop
    def _drive(self, plan: list[PlanItem]):
        todo = list(plan)

        def loop(worker):
            while not self.stop.is_set():
                with self.lock:
                    if not todo:
                        return
                    item = todo.pop(0)
                try:
                    self._workload(worker, item)
                except _Stop:
                    self.stop.set()
                    self.summary.stopped = True
                except _WorkloadFailed as e:
                    self.summary.failed[item.key] = str(e)
                    self.emit(kind="workload_failed", key=item.key, reason=str(e))
                except WorkerStartFailed as e:
                    self.fatal = e
                    self.stop.set()

        threads = [threading.Thread(target=loop, args=(wk,), daemon=True) for wk in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
        if self.fatal is not None:
            raise SweepFailed(str(self.fatal))

    def _workload(self, worker: Worker, item: PlanItem):
        spec, s, w, st = self.spec, self.summary, item.workload, self.store
        self.emit(kind="workload_start", key=item.key, planned=item.planned + len(item.space.invalid))
        for cfg, reason in item.space.invalid:
            if st.lookup(s.device, self.khash, item.key, cfg.key()) is None:
                st.record(s.run_id, s.device, self.khash, w, item.key, cfg, "invalid", reason=reason,
                          interpreted=int(s.interpreted))
                self._count(item.key, cfg, "invalid", None, new=True)
            else:
                self._count(item.key, cfg, "invalid", None, new=False)
        tokens = {}

        def measure(cfg, fidelity):
            prev = st.lookup(s.device, self.khash, item.key, cfg.key())
            if prev and (prev["status"] != "ok" or (prev["fidelity"] or 0) >= fidelity):
                self._count(item.key, cfg, prev["status"], prev["time_us"], new=False)
                return prev["time_us"] if prev["status"] == "ok" else None
            if self.stop.is_set():
                raise _Stop
            with self.lock:
                if self.opts.limit is not None and s.measured >= self.opts.limit:
                    raise _Stop
            if worker.prepared != item.key:
                self._prepare(worker, item, tokens)
            req = {"op": "measure", "config": cfg.to_dict(), "fidelity": fidelity, "timing": _timing_dict(spec)}
            try:
                r = worker.call(req, timeout=spec.timing.timeout_s)
            except WorkerTimeout as e:
                r = {"status": "timeout", "reason": str(e)}
            except WorkerDied as e:
                r = {"status": "crashed", "reason": str(e)}
            if self.stop.is_set() and r["status"] in ("timeout", "crashed"):
                raise _Stop  # killed by Ctrl-C, not by the variant: leave it for the resume
            if r.get("fatal"):
                r["reason"] = (r.get("reason") or "") + " (fatal: worker restarted)"
            m = {k: r.get(k) for k in ("reason", "time_us", "p20_us", "p80_us", "reps", "err_rel", "err_lse")}
            t = r.get("time_us") if r["status"] == "ok" else None
            if t:
                flops, nbytes = flops_bytes(w, tokens["n"])
                m["gbps"] = nbytes / t / 1e3
                m["tflops"] = flops / t / 1e6
                if self.ceil:
                    m["frac_copy_bw"] = m["gbps"] / self.ceil["copy_gbps"]
                    m["frac_mm_peak"] = m["tflops"] / self.ceil["mm_tflops"]
            st.record(s.run_id, s.device, self.khash, w, item.key, cfg, r["status"], fidelity=fidelity,
                      interpreted=int(s.interpreted), **m)
            self._count(item.key, cfg, r["status"], t, new=True, gbps=m.get("gbps"), frac=m.get("frac_copy_bw"))
            return t

        with self.lock:
            winners = dict(self.winners)
        warm = []
        if spec.search.warm_start:  # neighbouring workloads' winners, then the heuristic default
            from .kernels.mla_decode import default_config

            warm = search.warm_configs(w, winners) + [default_config(w.h_q, w.s_q)]
        res = search.run(spec.search.strategy, item.space.valid, measure, spec.search.budget,
                         spec.search.seed, spec.search.eta, warm)
        if res.full:
            with self.lock:
                self.winners[w] = [c for c, _ in sorted(res.full.items(), key=lambda kv: kv[1])]
        self.emit(kind="workload_done", key=item.key, best=s.best.get(item.key))

    def _precompile(self, plan) -> None:
        """Fill Triton's disk cache in parallel; a failure here only costs time (workers compile as they go)."""
        from .compile import precompile, sweep_items

        items = sweep_items(plan)
        t0 = time.time()
        try:
            res = precompile(items, self.opts.jobs)
        except Exception as e:  # noqa: BLE001
            self.emit(kind="info", text=f"parallel compile skipped: {type(e).__name__}: {e}")
            return
        bad = sum(1 for r in res if r[2] != "ok")
        self.emit(kind="info", text=f"compiled {len(res)} variants in {time.time() - t0:.0f} s with {self.opts.jobs} "
                                    f"processes ({bad} failed; the sweep records why)")

    def _prepare(self, worker: Worker, item: PlanItem, tokens: dict):
        seed = (zlib.crc32(item.key.encode()) + 7919 * self.summary.run_id + int(time.time())) % (2**31)
        try:
            r = worker.call({"op": "prepare", "workload": item.workload.to_dict(), "seed": seed},
                            timeout=self.spec.timing.prepare_timeout_s)
        except (WorkerDied, WorkerTimeout) as e:
            raise _WorkloadFailed(f"building inputs and the reference failed: {e}") from None
        if not r.get("ok"):
            raise _WorkloadFailed(f"building inputs and the reference failed: {r.get('reason')}")
        worker.prepared = item.key
        tokens["n"] = r["total_tokens"]

    def _count(self, key, cfg, status, time_us, new: bool, gbps=None, frac=None):
        s = self.summary
        with self.lock:
            if new:
                s.counts[status] += 1
            else:
                s.skipped += 1
            if status == "ok" and time_us is not None:
                b = s.best.get(key)
                if b is None or time_us < b.time_us:
                    s.best[key] = Best(cfg.key(), time_us, gbps, frac)
        self.emit(kind="result", key=key, config=cfg.key(), status=status, time_us=time_us, new=new)


def run_sweep(spec: Spec, opts: Options | None = None, observer=None) -> Summary:
    """Run (or resume) a sweep; see Options. Raises SweepFailed when it cannot run at all."""
    return Sweep(spec, opts or Options(), observer).run()
