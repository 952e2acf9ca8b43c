"""Measuring a candidate in a worker process: built, checked, timed, and survived.

Each candidate (a task's kernel with one configuration) is lowered, compiled and run in a
separate process, so a candidate that crashes the process (a bad kernel, an abort in the
code generator) or hangs costs one trial, not the run. The parent waits on the worker
with a timeout per candidate; on a timeout it kills the worker, on a death it records
the exit, and starts a fresh worker for the next candidate. The first run's outputs are
compared with the reference interpreter's: a wrong candidate is recorded as such and is
never chosen.

`LATHE_TUNER_FAULT` makes candidates fail on purpose, for tests: `crash@TEXT`,
`hang@TEXT` or `wrong@TEXT` (several separated by `;`) hits every candidate whose
configuration text contains TEXT (and `die@TEXT` the Dask worker that takes it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import numpy as np

from lathe.errors import LatheError

FAULT_ENV = "LATHE_TUNER_FAULT"
# every trial's outcome is one of these; "died": the Dask worker measuring it was lost (tuner/executors.py)
STATUSES = ("ok", "wrong", "error", "crash", "timeout", "died")
READY_TIMEOUT_S = 120.0  # a fresh worker's imports
WRONG_RTOL = 1e-3  # relative to the reference's largest magnitude: reassociated sums stay well inside
# Below this many FLOPs per byte of its inputs and outputs a kernel is memory-bound when its data
# comes from memory: the roofline's ridge point of a current x86 server core, about 150 GFLOP/s of
# fp32 FMAs (2 ports x 16 lanes x 2 at ~2.5 GHz) against the 14-16 GB/s one thread streams from
# memory on this machine (docs/performance.md, GEMV). A 128^3 matmul has 21, an elementwise add 1/12.
MEMORY_BOUND_FLOPS_PER_BYTE = 10.0
ROTATE_LLC_MULTIPLE = 2  # the rotating sets together: twice the LLC, so a set is evicted before its next turn
ROTATE_MAX_BYTES = 512 << 20  # but no more memory than this, whatever the LLC
FALLBACK_LLC_BYTES = 32 << 20  # where the target's caches are unknown
ROTATE_ALIGN = 64  # each set's buffers start on a cache line (and so are usable in place)


@dataclass(frozen=True)
class Timing:
    """How a candidate is timed: warm up for `warmup_s` (wall time), then `repeat` repeats of
    enough runs to last `min_repeat_s` each; the result is the median of the per-run times."""

    warmup_s: float = 0.05
    repeat: int = 5
    min_repeat_s: float = 0.01
    rotate: bool = True  # memory-bound candidates run on rotating buffers larger than the LLC


@dataclass
class Result:
    status: str
    seconds: float | None = None  # median per-run time
    noise: float | None = None  # interquartile range / median of the repeats
    error: str = ""
    build_s: float = 0.0
    features: list[float] = field(default_factory=list)
    rotate: int = 1  # sets of inputs and outputs the runs cycled through (1: the same buffers every run)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def fault_for(config: str) -> str | None:
    for item in filter(None, os.environ.get(FAULT_ENV, "").split(";")):
        kind, _, text = item.partition("@")
        if text and text in config:
            return kind
    return None


def lower_candidate(task_module: str, config: str, lanes: int):
    """The candidate's loop-level module: the task's kernel scheduled by `config`."""
    from xdsl.dialects.builtin import StringAttr

    from lathe.dialects import make_context
    from lathe.lowering.schedules import CONFIG_ATTR
    from lathe.pipelines import build_pipeline
    from lathe.textual_ir.mlir import parse_mlir
    from lathe.tuner.tasks import KERNEL_NAME, kernels_at_te

    module = parse_mlir(make_context(), task_module, "<candidate>")
    kernels_at_te(module)[KERNEL_NAME].attributes[CONFIG_ATTR] = StringAttr(config)
    build_pipeline(f"apply-default-schedule{{vector_lanes={lanes}}},lower-te-to-loop,cleanup-loops").apply(
        make_context(), module
    )
    return module


def rotation_sets(footprint: int, flops: float | None, llc_bytes: int) -> int:
    """How many sets of buffers (`footprint` bytes each) a candidate's runs cycle through: 1
    for a compute-bound one (or one whose FLOPs are unknown) and for one whose set alone fills
    the LLC, else enough for ROTATE_LLC_MULTIPLE LLCs, within ROTATE_MAX_BYTES."""
    if footprint <= 0 or flops is None or flops / footprint > MEMORY_BOUND_FLOPS_PER_BYTE or footprint >= llc_bytes:
        return 1
    wanted = -(-ROTATE_LLC_MULTIPLE * llc_bytes // footprint)
    return max(1, min(wanted, ROTATE_MAX_BYTES // footprint))


def aligned_bytes(a: np.ndarray) -> int:
    """What one copy of `a` takes among rotating buffers: whole cache lines."""
    return -(-a.nbytes // ROTATE_ALIGN) * ROTATE_ALIGN or ROTATE_ALIGN


def rotating_buffers(arrays: list[np.ndarray], sets: int) -> list[list[np.ndarray]]:
    """`sets` copies of `arrays` (a run's inputs or outputs), each copy's arrays on its own
    cache lines, each array's copies in one allocation; every page written, so the timing
    pays no first-touch faults. Set k is `[a[k] for a in result]`."""
    out = []
    for a in arrays:
        stride = aligned_bytes(a)
        slab = np.empty(stride * sets + ROTATE_ALIGN, np.uint8)
        base = -slab.ctypes.data % ROTATE_ALIGN
        copies = [np.ndarray(a.shape, a.dtype, slab, base + k * stride) for k in range(sets)]
        for c in copies:
            c[...] = a
        out.append(copies)
    return out


def last_level_cache(target) -> int:
    return target.cache_bytes[-1] if target.cache_bytes else FALLBACK_LLC_BYTES


def relative_error(got: np.ndarray, ref: np.ndarray) -> float | None:
    """The largest error relative to the reference's largest magnitude; None if the shapes differ."""
    if got.shape != ref.shape:
        return None
    if not ref.size:
        return 0.0
    scale = max(float(np.abs(ref).max()), 1e-30)
    return float(np.abs(got.astype(np.float64) - ref).max()) / scale


def _wrong(outs: list[np.ndarray], reference: list[np.ndarray], when: str) -> str | None:
    for got, ref in zip(outs, reference):
        err = relative_error(got, ref)
        if err is None or not err <= WRONG_RTOL:
            return f"max relative error {err:.2e}{when}" if err is not None else f"output shape {got.shape}{when}"
    return None


def build_and_time(job: dict) -> Result:
    """In the worker: lower, compile, check against the reference, time."""
    from lathe.backends.registry import resolve_target
    from lathe.dialects.functions import is_kernel, param_names
    from lathe.runtime.graph_executor import GraphExecutor
    from lathe.tuner.features import loop_features

    fault = fault_for(job["config"])
    if fault == "crash":
        os.abort()
    if fault == "hang":
        time.sleep(1e9)
    t0 = time.perf_counter()
    loop = lower_candidate(job["module"], job["config"], job["lanes"])
    features = loop_features(loop)
    backend, target = resolve_target(job["target"])
    lowered = backend.lower(loop, target)
    kernels = backend.load(lowered, target)
    from xdsl.dialects import func

    main = next(f for f in lowered.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
    addresses = {f.sym_name.data: kernels.address(f.sym_name.data) for f in lowered.ops if is_kernel(f)}
    threads = job.get("threads") or target.num_threads
    before = (lambda: kernels.set_num_threads(threads)) if threads else (lambda: None)
    ex = GraphExecutor(
        lowered, addresses, "main", {}, param_names(main), before_run=before, device=backend.device(target)
    )
    build_s = time.perf_counter() - t0
    ex.set_inputs(job["inputs"], {})
    ex.execute()
    out = ex.get_outputs()
    outs = [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]
    if fault == "wrong":
        outs = [o + 1 for o in outs]
    wrong = _wrong(outs, job["reference"], "")
    if wrong:
        return Result("wrong", error=wrong, build_s=build_s, features=features)
    timing: Timing = job["timing"]
    footprint = sum(aligned_bytes(a) for a in [*job["inputs"], *outs])  # one set, as rotating_buffers lays it out
    sets = rotation_sets(footprint, job.get("flops"), last_level_cache(target)) if timing.rotate else 1
    if sets == 1:
        per_run = _time_in_place(ex, timing)
    else:
        per_run = _time_rotating(ex, timing, job["inputs"], outs, sets)
        out = ex.get_outputs()  # the last run's, on a copy of the inputs: the rotation bound them right
        outs = [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]
        wrong = _wrong(outs, job["reference"], " (on a rotated copy of the inputs)")
        if wrong:
            return Result("wrong", error=wrong, build_s=build_s, features=features, rotate=sets)
    med = float(np.median(per_run))
    q1, q3 = np.percentile(per_run, [25, 75])
    noise = float((q3 - q1) / med) if med > 0 else 0.0
    return Result("ok", med, noise, build_s=build_s, features=features, rotate=sets)


def _time_in_place(ex, timing: Timing) -> list[float]:
    """Per-run seconds of each repeat, every run on the buffers bound now."""
    end = time.perf_counter() + timing.warmup_s
    once = time.perf_counter()
    ex.execute()
    once = time.perf_counter() - once
    while time.perf_counter() < end:
        ex.execute()
    number = max(1, int(timing.min_repeat_s / max(once, 1e-7)))
    per_run = []
    for _ in range(timing.repeat):
        t = time.perf_counter()
        for _ in range(number):
            ex.execute()
        per_run.append((time.perf_counter() - t) / number)
    return per_run


def _time_rotating(ex, timing: Timing, inputs: list[np.ndarray], outs: list[np.ndarray], sets: int) -> list[float]:
    """Per-run seconds of each repeat, run k on set k mod `sets`; each run is clocked alone,
    binding its set outside the clock."""
    ins = rotating_buffers(inputs, sets)
    targets = rotating_buffers(outs, sets)
    k = 0

    def run() -> float:
        nonlocal k
        set_out = [t[k] for t in targets]
        # the outputs first: binding them is what run(out=) does before it binds the inputs
        ex.bind_outputs(set_out[0] if len(set_out) == 1 else tuple(set_out))
        ex.set_inputs([i[k] for i in ins], {}, set_out)
        k = (k + 1) % sets
        t = time.perf_counter()
        ex.execute()
        return time.perf_counter() - t

    end = time.perf_counter() + timing.warmup_s
    once = run()
    while time.perf_counter() < end:
        run()
    number = max(1, int(timing.min_repeat_s / max(once, 1e-7)))
    return [sum(run() for _ in range(number)) / number for _ in range(timing.repeat)]


def serve(conn: Connection) -> None:
    """The worker's loop: a job in, a Result out, until told to stop."""
    import lathe.backends.registry  # noqa: F401  (the imports, before the first candidate's clock starts)
    import lathe.tuner.features  # noqa: F401

    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            result = build_and_time(job)
        except Exception as e:  # a candidate that fails to build is a trial's outcome, not the run's
            msg = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            result = Result("error", error=str(msg).splitlines()[0] if str(msg) else traceback.format_exc(limit=1))
        conn.send(result)


class LocalRunner:
    """One worker process at a time (a fresh interpreter, `python -m lathe.tuner.worker`,
    so no JIT state or locks are inherited and a user's script is never re-imported),
    replaced whenever a candidate kills it or overruns `timeout_s`."""

    def __init__(self, timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "lathe.tuner.worker", str(theirs.fileno())], pass_fds=[theirs.fileno()]
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        if not self._conn.poll(READY_TIMEOUT_S) or self._conn.recv() != "ready":
            self._stop(kill=True)
            raise LatheError("the tuner's worker process did not start")

    def _stop(self, kill: bool) -> None:
        if self._proc is None or self._conn is None:
            return
        if not kill:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                kill = True
        if kill:
            self._proc.kill()
            self._proc.wait()
        self._conn.close()
        self._proc = self._conn = None

    def measure(self, job: dict) -> Result:
        if self._proc is None or self._proc.poll() is not None:
            self._stop(kill=True)
            self._start()
        assert self._conn is not None and self._proc is not None
        self._conn.send(job)
        if not self._conn.poll(self.timeout_s):
            self._stop(kill=True)
            return Result("timeout", error=f"no result within {self.timeout_s:g} s")
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            try:
                code = self._proc.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            self._stop(kill=True)
            return Result("crash", error=f"worker died (exit code {code})")

    def close(self) -> None:
        self._stop(kill=False)

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
