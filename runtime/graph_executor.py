"""The graph executor: runs a bufferized glue function with compiled kernels.

The plan is static, as in TVM's graph executor. Every buffer of the glue
function gets a slot in one table of addresses:

- constants (bound parameters, `memref.get_global`) are copied in once;
- intermediates share one arena, placed by a memory plan over their lifetimes
  (`runtime/memory_plan.py`), so storage is reused between buffers that are
  never live at once;
- inputs are used in place when the caller's array is what a kernel argument
  must be (the right dtype and shape, C-contiguous, aligned as kernels assume
  their arguments are: ARGUMENT_ALIGN, numpy's 16 bytes), else copied once into
  a private aligned buffer;
- outputs are written by their kernels directly, so `run()` returns them without
  a copy, into a fresh array for every run unless nothing outside the executor
  still refers to the last run's (then that one is written again: the next run
  never overwrites an array the caller holds); `run(..., out=...)` has the kernels
  write into the caller's arrays instead.

Neither an output nor an input used in place is ever part of the arena, so the
plan cannot make one alias an intermediate. A run binds the inputs' and
outputs' addresses into the table, then calls the backend's native entry (one
call that runs every kernel in order, `KernelLibrary.entry`) or, for a backend
without one, each kernel's packed entry with its prebuilt argument array.
Results are nested again as lower-te-to-loop recorded (`lathe.result_nesting`).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.ir import SSAValue

from lathe.backends.interface import ARGUMENT_ALIGN, Device, HostDevice, KernelLibrary, host_address
from lathe.dialects import graph
from lathe.dialects.dtypes import np_dtype
from lathe.dialects.functions import Nesting, is_kernel, result_nesting
from lathe.dialects.reference import check_value, constant_value
from lathe.errors import LatheError
from lathe.runtime.memory_plan import Lifetime, MemoryPlan, aligned_size, plan_memory

_KERNEL_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_TIMED_ENTRY_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32)
# The clocks time_kernels can read natively, by their clock_gettime ids: the ones Python's
# perf_counter and thread_time read on Linux.
_CLOCK_IDS: dict[Callable[[], float], int] = (
    {time.perf_counter: time.CLOCK_MONOTONIC, time.thread_time: time.CLOCK_THREAD_CPUTIME_ID}
    if sys.platform.startswith("linux")
    else {}
)


@dataclass(frozen=True)
class MemoryReport:
    """What a model's buffers take, in bytes."""

    intermediates: int  # how many
    intermediate_bytes: int  # with a buffer each (what the executor took before it planned)
    arena_bytes: int  # as planned: the peak activation memory of a run
    live_peak_bytes: int  # the most bytes of intermediates live at once (no plan can use less)
    constant_bytes: int  # weights and other constants, allocated once
    input_bytes: int
    output_bytes: int

    @property
    def saving(self) -> float:
        """How many times less the arena takes than a buffer each."""
        return self.intermediate_bytes / max(1, self.arena_bytes)


@dataclass
class _Input:
    name: str
    slot: int
    type: object  # the tensor type check_value compares with
    shape: tuple[int, ...]
    dtype: np.dtype
    staging: object = None  # the private aligned buffer an unusable array is copied into


@dataclass
class _Output:
    slot: int
    shape: tuple[int, ...]
    dtype: np.dtype
    buffer: object = None  # where the kernels write in the current run
    ours: bool = False  # buffer is an aligned array the executor allocated (a view of its own uint8 block)


def _unreferenced(o: _Output) -> bool:
    """Whether the last run's output is one the executor allocated and nothing else refers
    to, neither the array (only o.buffer, and getrefcount's argument) nor its memory through a
    view (a view's base is the block under it, which then has more than the array's
    reference and the argument). A caller who dropped it cannot see it written again, and
    writing it again saves an allocation and finds its lines in cache: the conv row's run()
    13-24 us faster at its minimum and 10th percentile (1 and 2 threads, load 4)."""
    return o.ours and sys.getrefcount(o.buffer) == 2 and sys.getrefcount(o.buffer.base) == 2  # type: ignore[union-attr]


class GraphExecutor:
    def __init__(
        self,
        module: ModuleOp,
        addresses: Mapping[str, int],
        entry: str = "main",
        params: Mapping[str, np.ndarray] | None = None,
        param_names: Sequence[str] = (),
        before_run: Callable[[], None] = lambda: None,
        device: Device | None = None,
        library: KernelLibrary | None = None,
    ):
        self.before_run = before_run  # the backend's per-run setup (its thread count)
        self.device = device = device or HostDevice()  # where the backend's buffers live
        funcs = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
        if entry not in funcs:
            raise LatheError(f"the module has no function @{entry}")
        fn = funcs[entry]
        globals_ = {g.sym_name.data: g for g in module.ops if isinstance(g, memref.GlobalOp)}
        params = params or {}

        slot: dict[SSAValue, int] = {}  # every buffer value of the glue → its slot in the address table
        self._kinds: dict[int, tuple[tuple[int, ...], np.dtype]] = {}  # slot → (shape, dtype)
        self._constants: dict[int, object] = {}  # slot → buffer
        self._inputs: list[_Input] = []
        temps: list[int] = []  # the slots of kernel-written buffers, in program order

        def new_slot(v: SSAValue, t: MemRefType) -> int:
            slot[v] = len(slot)
            self._kinds[slot[v]] = (tuple(t.get_shape()), np.dtype(np_dtype(t.element_type)))
            return slot[v]

        def constant(s: int, value: np.ndarray) -> None:
            self._constants[s] = buffer = device.allocate(*self._kinds[s])
            device.copy_in(buffer, value)

        for name, arg in zip(param_names, fn.body.block.args):
            if not isinstance(arg.type, MemRefType):
                raise LatheError(f"@{entry}: parameter %{name} is not a buffer")
            s = new_slot(arg, arg.type)
            if name in params:
                constant(s, check_value(name, params[name], _tensor_type(arg.type)))
            else:
                self._inputs.append(_Input(name, s, _tensor_type(arg.type), *self._kinds[s]))
        self.input_names = [i.name for i in self._inputs]

        calls: list[tuple[str, list[int]]] = []
        returned: list[SSAValue] = []
        for op in fn.body.block.ops:
            if isinstance(op, memref.AllocOp):
                temps.append(new_slot(op.memref, op.memref.type))  # type: ignore[arg-type]
            elif isinstance(op, memref.GetGlobalOp):
                s = new_slot(op.memref, op.memref.type)  # type: ignore[arg-type]
                constant(s, _global_value(globals_[op.name_.root_reference.data]))
            elif isinstance(op, func.CallOp):
                name = op.callee.root_reference.data
                callee = funcs.get(name)
                if callee is None or not is_kernel(callee):
                    raise LatheError(f"graph executor: @{name} is not a compiled kernel")
                calls.append((name, [slot[a] for a in op.arguments]))
            elif isinstance(op, func.ReturnOp):
                returned = list(op.operands)
            else:
                raise LatheError(f"graph executor: cannot run '{op.name}' in @{entry}")
        self.num_slots = len(slot)
        self._nesting: tuple[Nesting, ...] = result_nesting(fn)

        # Outputs: a kernel-written buffer returned (the first time it is returned). Anything
        # else returned (an input, a constant, a buffer returned twice) is copied per run.
        self._outputs: list[_Output] = []
        self._results: list[tuple[bool, int]] = []  # per flat result: (is an output, its index or its slot)
        output_of: dict[int, int] = {}
        for v in returned:
            s = slot[v]
            if s in temps and s not in output_of:
                output_of[s] = len(self._outputs)
                self._outputs.append(_Output(s, *self._kinds[s]))
                self._results.append((True, output_of[s]))
            else:
                self._results.append((False, s))

        # The plan: every intermediate from its first call to its last.
        uses: dict[int, list[int]] = {}
        for k, (_, args) in enumerate(calls):
            for s in args:
                uses.setdefault(s, []).append(k)
        planned = [s for s in temps if s not in output_of and s in uses]
        self.plan: MemoryPlan = plan_memory(
            [self._nbytes(s) for s in planned], [Lifetime(uses[s][0], uses[s][-1]) for s in planned]
        )
        self._arena = device.allocate((max(1, self.plan.arena_bytes),), np.uint8)
        base = device.address(self._arena)
        self._slots = (ctypes.c_void_p * max(1, self.num_slots))()
        for s, buffer in self._constants.items():
            self._slots[s] = device.address(buffer)
        for s, offset in zip(planned, self.plan.offsets):
            self._slots[s] = base + offset
        self._report = MemoryReport(
            len(planned),
            self.plan.total_bytes,
            self.plan.arena_bytes,
            self.plan.live_peak_bytes,
            *(
                sum(aligned_size(self._nbytes(s)) for s in group)
                for group in (self._constants, [i.slot for i in self._inputs], [o.slot for o in self._outputs])
            ),
        )

        # Per kernel: its prebuilt argument array; inputs and outputs are patched in per run.
        self.steps: list[tuple[object, object, str]] = []
        self._patches: dict[int, list[tuple[object, int]]] = {i.slot: [] for i in self._inputs}
        self._patches.update({o.slot: [] for o in self._outputs})
        for name, args in calls:
            ptrs = (ctypes.c_void_p * max(1, len(args)))(*[self._slots[s] for s in args])
            for k, s in enumerate(args):
                if s in self._patches:
                    self._patches[s].append((ptrs, k))
            self.steps.append((_KERNEL_FN(addresses[name]), ptrs, name))
        self._library = library
        self._calls = calls
        self._timed_entry: object = None  # built by the first time_kernels that can use it
        native = library.entry(calls, self.num_slots) if library is not None else None
        self._entry = _KERNEL_FN(native) if native else None
        self._bound: list[object] = [None] * len(self._inputs)  # keeps in-place inputs alive while bound
        for o in self._outputs:  # a first set, so that execute() can run before run() does
            self._new_output(o)

    def _nbytes(self, s: int) -> int:
        shape, dtype = self._kinds[s]
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    @property
    def uses_native_entry(self) -> bool:
        """Whether a run is one call into the backend (else one call per kernel)."""
        return self._entry is not None

    # -- binding inputs and outputs ----------------------------------------------
    def _bind(self, s: int, buffer, address: int | None = None) -> None:
        if address is None:
            address = self.device.address(buffer)
        self._slots[s] = address
        for ptrs, k in self._patches[s]:
            ptrs[k] = address  # type: ignore[index]

    def _new_output(self, o: _Output) -> None:
        o.buffer, address = self.device.allocate_at(o.shape, o.dtype)
        o.ours = isinstance(o.buffer, np.ndarray) and isinstance(o.buffer.base, np.ndarray)
        self._bind(o.slot, o.buffer, address)

    def set_inputs(
        self, args: Sequence[np.ndarray], kwargs: Mapping[str, np.ndarray], avoid: Sequence[np.ndarray] = ()
    ) -> None:
        """Bind the inputs: in place where the device shares host memory and an array is what a
        kernel argument must be and overlaps none of `avoid` (the caller's output arrays), else
        copied into the input's private buffer."""
        values = args if not kwargs and len(args) == len(self._inputs) else self._by_name(args, kwargs)
        in_place = self.device.host_memory
        for k, (i, value) in enumerate(zip(self._inputs, values)):
            if (
                in_place
                and type(value) is np.ndarray
                and value.dtype == i.dtype
                and value.shape == i.shape
                and value.flags.c_contiguous
                and (address := host_address(value)) % ARGUMENT_ALIGN == 0
                and (not avoid or not any(np.may_share_memory(value, a) for a in avoid))
            ):
                self._bound[k] = value
                self._bind(i.slot, value, address)
                continue
            if i.staging is None:
                i.staging = self.device.allocate(i.shape, i.dtype)
            self.device.copy_in(i.staging, check_value(i.name, value, i.type))
            self._bound[k] = i.staging
            self._bind(i.slot, i.staging)

    def _by_name(self, args: Sequence[np.ndarray], kwargs: Mapping[str, np.ndarray]) -> list:
        """The inputs in parameter order from positional and named ones, or which are wrong."""
        if len(args) > len(self._inputs):
            raise LatheError(f"run() takes {len(self._inputs)} inputs ({', '.join(self.input_names)}), got {len(args)}")
        given = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k in given:
                raise LatheError(f"input '{k}' is given twice")
            given[k] = v
        if len(given) != len(self._inputs) or any(n not in given for n in self.input_names):
            self._input_error(given)
        return [given[n] for n in self.input_names]

    def _input_error(self, given: Mapping[str, object]):
        unknown = set(given) - set(self.input_names)
        if unknown:
            raise LatheError(
                f"unknown input(s) {', '.join(sorted(unknown))}", note="inputs: " + ", ".join(self.input_names)
            )
        missing = [n for n in self.input_names if n not in given]
        raise LatheError(f"missing input(s) {', '.join(missing)}")

    def bind_outputs(self, out) -> list | None:
        """Fresh output buffers for this run (on the host; a device keeps its own and copies
        them out), or the caller's `out` arrays, flat, where kernels can write them directly.
        Public because a caller that times `execute` alone (the tuner's rotating sets) binds
        each run's outputs itself, as `run(out=)` does before it binds the inputs."""
        host = self.device.host_memory
        if out is None:
            if host:
                for o in self._outputs:
                    if not _unreferenced(o):
                        self._new_output(o)
            return None
        targets = self._check_out(out)
        for (is_output, k), a in zip(self._results, targets):
            if not is_output:
                continue
            o = self._outputs[k]
            if (
                host
                and a.flags.c_contiguous
                and (address := a.ctypes.data) % ARGUMENT_ALIGN == 0
                and not any(b is not a and np.may_share_memory(a, b) for b in targets)
            ):
                o.buffer, o.ours = a, False
                self._bind(o.slot, a, address)
            elif host:  # written to a buffer of its own, then copied (never into a past run's array)
                self._new_output(o)
        return targets

    def _check_out(self, out) -> list[np.ndarray]:
        """`out` flat, one array per result, each of its result's shape and dtype and writable."""
        flat: list = [None] * len(self._results)

        def walk(n: Nesting, a, where: str) -> None:
            if isinstance(n, tuple):
                if not isinstance(a, tuple | list) or len(a) != len(n):
                    raise LatheError(f"{where} must be a tuple of {len(n)}, nested as run() returns its results")
                for j, (m, b) in enumerate(zip(n, a)):
                    walk(m, b, f"{where}[{j}]")
                return
            shape, dtype = self._kinds[self._result_slot(n)]
            if not isinstance(a, np.ndarray):
                raise LatheError(f"{where} is a {type(a).__name__}, not a numpy array of shape {shape} and {dtype}")
            if a.shape != shape or a.dtype != dtype:
                raise LatheError(f"{where} has shape {a.shape} and dtype {a.dtype}, but {shape} {dtype} was expected")
            if not a.flags.writeable:
                raise LatheError(f"{where} is read-only")
            flat[n] = a

        walk(self._structure(), out, "out")
        return flat

    def _result_slot(self, j: int) -> int:
        is_output, k = self._results[j]
        return self._outputs[k].slot if is_output else k

    def _structure(self) -> Nesting:
        return self._nesting[0] if len(self._nesting) == 1 else self._nesting

    def _source_of(self, s: int):
        """The buffer behind a result that is not a kernel output: a constant, an input or an
        output returned a second time."""
        if s in self._constants:
            return self._constants[s]
        for k, i in enumerate(self._inputs):
            if i.slot == s:
                return self._bound[k]
        return next(o.buffer for o in self._outputs if o.slot == s)

    # -- running -----------------------------------------------------------------
    def execute(self) -> None:
        """Run the kernels on the buffers bound now (the last set_inputs and run)."""
        self.before_run()
        if self._entry is not None:
            self._entry(self._slots)
        else:
            with self._marked_run():
                for fnptr, ptrs, _ in self.steps:
                    fnptr(ptrs)  # type: ignore[operator]
        self.device.synchronize()

    @contextlib.contextmanager
    def _marked_run(self):
        """Kernels called one by one from here are one run to the backend, as the native entry's
        are (its pool keeps workers awake between them)."""
        if self._library is None:
            yield
            return
        self._library.mark_run(True)
        try:
            yield
        finally:
            self._library.mark_run(False)

    def get_outputs(self, targets: Sequence[np.ndarray] | None = None):
        """The results, nested as the model returns them. A kernel output is its buffer itself
        (on a device, one copy to the host); any other result is a copy. With `targets` (flat,
        as bind_outputs gives them), each result is written there unless it already is."""
        host = self.device.host_memory
        if targets is None and host and self._nesting == (0,) and self._results[0][0]:
            return self._outputs[0].buffer  # the common case: one result, a kernel's output
        flat = []
        for j, (is_output, k) in enumerate(self._results):
            buffer = self._outputs[k].buffer if is_output else self._source_of(k)
            value = buffer if host else self.device.copy_out(buffer)
            if targets is not None:
                if targets[j] is not buffer:
                    targets[j][...] = value
                value = targets[j]
            elif host and not is_output:
                value = np.array(buffer)
            flat.append(value)

        def nest(n: Nesting):
            return tuple(nest(m) for m in n) if isinstance(n, tuple) else flat[n]

        return nest(self._structure())

    def run(self, *args, out=None, **kwargs):
        """Run on `args`/`kwargs` (by position, or by name); results in fresh arrays, or written
        into `out` (an array, or arrays nested as the results are) and returned. A model input
        named `out` takes that keyword."""
        if out is not None and "out" in self.input_names:
            kwargs["out"], out = out, None
        targets = self.bind_outputs(out)
        self.set_inputs(args, kwargs, targets or ())
        self.execute()
        return self.get_outputs(targets)

    def time_kernels(
        self, repeat: int, warmup_seconds: float = 1.0, clock: Callable[[], float] = time.perf_counter
    ) -> list[list[float]]:
        """Seconds of each kernel call by `clock`, in `steps` order, for `repeat` runs after a
        wall-clock warm-up, on the buffers bound now. Where the backend has a timed entry and
        `clock` is time.perf_counter or time.thread_time, a run is one native call that reads
        the same clock (clock_gettime) between its kernels, so a time is the kernel's as run()
        runs it. Otherwise each kernel runs through its own packed entry, the device
        synchronised after each, so a time is one kernel's plus one ctypes call (about a
        microsecond), each run marked as a run to the backend as the native entry marks its
        own, so the pool's workers behave as in run(). `time.thread_time` times a one-thread
        module by the caller's CPU time, which other processes on the cores do not inflate as
        they inflate wall time."""
        self.before_run()
        timed = self._timed(clock)
        sync, wall = self.device.synchronize, time.perf_counter
        end = wall() + warmup_seconds
        while wall() < end:
            self.execute()
        runs = []
        if timed is not None:
            entry, clock_id = timed
            stamps = (ctypes.c_int64 * (len(self.steps) + 1))()
            for _ in range(repeat):
                entry(self._slots, stamps, clock_id)
                runs.append([(stamps[c + 1] - stamps[c]) * 1e-9 for c in range(len(self.steps))])
            return runs
        for _ in range(repeat):
            times = []
            with self._marked_run():
                for fnptr, ptrs, _ in self.steps:
                    t0 = clock()
                    fnptr(ptrs)  # type: ignore[operator]
                    sync()
                    times.append(clock() - t0)
            runs.append(times)
        return runs

    def _timed(self, clock: Callable[[], float]) -> tuple[Callable, int] | None:
        """The backend's timed entry and the clock_gettime id of `clock`, or None."""
        clock_id = _CLOCK_IDS.get(clock)
        if clock_id is None or self._library is None or self._entry is None:
            return None
        if self._timed_entry is None:
            address = self._library.timed_entry(self._calls, self.num_slots)
            self._timed_entry = _TIMED_ENTRY_FN(address) if address else False
        return (self._timed_entry, clock_id) if self._timed_entry else None

    def memory_report(self) -> MemoryReport:
        return self._report

    def benchmark(self, repeat: int = 100, warmup_seconds: float = 1.0) -> list[float]:
        """Per-run latencies in seconds after a wall-clock warm-up."""
        end = time.perf_counter() + warmup_seconds
        while time.perf_counter() < end:
            self.execute()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            self.execute()
            times.append(time.perf_counter() - t0)
        return times


def _tensor_type(t: MemRefType):
    return graph.tensor(list(t.get_shape()), t.element_type)


def _global_value(g: memref.GlobalOp) -> np.ndarray:
    t = g.type
    fake = graph.ConstantOp.create(result_types=[_tensor_type(t)], properties={"value": g.initial_value})
    return constant_value(fake)  # type: ignore[arg-type]
