"""What a backend is to Lathe: a Target it parses and a Backend that turns loop IR into kernels.

Everything above `backends/` (the API, the tools, the executor) talks to these
two classes and to `backends.registry`, never to a particular backend, so a
backend that lives in another package plugs in through the `lathe.backends`
entry-point group and needs no edit to Lathe. The shape follows tinygrad's
`Compiled(device, allocator, renderer, compiler, runtime)`: a backend renders
loop-level IR to source, compiles the source to a binary, and loads the binary
into a `KernelLibrary` whose kernels the executor launches on buffers that the
backend's allocator owns.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Dialect

from lathe.dialects.graph import DTYPES
from lathe.errors import LatheError


@dataclass(frozen=True)
class Target:
    """What code generation needs to know of a machine, from a TVM-style string:
    `llvm -mcpu=znver4`, `llvm -mtriple=aarch64-linux-gnu`, `c`, `cuda -arch=sm_90`."""

    kind: str
    triple: str = ""  # the LLVM triple, or the architecture the code is for
    cpu: str = ""  # -mcpu / -arch
    features: str = ""  # -mattr, comma separated +feature / -feature
    vector_bits: int = 128  # widest float vector register
    num_threads: int | None = None  # None: LATHE_NUM_THREADS, else the cores the process may use
    cache_bytes: tuple[int, ...] = ()  # L1d, L2, L3 where known
    opt_level: int = 3
    options: tuple[tuple[str, str], ...] = ()  # any other -key=value, as given
    spec: str = ""  # the target string it was parsed from, normalised: what str() gives back

    @property
    def vector_lanes(self) -> int:
        """f32 lanes of one vector register: what schedules and packing choices block by."""
        return max(1, self.vector_bits // 32)

    @property
    def arch(self) -> str:
        return self.triple.split("-", 1)[0]

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)

    def with_(self, **changes) -> Target:
        return replace(self, **changes)

    def __str__(self) -> str:
        if self.spec:
            return self.spec
        words = [self.kind]
        for key, value in (("-mtriple", self.triple), ("-mcpu", self.cpu), ("-mattr", self.features)):
            if value:
                words.append(f"{key}={value}")
        words += [f"{k}={v}" for k, v in self.options]
        return " ".join(words)


def split_target_string(spec: str) -> tuple[str, dict[str, str]]:
    """`kind -key=value ...` → (kind, {"-key": "value"}); malformed text is a LatheError."""
    try:
        words = shlex.split(spec)
    except ValueError as e:
        raise LatheError(f"malformed target string '{spec}': {e}") from None
    if not words:
        raise LatheError("empty target string", note="e.g. 'llvm', 'llvm -mcpu=znver4', 'c'")
    options: dict[str, str] = {}
    for w in words[1:]:
        key, sep, value = w.partition("=")
        if not key.startswith("-"):
            raise LatheError(f"target option '{w}' in '{spec}' is not -key=value", note="e.g. -mcpu=znver4")
        if not sep or not value:
            raise LatheError(f"target option '{key}' needs a value", note="e.g. -mcpu=znver4")
        if key in options:
            raise LatheError(f"target option '{key}' is given twice in '{spec}'")
        options[key] = value
    return words[0], options


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports; the conformance suite reports the rest as unsupported, not failed."""

    dtypes: frozenset[str] = field(default_factory=lambda: frozenset(DTYPES))  # default: every graph dtype
    schedule_primitives: frozenset[str] = frozenset()  # te primitives whose annotations it honours
    ops: frozenset[str] | None = None  # graph ops (Relay names); None: every op
    runs_here: bool = True  # False: it compiles here but cannot run on this machine


class KernelLibrary:
    """Compiled kernels, loaded. On the host, `address(name)` is the kernel's packed entry,
    `void name__packed(void **args)`, one buffer address per kernel argument, which the
    executor calls with a prebuilt argument array."""

    def address(self, name: str) -> int:
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for launched kernels (a no-op where launches are synchronous)."""

    def set_num_threads(self, n: int) -> None:
        """How many threads parallel loops may use from now on. The executor calls it before
        each run: two modules may share one loaded library, and each keeps its own count."""

    def mark_run(self, active: bool) -> None:
        """A run of kernels called one by one begins (True) or ends (False): what a native entry
        does itself, so that a thread pool keeps its workers awake between the run's kernels."""

    def entry(self, calls: Sequence[tuple[str, Sequence[int]]], num_slots: int) -> int | None:
        """One native function for a whole run, so that a run is one call (ahead-of-time
        glue): the address of `void entry(void **slots)`, which calls the kernels of `calls`
        in order, each with its arguments' buffer addresses read from `slots` at the indices
        given (`slots` holds `num_slots` addresses, patched by the executor per run for
        inputs and outputs). None (the default) where the backend has no such thing: the
        executor then calls each kernel's packed entry itself."""
        return None

    def timed_entry(self, calls: Sequence[tuple[str, Sequence[int]]], num_slots: int) -> int | None:
        """`entry`, reading a clock around every kernel: the address of `void entry(void
        **slots, int64_t *stamps, int32_t clock_id)`, which stores clock_gettime(clock_id) in
        nanoseconds to stamps[0] before the first kernel and to stamps[c + 1] after kernel c.
        The profiler times kernels with it as run() runs them, one native call, where a Python
        call per kernel would add a microsecond to every kernel. None (the default): the
        profiler calls and times each packed entry from Python."""
        return None


class Backend:
    """One code generator: subclass it, set the class attributes, implement the methods.

    The pipeline is: graph passes (with `graph_pass_options`) → te → loop →
    `lower(loop_module)` (the backend's own passes over its dialects) →
    `render` (source text) → `compile_source` (a binary) → `load` (a KernelLibrary).
    """

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    target_kinds: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""
    source_suffix: ClassVar[str] = ".txt"  # the rendered source's file name suffix
    binary_suffix: ClassVar[str] = ".bin"  # the compiled binary's
    dialects: ClassVar[Sequence[Dialect]] = ()
    passes: ClassVar[Mapping[str, type]] = {}  # name → ModulePass class, registered with lathe-opt
    target_options: ClassVar[Mapping[str, str]] = {}  # "-option" → what it means, for the error on an unknown one

    # -- targets ---------------------------------------------------------------
    def parse_target(self, kind: str, options: dict[str, str]) -> Target:
        """The Target for `kind` with `options` ({"-mcpu": "znver4"}); unknown options are a LatheError."""
        raise NotImplementedError

    def check_target(self, kind: str, options: Mapping[str, str]) -> None:
        """The LatheError a user gets for a kind this backend lacks or an option it does not know,
        the same words from every backend."""
        if kind not in self.target_kinds:
            raise LatheError(
                f"the {self.name} backend has no target '{kind}'", note="its targets: " + ", ".join(self.target_kinds)
            )
        unknown = [k for k in options if k not in self.target_options]
        if unknown:
            raise LatheError(
                f"unknown option '{unknown[0]}' for target '{kind}'",
                note="known: " + "; ".join(f"{k}=... {v}" for k, v in self.target_options.items()),
            )

    def capabilities(self, target: Target) -> Capabilities:
        return Capabilities()

    def status(self) -> str:
        """One line for `lathe backends`: what is installed that this backend needs (a compiler, a driver)."""
        return "ready"

    # -- compilation -----------------------------------------------------------
    def graph_pass_options(self, target: Target) -> dict[str, dict[str, object]]:
        """Options for target-dependent graph passes: {"alter-op-layout": {"vector_lanes": 16}}."""
        return {
            "alter-op-layout": {"vector_lanes": target.vector_lanes},
            "winograd-conv": {"vector_lanes": target.vector_lanes},
            "block-conv-weights": {"vector_lanes": target.vector_lanes},
            "apply-default-schedule": {"vector_lanes": target.vector_lanes},
        }

    def lower(self, module: ModuleOp, target: Target) -> ModuleOp:
        """Loop-level IR → the backend's own dialects (default: nothing to do)."""
        return module

    def render(self, module: ModuleOp, target: Target) -> str:
        """The kernels as source text (LLVM IR, C, PTX, ...)."""
        raise NotImplementedError

    def optimized_source(self, source: str, target: Target) -> str:
        """The source after the backend's own optimiser, for reading; default: as rendered."""
        return source

    def assembly(self, source: str, target: Target) -> str:
        """The kernels as assembly, where the backend can show it."""
        raise LatheError(f"the {self.name} backend does not write assembly", note="use --emit=source or -o FILE.o")

    def compile_source(self, source: str, target: Target) -> bytes:
        """Source → a binary that `load` accepts (an object file, a shared library, a cubin)."""
        raise NotImplementedError

    def load(self, module: ModuleOp, target: Target) -> KernelLibrary:
        """Compile and load every kernel of a loop-level module, for running here."""
        raise NotImplementedError

    def artifact(self, module: ModuleOp, target: Target) -> dict[str, bytes]:
        """`lathe compile -o DIR`: the files another machine needs to build or run the
        kernels, by name. The default: the rendered source and the compiled binary."""
        source = self.render(self.lower(module, target), target)
        return {
            "kernels" + self.source_suffix: source.encode(),
            "kernels" + self.binary_suffix: self.compile_source(source, target),
        }

    def library(self, module: ModuleOp, target: Target, program: RunProgram) -> dict[str, bytes]:
        """`lathe compile -o DIR` where the backend `deploys`: files (by name) that hold the
        whole run of `program` in a shared library with Lathe's C ABI (docs/deployment.md),
        which runs without Lathe. The weights, metadata and loader are written beside them."""
        raise LatheError(
            f"the {self.name} backend does not build deployable libraries",
            note="lathe compile -o DIR writes its kernels; --target llvm builds a library that runs without Lathe",
        )

    deploys: ClassVar[bool] = False  # whether `library` is implemented

    def device(self, target: Target) -> Device:
        """The runtime shim the executor allocates, copies and synchronises through."""
        return HostDevice()

    def emulator(self, target: Target) -> Emulator:
        """What runs this backend's deployed libraries (`library`) for a target that does not
        run natively here (`capabilities(target).runs_here` is False), such as aarch64 code
        under qemu-user on an x86 host; a LatheError where nothing can, saying what to install."""
        raise LatheError(f"the {self.name} backend cannot run {target} on this machine, natively or emulated")


@dataclass(frozen=True)
class InputSpec:
    """A model input in a RunProgram: bound by the caller, or copied to `staging` when its
    address is not aligned as kernels assume."""

    name: str
    slot: int
    shape: tuple[int, ...]
    dtype: str  # numpy's name: float32, int64, bool
    staging: int  # byte offset of its private copy in the block


@dataclass(frozen=True)
class ResultSpec:
    """A flat result in a RunProgram. A kernel-written one (`written`) has a default buffer at
    `offset` that the caller may replace with its own; any other (an input, a weight, a
    result returned twice) is read from its slot after the run."""

    name: str  # output, or output_0, output_1_0, ... as the results nest
    slot: int
    shape: tuple[int, ...]
    dtype: str
    written: bool
    offset: int  # byte offset of its default buffer in the block; -1 where not `written`


@dataclass(frozen=True)
class RunProgram:
    """A whole run as the graph executor plans it, in the form a deployed library bakes in:
    a table of `num_slots` buffer addresses, the kernel calls in order (each kernel with the
    slots of its arguments), and one block of memory, allocated once, whose first
    `weights_bytes` are the weights file and which holds every planned intermediate, each
    input's staging copy and each result's default buffer at the offsets given."""

    num_slots: int
    calls: tuple[tuple[str, tuple[int, ...]], ...]
    placed: tuple[tuple[int, int], ...]  # (slot, offset in the block): weights and intermediates
    weights_bytes: int
    block_bytes: int
    inputs: tuple[InputSpec, ...]
    results: tuple[ResultSpec, ...]


@dataclass(frozen=True)
class EmulatedRun:
    """One run of a deployed library under an emulator: its files, its inputs (flat, in the
    library's order, dtypes and shapes) and the shape and dtype of each flat output."""

    library: str
    weights: str
    inputs: Sequence[np.ndarray]
    outputs: Sequence[tuple[tuple[int, ...], str]]


class Emulator:
    """Runs deployed libraries of another machine on this one (`Backend.emulator`). A batch
    of runs is one call, so that an emulator's start-up is paid once per batch."""

    description: str = ""  # how the runs are emulated, for the note that says so

    def run(self, jobs: Sequence[EmulatedRun], num_threads: int = 1) -> list[list[np.ndarray]]:
        """Each job's outputs, flat, in order."""
        raise NotImplementedError


class Device:
    """Where a model's buffers live. Kernels take buffer addresses, so a buffer is
    anything with an address; the executor plans them once and reuses them every run.
    Where buffers are host numpy arrays (`host_memory`), kernels read the caller's
    inputs and write the arrays `run()` returns in place; elsewhere every input is
    copied in and every output copied out."""

    host_memory: ClassVar[bool] = False

    def allocate(self, shape: Sequence[int], dtype) -> object:
        raise NotImplementedError

    def address(self, buffer) -> int:
        raise NotImplementedError

    def allocate_at(self, shape: Sequence[int], dtype) -> tuple[object, int]:
        """A new buffer and its address (the executor allocates outputs so for every run)."""
        buffer = self.allocate(shape, dtype)
        return buffer, self.address(buffer)

    def copy_in(self, buffer, array: np.ndarray) -> None:
        raise NotImplementedError

    def copy_out(self, buffer) -> np.ndarray:
        raise NotImplementedError

    def synchronize(self) -> None:
        pass


def _read_line(*path: str) -> str:
    with open(os.path.join(*path)) as f:
        return f.read().strip()


@functools.cache
def host_cache_bytes() -> tuple[int, ...]:
    """This machine's data cache sizes, L1d first, from Linux's sysfs; () where unknown."""
    sizes: dict[int, int] = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            if not entry.startswith("index"):
                continue
            if _read_line(base, entry, "type") == "Instruction":
                continue
            size = _read_line(base, entry, "size")
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
            sizes[int(_read_line(base, entry, "level"))] = int(size.rstrip("KMG")) * scale
    except (OSError, ValueError):
        return ()
    return tuple(sizes[level] for level in sorted(sizes))


def default_num_threads() -> int:
    """LATHE_NUM_THREADS, else the cores this process may run on."""
    env = os.environ.get("LATHE_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


ALIGN = 64  # where Lathe's own buffers start (arena, outputs, staging copies, allocations in kernels)
# What kernels assume of a buffer argument's address: numpy's own guarantee for a fresh array
# (its allocator's 16 bytes), so a caller's array is used in place, not copied. Vector accesses
# to arguments are then unaligned (vmovups: as fast as vmovaps on aligned data since AVX);
# memory a kernel allocates is ALIGN-aligned and its accesses say so.
ARGUMENT_ALIGN = 16


def host_address(array: np.ndarray) -> int:
    """Where a C-contiguous array's data starts. A run reads the address of every input and
    output, and ctypes' from_buffer takes half the time of `.ctypes.data` (which serves
    arrays from_buffer refuses: read-only or empty ones)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError, BufferError):
        return array.ctypes.data


def aligned_empty(shape: Sequence[int], dtype, align: int = ALIGN) -> np.ndarray:
    """An uninitialised array whose data starts on an `align`-byte boundary (a cache line:
    buffers the executor owns never split a vector across two)."""
    return aligned_empty_at(shape, dtype, align)[0]


def aligned_empty_at(shape: Sequence[int], dtype, align: int = ALIGN) -> tuple[np.ndarray, int]:
    """aligned_empty and its data's address. A run allocates its outputs with it, so it
    costs what numpy's constructor costs: math.prod, not np.prod (ten times slower on a
    tuple), and the address read once (`.ctypes.data` takes microseconds)."""
    dtype = np.dtype(dtype)
    nbytes = max(1, math.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + align, dtype=np.uint8)
    address = host_address(raw)
    off = -address % align
    return np.ndarray(tuple(shape), dtype, raw, off), address + off


class HostDevice(Device):
    """Host memory: buffers are aligned numpy arrays (CPU backends)."""

    host_memory = True

    def allocate(self, shape: Sequence[int], dtype) -> np.ndarray:
        return aligned_empty(shape, dtype)

    def allocate_at(self, shape: Sequence[int], dtype) -> tuple[np.ndarray, int]:
        return aligned_empty_at(shape, dtype)

    def address(self, buffer: np.ndarray) -> int:
        return host_address(buffer)

    def copy_in(self, buffer: np.ndarray, array: np.ndarray) -> None:
        buffer[...] = array

    def copy_out(self, buffer: np.ndarray) -> np.ndarray:
        return buffer.copy()


@dataclass
class BackendInfo:
    """A backend as `lathe backends` lists it."""

    name: str
    version: str
    targets: tuple[str, ...]
    status: str
    description: str = ""
    source: str = ""  # the entry point or module it came from
    error: str | None = None  # why it failed to load
    extra: dict[str, str] = field(default_factory=dict)


def parse_opt_level(value: str) -> int:
    """`-opt-level=N` of any target: 0..3, as compilers read -O."""
    if value not in ("0", "1", "2", "3"):
        raise LatheError(f"-opt-level must be 0..3, got '{value}'")
    return int(value)
