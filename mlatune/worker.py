"""Kernel worker subprocess (JSON lines over pipes) and the parent-side handle that restarts it after a crash or hang."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

DEFAULT_RUNNER = "mlatune.kernels.mla_decode"


class WorkerDied(RuntimeError):
    """The worker exited (crash, abort, fatal CUDA error); the message says how."""


class WorkerTimeout(RuntimeError):
    """The worker did not answer in time and was killed."""


class WorkerStartFailed(RuntimeError):
    """A fresh worker did not come up (bad runner module, broken install): nothing can run."""


# ---------------------------------------------------------------- parent side

class Worker:
    """One worker process bound to a device. call() raises WorkerDied / WorkerTimeout and leaves it dead;
    the next call starts a fresh one."""

    def __init__(self, device: str, runner: str = DEFAULT_RUNNER, interpret: bool = False, start_timeout: float = 180.0):
        self.device, self.runner, self.interpret, self.start_timeout = device, runner, interpret, start_timeout
        self.proc = None
        self.lines: queue.Queue | None = None
        self.log = None
        self.prepared = None  # workload key whose inputs the live worker holds
        self.starts = 0

    def _spawn(self):
        env = dict(os.environ)
        if self.interpret:
            env["TRITON_INTERPRET"] = "1"
        else:
            env.pop("TRITON_INTERPRET", None)
        self.log = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlatune.worker", "--runner", self.runner, "--device", self.device],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
            start_new_session=True)  # Ctrl-C reaches the sweep, which stops its workers itself
        self.lines = queue.Queue()
        self.prepared = None
        self.starts += 1
        threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        try:
            self._read(self.start_timeout, "starting")
        except (WorkerDied, WorkerTimeout) as e:
            self.kill()
            raise WorkerStartFailed(f"kernel worker on {self.device} did not start: {e}") from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def call(self, req: dict, timeout: float) -> dict:
        if not self.alive():
            self._spawn()
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            raise WorkerDied(self._death("while sending a request")) from None
        resp = self._read(timeout, req.get("op", "?"))
        if resp.get("fatal"):  # the worker replied, then exits: its CUDA context is unusable
            self.kill()
        return resp

    def _read(self, timeout: float, what: str) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerTimeout(f"no answer {what} within {timeout:g} s; worker killed") from None
        if line is None:
            raise WorkerDied(self._death(what))
        return json.loads(line)

    def _death(self, what: str) -> str:
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.returncode
        if rc is not None and rc < 0:
            import signal

            how = f"killed by signal {signal.Signals(-rc).name}"
        else:
            how = f"exited with code {rc}"
        tail = self.stderr_tail()
        return f"worker {how} {what}" + (f": {tail}" if tail else "")

    def stderr_tail(self, n: int = 400) -> str:
        if self.log is None:
            return ""
        try:
            self.log.seek(0, 2)
            size = self.log.tell()
            self.log.seek(max(0, size - 4000))
            txt = self.log.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""
        lines = [ln for ln in txt.strip().splitlines() if ln.strip()]
        return " | ".join(lines[-4:])[-n:]

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.prepared = None

    def close(self):
        if self.alive():
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        if self.log is not None:
            self.log.close()
            self.log = None


def _pump(stream, q: queue.Queue):
    for line in iter(stream.readline, b""):
        if line.startswith(b"{"):
            q.put(line.decode())
    q.put(None)


# ---------------------------------------------------------------- worker side

class _State:
    def __init__(self, runner: str, device: str):
        import importlib

        self.runner = importlib.import_module(runner)
        self.device = device
        self.w = None


def _info(st: _State, req: dict) -> dict:
    import torch
    import triton

    d = {"torch": torch.__version__, "triton": triton.__version__, "cuda": torch.version.cuda,
         "interpreted": not st.device.startswith("cuda")}
    if st.device.startswith("cuda"):
        p = torch.cuda.get_device_properties(torch.device(st.device))
        d.update(name=p.name, smem_limit=p.shared_memory_per_block_optin, sms=p.multi_processor_count)
    else:
        from .device import INTERPRETER

        d.update(name=INTERPRETER, smem_limit=None, sms=None)
    return d


def _prepare(st: _State, req: dict) -> dict:
    from .verify import device_inputs, reference
    from .workload import Workload, timing_seqlens

    st.w = None
    w = Workload(**req["workload"])
    seed = int(req.get("seed", 0))
    st.timing_inputs = device_inputs(w, st.device, seed, seqlens=timing_seqlens(w))
    st.verify_inputs = device_inputs(w, st.device, seed + 1)  # fresh lengths too: more cases for the gate
    st.ref = reference(st.verify_inputs, w.causal)
    st.w = w
    return {"ok": True, "total_tokens": int(st.timing_inputs["cache_seqlens"].sum())}


def _measure(st: _State, req: dict) -> dict:
    from . import bench
    from .kernels.config import Config
    from .verify import make_launch, verify_config

    if st.w is None:
        return {"status": "crashed", "reason": "no workload prepared"}
    cfg = Config.from_dict(req["config"])
    t = req["timing"]
    short = req.get("fidelity", 1) == 0
    chk = verify_config(st.runner, st.verify_inputs, st.ref, cfg, st.w.causal)
    res = {"err_rel": chk.err_rel, "err_lse": chk.err_lse}
    if not chk.ok:
        return {**res, "status": "incorrect", "reason": chk.reason}
    fn, _, _ = make_launch(st.runner, st.timing_inputs, cfg, st.w.causal)
    if st.device.startswith("cuda"):
        reps = t["short_reps"] if short else None
        tm = bench.time_cuda(fn, warmup=t["warmup"], min_reps=reps or t["min_reps"], max_reps=reps or t["max_reps"],
                             target_noise=t["target_noise"], time_cap_s=t["time_cap_s"] / (10 if short else 1),
                             use_graph=t["graph"])
    else:
        tm = bench.time_cpu(fn, reps=1 if short else max(1, min(t["min_reps"], 3)))
    return {**res, "status": "ok", "time_us": tm.median_us, "p20_us": tm.p20_us, "p80_us": tm.p80_us,
            "reps": tm.reps, "interpreted": tm.interpreted, "graph": tm.graph}


def _ceilings(st: _State, req: dict) -> dict:
    from .device import measure_ceilings

    return measure_ceilings(st.device)


def _classify(e: BaseException) -> dict:
    """Turn an exception into a status: compile/resource failures are invalid, the rest crashed."""
    name = type(e).__name__
    mod = type(e).__module__ or ""
    msg = f"{name}: {e}".strip()[:2000]
    if name in ("OutOfResources", "CompilationError", "CompileTimeAssertionFailure") or mod.startswith("triton.compiler"):
        return {"status": "invalid", "reason": msg}
    if isinstance(e, ValueError) and "invalid config" in str(e):
        return {"status": "invalid", "reason": msg}
    fatal = any(s in str(e) for s in ("CUDA error", "illegal memory access", "device-side assert", "CUDA_ERROR",
                                      "unspecified launch failure", "misaligned address")) or name == "AcceleratorError"
    return {"status": "crashed", "reason": msg, "fatal": fatal}


_OPS = {"info": _info, "prepare": _prepare, "measure": _measure, "ceilings": _ceilings}


def main(argv=None) -> int:
    import argparse
    import faulthandler

    ap = argparse.ArgumentParser(description="mlatune kernel worker (internal): JSON requests on stdin, answers on stdout")
    ap.add_argument("--runner", default=DEFAULT_RUNNER)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    # Answers go to a private copy of stdout; anything the libraries print goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    faulthandler.enable()
    if not a.device.startswith("cuda"):
        os.environ["TRITON_INTERPRET"] = "1"
    st = _State(a.runner, a.device)
    if a.device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(a.device))
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        t0 = time.perf_counter()
        try:
            resp = _OPS[req["op"]](st, req)
        except Exception as e:  # noqa: BLE001 - every failure becomes a recorded status
            resp = _classify(e)
        resp["wall_s"] = time.perf_counter() - t0
        out.write(json.dumps(resp, default=float) + "\n")
        if resp.get("fatal"):
            out.flush()
            os._exit(3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
