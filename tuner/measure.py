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
configuration text contains TEXT (and `die@TEXT` the Dask worker that takes it);
`fast@TEXT` reports such a candidate 100x faster than it ran (a worker timing the model
does not bear out, which the model check at the end of tuning must catch).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
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
DEFAULTS_KEPT = 8  # built default kernels a worker keeps (one per task it measures; rebuilt when evicted)


@dataclass(frozen=True)
class Timing:
    """How a candidate is timed, beside its task's default configuration in the same worker:
    the first candidate of a round warms the worker up for `round_warmup_s` (wall time, on
    the default: a short warm-up does not reach the steady clock and thread-pool state that
    the model runs in, docs/tuning.md); then each candidate and the default warm up for
    `warmup_s` and run `repeat` repeats of enough runs to last `min_repeat_s` each, the two
    alternating repeat by repeat; the results are the medians of their per-run times.

    `rotate`: None times a memory-bound candidate on rotating buffers that evict its data
    from the cache its model's other kernels evict it from (`evicted_from`: L2 or the LLC);
    True from the LLC (as if every kernel's data came from memory); False all in place."""

    warmup_s: float = 0.05
    repeat: int = 5
    min_repeat_s: float = 0.01
    rotate: bool | None = None
    round_warmup_s: float = 1.0


@dataclass
class Result:
    status: str
    seconds: float | None = None  # median per-run time
    noise: float | None = None  # interquartile range / median of the repeats
    error: str = ""
    build_s: float = 0.0
    features: list[float] = field(default_factory=list)
    rotate: int = 1  # sets of inputs and outputs the runs cycled through (1: the same buffers every run)
    default_s: float | None = None  # the task's default configuration, timed alternating with it

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
    the cache to evict from (`llc_bytes`: the LLC, or L2, `evicted_from`), else enough for
    ROTATE_LLC_MULTIPLE of that cache, within ROTATE_MAX_BYTES."""
    if footprint <= 0 or flops is None or flops / footprint > MEMORY_BOUND_FLOPS_PER_BYTE or footprint >= llc_bytes:
        return 1
    wanted = -(-ROTATE_LLC_MULTIPLE * llc_bytes // footprint)
    return max(1, min(wanted, ROTATE_MAX_BYTES // footprint))


def evicted_from(cache_bytes: tuple[int, ...], activations: int | None) -> int | None:
    """The cache a memory-bound kernel's data is out of when its model calls it: the rotating
    sets together exceed it (ROTATE_LLC_MULTIPLE times), so every run reads from the level
    beyond; None: timed in place. Between two calls of a kernel its model runs others over
    the activations and the weights, so its data has left L2 unless the model's activations
    all fit L2; they stay in the LLC while the activations fit it (on this machine's 300 MiB
    L3 those of every zoo model; BERT-base's memory-bound kernels measured between their
    in-place and their from-memory times in the model, docs/tuning.md), and come from memory
    beyond it. Where the model is not known (`activations` None), from memory, as before."""
    llc = cache_bytes[-1] if cache_bytes else FALLBACK_LLC_BYTES
    l2 = cache_bytes[1] if len(cache_bytes) > 2 else None
    if activations is None or activations > llc or l2 is None:
        return llc
    return l2 if activations > l2 else None


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


class _Built:
    """A candidate compiled into an executor in this worker, its first run's outputs checked."""

    def __init__(self, job: dict, config: str):
        from xdsl.dialects import func

        from lathe.backends.registry import resolve_target
        from lathe.dialects.functions import is_kernel, param_names
        from lathe.runtime.graph_executor import GraphExecutor
        from lathe.tuner.features import loop_features

        t0 = time.perf_counter()
        loop = lower_candidate(job["module"], config, job["lanes"])
        self.features = loop_features(loop)
        backend, self.target = resolve_target(job["target"])
        lowered = backend.lower(loop, self.target)
        self.kernels = backend.load(lowered, self.target)  # kept: the executor calls into it
        main = next(f for f in lowered.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
        addresses = {f.sym_name.data: self.kernels.address(f.sym_name.data) for f in lowered.ops if is_kernel(f)}
        threads = job.get("threads") or self.target.num_threads
        kernels = self.kernels
        before = (lambda: kernels.set_num_threads(threads)) if threads else (lambda: None)
        self.ex = GraphExecutor(
            lowered, addresses, "main", {}, param_names(main), before_run=before, device=backend.device(self.target)
        )
        self.build_s = time.perf_counter() - t0

    def first_run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.ex.bind_outputs(None)
        self.ex.set_inputs(inputs, {})
        self.ex.execute()
        return self.outputs()

    def outputs(self) -> list[np.ndarray]:
        out = self.ex.get_outputs()
        return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


class _WorkerState:
    """What a worker keeps between candidates: the round it is warm for, and the task
    defaults it has built (each round times them again beside its candidates)."""

    def __init__(self) -> None:
        self.round: object = None
        self.defaults: dict[tuple[str, str, str], _Built] = {}

    def default(self, job: dict) -> _Built:
        key = (job["module"], job["default"], job["target"])
        built = self.defaults.pop(key, None)
        if built is None:
            built = _Built(job, job["default"])
            wrong = _wrong(built.first_run(job["inputs"]), job["reference"], " (the task's default configuration)")
            if wrong:
                raise LatheError(wrong)
        self.defaults[key] = built  # most recent last
        while len(self.defaults) > DEFAULTS_KEPT:
            self.defaults.pop(next(iter(self.defaults)))
        return built


_STATE = _WorkerState()


def build_and_time(job: dict) -> Result:
    """In the worker: lower, compile, check against the reference, then time the candidate
    and its task's default configuration (`job["default"]`, if given) alternately, in one
    worker state: the record's ratio to the default is of like timings whatever the load of
    the moment (rounds drift with it, and so do absolute seconds)."""
    fault = fault_for(job["config"])
    if fault == "crash":
        os.abort()
    if fault == "hang":
        time.sleep(1e9)
    cand = _Built(job, job["config"])
    outs = cand.first_run(job["inputs"])
    if fault == "wrong":
        outs = [o + 1 for o in outs]
    wrong = _wrong(outs, job["reference"], "")
    if wrong:
        return Result("wrong", error=wrong, build_s=cand.build_s, features=cand.features)
    base = _STATE.default(job) if job.get("default") not in (None, job["config"]) else None
    timing: Timing = job["timing"]
    footprint = sum(aligned_bytes(a) for a in [*job["inputs"], *outs])  # one set, as rotating_buffers lays it out
    cache = cand.target.cache_bytes
    if timing.rotate is None:
        level = evicted_from(cache, job.get("activations"))
    else:
        level = last_level_cache(cand.target) if timing.rotate else None
    sets = rotation_sets(footprint, job.get("flops"), level) if level else 1
    if sets == 1:
        clocks = [_in_place(b.ex, job["inputs"]) for b in (cand, base) if b]
    else:
        ins, targets = rotating_buffers(job["inputs"], sets), rotating_buffers(outs, sets)
        clocks = [_rotating(b.ex, ins, targets) for b in (cand, base) if b]
    if _STATE.round != job.get("round") or job.get("round") is None:
        _warm_up(clocks[-1], timing.round_warmup_s)  # on the default where there is one
        _STATE.round = job.get("round")
    per_run = _time_alternating(clocks, timing)
    if sets > 1:
        clocks[0](1)  # the candidate last, on a copy of the inputs: the rotation bound them right
        wrong = _wrong(cand.outputs(), job["reference"], " (on a rotated copy of the inputs)")
        if wrong:
            return Result("wrong", error=wrong, build_s=cand.build_s, features=cand.features, rotate=sets)
    med = float(np.median(per_run[0]))
    q1, q3 = np.percentile(per_run[0], [25, 75])
    noise = float((q3 - q1) / med) if med > 0 else 0.0
    if fault == "fast":  # a test's candidate that looks faster in the worker than it runs
        med /= 100.0
    default_s = float(np.median(per_run[1])) if base else med
    return Result("ok", med, noise, build_s=cand.build_s, features=cand.features, rotate=sets, default_s=default_s)


Clock = Callable[[int], float]  # runs a contender n times; the seconds of those runs


def _in_place(ex, inputs: list[np.ndarray]) -> Clock:
    """Every run on the same buffers (the contenders' own outputs, the task's inputs)."""

    def clock(n: int) -> float:
        ex.set_inputs(inputs, {})
        t = time.perf_counter()
        for _ in range(n):
            ex.execute()
        return time.perf_counter() - t

    return clock


def _rotating(ex, ins: list[list[np.ndarray]], targets: list[list[np.ndarray]]) -> Clock:
    """Run k on set k mod the sets' count, each run clocked alone, binding its set outside
    the clock. The contenders share the sets (a set is evicted before either's next turn)."""
    sets = len((ins or targets)[0])
    k = 0

    def clock(n: int) -> float:
        nonlocal k
        total = 0.0
        for _ in range(n):
            set_out = [t[k] for t in targets]
            # the outputs first: binding them is what run(out=) does before it binds the inputs
            ex.bind_outputs(set_out[0] if len(set_out) == 1 else tuple(set_out))
            ex.set_inputs([i[k] for i in ins], {}, set_out)
            k = (k + 1) % sets
            t = time.perf_counter()
            ex.execute()
            total += time.perf_counter() - t
        return total

    return clock


def _warm_up(clock: Clock, seconds: float) -> float:
    """Runs until `seconds` of wall time have passed (at least once); the seconds of one run."""
    end = time.perf_counter() + seconds
    once = clock(1)
    while time.perf_counter() < end:
        clock(1)
    return once


def _time_alternating(clocks: list[Clock], timing: Timing) -> list[list[float]]:
    """Per-run seconds of each repeat of each contender, the contenders taking turns (in
    alternating order, so a drift in the machine's state favours neither)."""
    numbers = [max(1, int(timing.min_repeat_s / max(_warm_up(c, timing.warmup_s), 1e-7))) for c in clocks]
    per_run: list[list[float]] = [[] for _ in clocks]
    for r in range(timing.repeat):
        order = range(len(clocks)) if r % 2 == 0 else reversed(range(len(clocks)))
        for i in order:
            per_run[i].append(clocks[i](numbers[i]) / numbers[i])
    return per_run


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
