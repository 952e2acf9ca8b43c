"""The debug executor: where a run's time goes, kernel by kernel.

A profile runs every kernel through its own packed entry (the native entry runs them all in
one call, so it cannot be timed per kernel), times each call, and reports per kernel the
median time per run, its share of the total, GFLOP/s, GB/s and the fraction of the machine's
peak, with the graph ops it was made from (their Relay lines or ONNX node names, which the
parser and importer record as op locations and outlining gathers on the kernel).

FLOPs come from the op-level cost model below (`op_flops`, one small function per op family,
applied to the graph ops fused into the kernel); bytes are the sizes of the kernel's argument
buffers, each counted once: what the kernel must at least read or write.
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp, TensorType
from xdsl.ir import Operation

from lathe.dialects import graph
from lathe.dialects.dtypes import np_dtype
from lathe.dialects.functions import is_kernel
from lathe.dialects.graph import OpPattern
from lathe.errors import LatheError
from lathe.passes.outline import kernel_sources

# -- the op-level cost model ------------------------------------------------------------------
# FLOPs of one graph op from its operand and result types. A multiply-add is 2; an elementwise
# op (exp and erf included) is 1 per output element; a reduction 1 per input element; data
# movement (reshape, transpose, pad, gather, ...) is 0. What a lowering adds (a padded copy, a
# packed weight) is not counted: the model is the op's arithmetic, the same whatever the schedule.


def _numel(t) -> int:
    return math.prod(t.get_shape()) if isinstance(t, TensorType) else 0


def _out(op: Operation) -> int:
    return sum(_numel(r.type) for r in op.results)


def _in(op: Operation) -> int:
    return _numel(op.operands[0].type) if op.operands else 0


def _contraction(op: Operation) -> float:
    """dense, matmul, batch_matmul and their packed forms: 2·M·N·K, K from the first operand."""
    shape = op.operands[0].type.get_shape()  # type: ignore[attr-defined]
    k = shape[-2] if op.attrs().get("transpose_a") else shape[-1]  # type: ignore[attr-defined]
    return 2.0 * _out(op) * k


def _conv2d(op: Operation) -> float:
    """2·N·K·C·OH·OW·KH·KW/groups: each output element is a dot product over one output
    channel's weights (C/groups · KH · KW of them)."""
    layout = op.attrs()["data_layout"]  # type: ignore[attr-defined]
    out_channels = op.results[0].type.get_shape()[layout.index("C")]  # type: ignore[attr-defined]
    return 2.0 * _out(op) * _numel(op.operands[1].type) / out_channels


def _conv2d_transpose(op: Operation) -> float:
    """Each input element scatters onto one input channel's weights (O/groups · KH · KW)."""
    layout = op.attrs()["data_layout"]  # type: ignore[attr-defined]
    in_channels = op.operands[0].type.get_shape()[layout.index("C")]  # type: ignore[attr-defined]
    return 2.0 * _in(op) * _numel(op.operands[1].type) / in_channels


def _winograd_input(op: Operation) -> float:
    """Bᵀ d B as two dense (m+2) x (m+2) products per tile and channel: 4(m+2) per output."""
    return 4.0 * (op.attrs()["tile_size"] + 2) * _out(op)  # type: ignore[attr-defined]


def _winograd_output(op: Operation) -> float:
    """Aᵀ M A as dense products per tile and channel, m x (m+2) then m x m: 2((m+2)²/m + m+2)
    per output pixel."""
    a = op.attrs()["tile_size"] + 2  # type: ignore[attr-defined]
    return 2.0 * (a * a / (a - 2) + a) * _out(op)


def _pool(op: Operation) -> float:
    return float(_out(op) * math.prod(op.attrs()["pool_size"]))  # type: ignore[attr-defined]


def _per_input(n: float) -> Callable[[Operation], float]:
    return lambda op: n * _in(op)


def _per_output(n: float) -> Callable[[Operation], float]:
    return lambda op: n * _out(op)


def _resize(op: Operation) -> float:
    taps = {"nearest_neighbor": 0, "linear": 4, "cubic": 16}.get(op.attrs()["method"], 4)  # type: ignore[attr-defined]
    return float(_out(op) * max(0, 2 * taps - 1))  # a weighted sum of the taps


FLOPS: dict[type, Callable[[Operation], float]] = {
    **dict.fromkeys(
        (graph.DenseOp, graph.DensePackOp, graph.MatmulOp, graph.BatchMatmulOp, graph.BatchMatmulPackOp),
        _contraction,
    ),
    graph.Conv2dOp: _conv2d,
    graph.Conv2dTransposeOp: _conv2d_transpose,
    graph.WinogradInputTransformOp: _winograd_input,
    graph.WinogradOutputTransformOp: _winograd_output,
    graph.MaxPool2dOp: _pool,
    graph.AvgPool2dOp: _pool,
    graph.GlobalAvgPool2dOp: _per_input(1),
    graph.GlobalMaxPool2dOp: _per_input(1),
    graph.AdaptiveAvgPool2dOp: _per_input(1),
    graph.SoftmaxOp: _per_input(4),  # max, exp of the difference, sum, divide
    graph.LogSoftmaxOp: _per_input(4),  # max, exp of the difference, sum, subtract the log
    graph.LayerNormOp: _per_input(7),  # mean, variance (2), normalise (2), scale, shift
    graph.BatchNormOp: _per_input(2),  # inference: one multiply-add per element
    graph.LRNOp: lambda op: (op.attrs()["size"] + 3.0) * _in(op),  # type: ignore[attr-defined]
    graph.VarianceOp: _per_input(3),  # mean, then a difference squared and summed
    graph.DropoutOp: _per_output(0),  # inference: the identity
    graph.Resize2dOp: _resize,
    **dict.fromkeys((graph.ZerosLikeOp, graph.OnesLikeOp, graph.FullLikeOp), _per_output(0)),
}

# Ops without an entry cost by their pattern: arithmetic on each output element, a fold over
# each input element, or nothing for data movement.
_BY_PATTERN: dict[OpPattern, Callable[[Operation], float]] = {
    OpPattern.ELEMWISE: _per_output(1),
    OpPattern.BROADCAST: _per_output(1),
    OpPattern.INJECTIVE: _per_output(0),
    OpPattern.COMM_REDUCE: _per_input(1),
    OpPattern.TUPLE: _per_output(0),
    OpPattern.OPAQUE: _per_input(1),
}


def op_flops(op: Operation) -> float:
    """Floating-point operations of one graph op (0 for anything that is not a compute op)."""
    if not isinstance(op, graph.GraphOp) or isinstance(op, graph.ConstantOp):
        return 0.0
    cost = FLOPS.get(type(op)) or _BY_PATTERN.get(op.PATTERN)
    if cost is None:
        raise LatheError(f"the cost model has no rule for '{op.name}' (pattern {op.PATTERN.name})")
    return float(cost(op))


def kernel_flops(kernel: func.FuncOp) -> float:
    """FLOPs of a graph-level kernel: the sum over the graph ops fused into it."""
    return sum(op_flops(op) for op in kernel.walk())


def kernel_bytes(kernel: func.FuncOp) -> int:
    """Bytes of a loop-level kernel's argument buffers (inputs and outputs), each once."""
    return sum(
        math.prod(t.get_shape()) * np.dtype(np_dtype(t.element_type)).itemsize
        for t in kernel.function_type.inputs.data
        if isinstance(t, MemRefType)
    )


# -- the machine's peak ------------------------------------------------------------------------
FMA_UNITS = 2  # vector FMA pipes per core: assumed (two on current x86 server cores), not read


@dataclass(frozen=True)
class Machine:
    """The peak a kernel's throughput is a fraction of."""

    threads: int
    vector_lanes: int  # f32 lanes of the target's widest vector register
    clock_hz: float  # 0 when the machine does not say
    clock_source: str
    bandwidth: float  # bytes/s, measured

    @property
    def peak_flops(self) -> float:
        return self.threads * self.vector_lanes * FMA_UNITS * 2 * self.clock_hz

    def describe(self) -> list[str]:
        if self.clock_hz:
            flops = (
                f"peak {self.peak_flops / 1e9:.1f} GFLOP/s = {self.threads} thread(s) x {self.vector_lanes} f32 lanes "
                f"x {FMA_UNITS} FMA units (assumed) x 2 flops x {self.clock_hz / 1e9:.2f} GHz ({self.clock_source})"
            )
        else:
            flops = "peak FLOP/s unknown: the machine reports no clock (%peak F left blank)"
        bandwidth = (
            f"peak {self.bandwidth / 1e9:.1f} GB/s: one numpy copy of {_COPY_BYTES >> 20} MiB "
            "(bytes read + written, best of 5, one thread; measured once per process)"
        )
        return [flops, bandwidth]


def _clock() -> tuple[float, str]:
    """The core clock in Hz: cpufreq's maximum where the kernel exposes it, else the highest
    'cpu MHz' of /proc/cpuinfo, else 0."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read().strip()) * 1e3, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.lower().startswith("cpu mhz")]
    except (OSError, ValueError, IndexError):
        mhz = []
    return (max(mhz) * 1e6, "/proc/cpuinfo cpu MHz") if mhz else (0.0, "unknown")


_COPY_BYTES = 64 << 20  # beyond any last-level cache this runs on, so the copy goes to memory


@functools.cache
def memory_bandwidth() -> float:
    """Bytes/s of a large numpy copy (read + write), best of five."""
    src = np.ones(_COPY_BYTES // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * _COPY_BYTES / best


def cpu_wait_seconds(this_thread: bool = False) -> float | None:
    """Seconds this process's threads have spent runnable but not running, waiting for a CPU
    that another thread held (Linux's per-thread schedstat run delay, summed over the live
    threads); None where the kernel does not keep it. A kernel's time is wall time: when another
    process holds one of two cores, the pool's worker waits and a parallel kernel runs at the
    caller's one-thread speed, about twice its time (docs/profiling.md, "Contention"). Processes
    of other containers are invisible to `ps`, not to this. A thread's wait leaves the sum when the thread ends: a caller that times
    short-lived threads reads each one's own (`this_thread`) before it ends."""
    total, found = 0, False
    try:
        paths = (
            ["/proc/thread-self"] if this_thread else [f"/proc/self/task/{t}" for t in os.listdir("/proc/self/task")]
        )
    except OSError:
        return None
    for path in paths:
        try:
            with open(f"{path}/schedstat") as f:
                total += int(f.read().split()[1])
            found = True
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9 if found else None


# A profile whose threads waited for a CPU more than this (seconds of waiting per second of
# timing, summed over the threads) was measured on a machine that other processes shared.
CONTENDED = 0.02


def machine(threads: int, vector_lanes: int) -> Machine:
    hz, source = _clock()
    return Machine(threads, vector_lanes, hz, source, memory_bandwidth())


# -- the report ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelProfile:
    """One kernel's row."""

    kernel: str
    calls: int  # per run
    seconds: float  # median per run over the repeats (all its calls in a run together)
    share: float  # of the sum of every kernel's median
    flops: float | None  # per run; None where the kernel's graph ops are not known
    bytes: int  # per run: its argument buffers, once per call
    sources: list[str] = field(default_factory=list)  # `file:line op` or `onnx-node op`

    @property
    def gflops(self) -> float | None:
        return None if self.flops is None or not self.seconds else self.flops / self.seconds / 1e9

    @property
    def gbytes(self) -> float:
        return self.bytes / self.seconds / 1e9 if self.seconds else 0.0


@dataclass(frozen=True)
class Profile:
    """Rows sorted by time, heaviest first, with the machine they are measured against."""

    rows: list[KernelProfile]
    machine: Machine
    repeat: int
    warmup_seconds: float
    run_seconds: float  # median of the kernels run as run() runs them (one native call where there is one)
    # Seconds this process's threads waited for a CPU per second of the timed runs (summed over
    # threads: 1.0 is one thread kept waiting throughout); None where the OS does not say.
    cpu_wait: float | None = None
    clock: str = "perf_counter"  # what timed the kernels: wall time, or `thread_time` (the caller's CPU time)

    @property
    def contended(self) -> bool:
        """Whether other processes held the cores while the kernels were timed, so that
        parallel kernels ran slower than they do on an idle machine."""
        return self.cpu_wait is not None and self.cpu_wait > CONTENDED

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.rows)

    def peak_fraction(self, row: KernelProfile) -> tuple[float | None, float | None]:
        """The row's FLOP/s and bytes/s as fractions of the machine's peaks (None where unknown)."""
        m = self.machine
        f = row.flops / row.seconds / m.peak_flops if row.flops is not None and row.seconds and m.peak_flops else None
        b = row.bytes / row.seconds / m.bandwidth if row.seconds and m.bandwidth else None
        return f, b

    def table(self, max_sources: int = 4) -> str:
        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f}%"

        head = ("kernel", "calls", "time", "share", "GFLOP/s", "GB/s", "%peak F", "%peak B", "source ops")
        body = []
        for r in self.rows:
            f, b = self.peak_fraction(r)
            src = _abbreviated(r.sources[:max_sources])
            src += [f"+{len(r.sources) - max_sources} more"] if len(r.sources) > max_sources else []
            body.append(
                (
                    r.kernel,
                    str(r.calls),
                    _seconds(r.seconds),
                    f"{100 * r.share:.1f}%",
                    "-" if r.gflops is None else f"{r.gflops:.2f}",
                    f"{r.gbytes:.2f}",
                    pct(f),
                    pct(b),
                    ", ".join(src) or "-",
                )
            )
        widths = [max(len(x[k]) for x in [head, *body]) for k in range(len(head) - 1)]

        def line(cells) -> str:
            left = [f"{cells[0]:<{widths[0]}}"] + [f"{c:>{w}}" for c, w in zip(cells[1:-1], widths[1:])]
            return "  ".join([*left, cells[-1]])

        out = [line(head), *map(line, body)]
        timed_by = "" if self.clock == "perf_counter" else f", timed by time.{self.clock} (one thread's CPU time)"
        out.append(
            f"total {_seconds(self.total_seconds)} (the sum of {len(self.rows)} kernel medians over {self.repeat} runs, "
            f"each kernel called on its own after a {self.warmup_seconds:g} s warm-up{timed_by}); "
            f"the same kernels as run() calls them (one native call where there is one): {_seconds(self.run_seconds)}"
        )
        if self.cpu_wait is None:
            out.append("CPU contention unknown (no schedstat): a busy machine would slow the parallel kernels")
        else:
            out.append(
                f"this process's threads waited for a CPU {self.cpu_wait:.3f} s per s of timing"
                + (
                    ": other processes held the cores, parallel kernels are slower than on an idle machine"
                    if self.contended
                    else " (no contention)"
                )
            )
        out += self.machine.describe()
        out.append(
            "FLOPs: the op-level cost model (runtime/profiler.py); bytes: the kernel's argument buffers, once "
            "(a kernel whose buffers stay in cache can pass 100% of the memory's bandwidth)"
        )
        return "\n".join(out)

    def to_json(self) -> str:
        return json.dumps(
            {
                "repeat": self.repeat,
                "warmup_seconds": self.warmup_seconds,
                "run_seconds": self.run_seconds,
                "cpu_wait": self.cpu_wait,
                "clock": self.clock,
                "total_seconds": self.total_seconds,
                "machine": {**asdict(self.machine), "peak_flops": self.machine.peak_flops},
                "rows": [
                    {**asdict(r), "gflops": r.gflops, "gbytes_per_s": r.gbytes, "peak_fraction": self.peak_fraction(r)}
                    for r in self.rows
                ],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Profile:
        try:
            d = json.loads(text)
            m = {k: v for k, v in d["machine"].items() if k != "peak_flops"}
            derived = ("gflops", "gbytes_per_s", "peak_fraction")
            rows = [KernelProfile(**{k: v for k, v in r.items() if k not in derived}) for r in d["rows"]]
            return cls(
                rows,
                Machine(**m),
                d["repeat"],
                d["warmup_seconds"],
                d["run_seconds"],
                d.get("cpu_wait"),
                d.get("clock", "perf_counter"),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise LatheError(f"not a Lathe profile: {e}") from None


def _abbreviated(sources: list[str]) -> list[str]:
    """`f.lathe:3 nn.dense, :4 add`: a file named once for a run of entries from it."""
    out, last = [], None
    for s in sources:
        where, _, op = s.partition(" ")
        file, sep, line = where.rpartition(":")
        here = file if sep and line.isdigit() else None
        out.append(f":{line} {op}" if here is not None and here == last else s)
        last = here
    return out


def _seconds(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.3f} ms"


def profile(
    executor,
    loop_module: ModuleOp,
    graph_kernels: Mapping[str, func.FuncOp],
    vector_lanes: int,
    threads: int,
    repeat: int = 30,
    warmup_seconds: float = 1.0,
    clock: Callable[[], float] = time.perf_counter,
) -> Profile:
    """Profile `executor` (a GraphExecutor with its inputs bound) kernel by kernel.

    `loop_module` gives each kernel's argument buffers; `graph_kernels` (the same kernels at
    graph level, by name) their graph ops, for FLOPs and source locations. `clock` times the
    kernels: wall time, or time.thread_time for a one-thread module (GraphExecutor.time_kernels)."""
    if repeat < 1:
        raise LatheError(f"profile: repeat must be at least 1, got {repeat}")
    if clock is time.thread_time and threads > 1:
        raise LatheError(
            f"profile: time.thread_time counts the calling thread's CPU time only, not the pool's "
            f"{threads - 1} worker(s): compile with num_threads=1 to time kernels by CPU time"
        )
    loop_kernels = {f.sym_name.data: f for f in loop_module.ops if is_kernel(f)}
    names = [name for _, _, name in executor.steps]
    executor.time_kernels(0, warmup_seconds)  # the warm-up, not counted in the wait below
    waited, t0 = cpu_wait_seconds(), time.perf_counter()
    runs = executor.time_kernels(repeat, 0.0, clock)
    wall, waited_after = time.perf_counter() - t0, cpu_wait_seconds()
    cpu_wait = max(0.0, waited_after - waited) / wall if waited is not None and waited_after is not None else None
    per_kernel: dict[str, list[float]] = {n: [0.0] * repeat for n in names}
    calls: dict[str, int] = dict.fromkeys(names, 0)
    for name in names:
        calls[name] += 1
    for r, times in enumerate(runs):
        for name, t in zip(names, times):
            per_kernel[name][r] += t
    medians = {n: statistics.median(ts) for n, ts in per_kernel.items()}
    total = sum(medians.values()) or 1.0
    rows = []
    for name, seconds in medians.items():
        g = graph_kernels.get(name)
        rows.append(
            KernelProfile(
                name,
                calls[name],
                seconds,
                seconds / total,
                kernel_flops(g) * calls[name] if g is not None else None,
                kernel_bytes(loop_kernels[name]) * calls[name],  # type: ignore[arg-type]
                kernel_sources(g) if g is not None else [],
            )
        )
    rows.sort(key=lambda r: -r.seconds)
    run_times = []
    for _ in range(max(3, min(repeat, 30))):
        t0 = time.perf_counter()
        executor.execute()
        run_times.append(time.perf_counter() - t0)
    threads = max(1, min(threads, os.cpu_count() or threads))
    return Profile(
        rows,
        machine(threads, vector_lanes),
        repeat,
        warmup_seconds,
        statistics.median(run_times),
        cpu_wait,
        getattr(clock, "__name__", "custom"),
    )
