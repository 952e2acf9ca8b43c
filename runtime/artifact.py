"""Run a model that `lathe compile -o DIR` deployed: numpy, ctypes and the standard library only.

    import lathe.runtime
    model = lathe.runtime.load("mlp.lathe.d")
    y = model.run(x)                    # or run(x=x); nested tuples as CompiledModule.run

This module imports nothing of the compiler (no xDSL, Lark or llvmlite), and the artifact
directory carries a copy of it as `load.py`, so that a machine with numpy alone runs the
model: `import load; load.load(".")`. Where Lathe is importable its LatheError is used
(lathe.errors imports only the standard library), else a local class of the same name.

Loading checks what would otherwise crash or compute garbage: the metadata's format
version, the machine's architecture and the CPU features the code was compiled for
(against /proc/cpuinfo), and the library's and weights' sizes and SHA-256 hashes, before
the library is opened. A run checks each input's shape and dtype and names the input.
Inputs are used in place when 16-byte aligned (what numpy gives) and C-contiguous (else the
library copies them), and outputs are fresh arrays that the kernels write directly, as in the graph
executor.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import platform
import struct
from collections.abc import Mapping, Sequence

import numpy as np

try:
    from lathe.errors import LatheError
except ImportError:  # load.py in an artifact, on a machine without Lathe

    class LatheError(Exception):  # type: ignore[no-redef]
        """What went wrong loading or running a deployed model."""


FORMAT = "lathe-artifact"
FORMAT_VERSION = 1
ABI_VERSION = 1  # lathe_abi_version() of the libraries this loader drives
ALIGN = 64  # where the loader starts the arrays it allocates (its own outputs)
METADATA = "metadata.json"

# LLVM feature names → /proc/cpuinfo flags, for the features that code generation uses.
# A feature of neither table cannot be checked here and is taken on trust.
_CPUINFO_FLAGS = {
    "x86_64": {
        **{f: f for f in ("sse", "sse2", "ssse3", "avx", "avx2", "fma", "f16c", "bmi2", "popcnt", "movbe", "adx")},
        **{f: f for f in ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512ifma", "avx512vbmi")},
        **{f: f for f in ("gfni", "vaes", "vpclmulqdq", "aes", "amx_tile", "sha_ni")},
        "sse3": "pni",
        "sse4.1": "sse4_1",
        "sse4.2": "sse4_2",
        "bmi": "bmi1",
        "lzcnt": "abm",
        "pclmul": "pclmulqdq",
        "sha": "sha_ni",
        "avx512vnni": "avx512_vnni",
        "avx512bf16": "avx512_bf16",
        "avx512fp16": "avx512_fp16",
        "avx512vbmi2": "avx512_vbmi2",
        "avx512bitalg": "avx512_bitalg",
        "avx512vpopcntdq": "avx512_vpopcntdq",
        "avx512vp2intersect": "avx512_vp2intersect",
        "avxvnni": "avx_vnni",
        "avxvnniint8": "avx_vnni_int8",
        "avxifma": "avx_ifma",
        "avxneconvert": "avx_ne_convert",
        "amx-tile": "amx_tile",
        "amx-bf16": "amx_bf16",
        "amx-int8": "amx_int8",
        "amx-fp16": "amx_fp16",
        "amx-complex": "amx_complex",
    },
    "aarch64": {
        "neon": "asimd",
        "fp-armv8": "fp",
        "fullfp16": "asimdhp",
        "dotprod": "asimddp",
        "i8mm": "i8mm",
        "bf16": "bf16",
        "sve": "sve",
        "sve2": "sve2",
        "lse": "atomics",
        "crc": "crc32",
        "aes": "aes",
        "sha2": "sha2",
        "rcpc": "lrcpc",
        "sme": "sme",
    },
}
_MACHINES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


def host_arch() -> str:
    m = platform.machine().lower()
    return _MACHINES.get(m, m)


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """This machine's CPU flags (x86 `flags`, ARM `Features`); None where unknown."""
    try:
        with open(path) as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() in ("flags", "features"):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def missing_features(arch: str, features: Sequence[str], flags: frozenset[str] | None) -> list[str]:
    """The +features of the code that this machine's flags show it lacks."""
    table = _CPUINFO_FLAGS.get(arch, {})
    if flags is None:
        return []
    wanted = (f[1:] for f in features if f.startswith("+"))
    return [name for name in wanted if name in table and table[name] not in flags]


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, int]:
    """An uninitialised array whose data starts on a 64-byte boundary, and that address
    (backends/interface.aligned_empty_at, which this file cannot import)."""
    raw = np.empty(max(1, math.prod(shape)) * dtype.itemsize + ALIGN, dtype=np.uint8)
    address = raw.ctypes.data
    off = -address % ALIGN
    return np.ndarray(shape, dtype, raw, off), address + off


def _address(a: np.ndarray) -> int:
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))  # twice as fast as .ctypes.data
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data  # read-only or empty arrays


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_metadata(directory: str) -> dict:
    path = os.path.join(directory, METADATA)
    if not os.path.isdir(directory):
        raise LatheError(f"{directory} is not a directory (lathe compile MODEL -o DIR writes one)")
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise LatheError(f"{directory} is not a Lathe artifact: it has no {METADATA}") from None
    except (OSError, ValueError) as e:
        raise LatheError(f"cannot read {path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LatheError(f'{path} does not describe a Lathe artifact (no "format": "{FORMAT}")')
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise LatheError(
            f"{directory} is an artifact of format version {version}, and this loader reads version {FORMAT_VERSION}",
            note=f"compile it again with Lathe {meta.get('lathe_version', '')}".rstrip()
            + " or use the load.py beside it",
        )
    return meta


def _check_file(directory: str, entry: Mapping, what: str, verify: bool) -> str:
    path = os.path.join(directory, entry["file"])
    try:
        size = os.path.getsize(path)
    except OSError:
        raise LatheError(f"the artifact's {what} {path} is missing") from None
    if size != entry["bytes"]:
        raise LatheError(
            f"the artifact's {what} {path} has {size} bytes, but {entry['bytes']} were written (truncated or replaced?)"
        )
    if verify and _sha256(path) != entry["sha256"]:
        raise LatheError(f"the artifact's {what} {path} does not match its SHA-256 in {METADATA} (changed or corrupt)")
    return path


_ELF_MACHINES = {62: "x86_64", 183: "aarch64", 243: "riscv64"}


def _check_elf(path: str, arch: str) -> None:
    """A shared library that the dynamic loader can map: a 64-bit little-endian ELF for
    `arch` whose segments and section table lie within the file. The loader maps segments
    as their headers say, so a truncated library would die of SIGBUS inside dlopen."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            raise LatheError(f"{path} is not a 64-bit little-endian ELF shared library")
        machine, phoff, shoff = struct.unpack_from("<H", head, 18)[0], *struct.unpack_from("<QQ", head, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 54)
        if _ELF_MACHINES.get(machine, f"machine {machine}") != arch:
            raise LatheError(
                f"{path} holds code for {_ELF_MACHINES.get(machine, f'ELF machine {machine}')}, not {arch}"
            )
        if phoff + phnum * phentsize > size or shoff + shnum * shentsize > size:
            raise LatheError(f"{path} is truncated: its headers point past its {size} bytes")
        f.seek(phoff)
        table = f.read(phnum * phentsize)
        for k in range(phnum):
            offset, _, _, filesz = struct.unpack_from("<QQQQ", table, k * phentsize + 8)
            if offset + filesz > size:
                raise LatheError(f"{path} is truncated: a segment ends at byte {offset + filesz} of {size}")


def _check_machine(meta: dict) -> None:
    target = meta["target"]
    arch = host_arch()
    if target["arch"] != arch:
        raise LatheError(
            f"the artifact is compiled for {target['triple']}, and this machine is {arch}",
            note=f"compile it for this machine: lathe compile MODEL --target llvm -o DIR (it was '{target['string']}')",
        )
    missing = missing_features(arch, target["features"], cpu_flags())
    if missing:
        raise LatheError(
            f"this CPU lacks features the artifact's code uses: {', '.join(missing)} "
            f"(it was compiled for cpu {target['cpu']})",
            note="compile it for this machine (lathe compile MODEL --target llvm), or for a CPU both have "
            "(--target 'llvm -mcpu=x86-64-v3')",
        )


class _Tensor:
    def __init__(self, spec: Mapping):
        self.name: str = spec["name"]
        self.shape = tuple(spec["shape"])
        self.dtype = np.dtype(spec["dtype"])
        self.written: bool = spec.get("written", False)

    def describe(self) -> str:
        return f"{self.shape} {self.dtype}"


class Signature:
    """A deployed model's inputs, outputs and their nesting, from its metadata: how a run binds
    its inputs and nests its results (the loader's, and a run under emulation's)."""

    def __init__(self, meta: Mapping):
        self._inputs = [_Tensor(i) for i in meta["inputs"]]
        self._results = [_Tensor(o) for o in meta["outputs"]]
        self.input_names = [i.name for i in self._inputs]
        self._nesting = meta["nesting"]

    def _values(self, args: Sequence, kwargs: Mapping) -> list:
        """The inputs in order from positional and named ones, or an error naming what is wrong."""
        if not kwargs and len(args) == len(self._inputs):
            return list(args)
        if len(args) > len(self._inputs):
            raise LatheError(f"run() takes {len(self._inputs)} inputs ({', '.join(self.input_names)}), got {len(args)}")
        given = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k in given:
                raise LatheError(f"input '{k}' is given twice")
            given[k] = v
        unknown = sorted(set(given) - set(self.input_names))
        if unknown:
            raise LatheError(f"unknown input(s) {', '.join(unknown)}", note="inputs: " + ", ".join(self.input_names))
        missing = [n for n in self.input_names if n not in given]
        if missing:
            raise LatheError(f"missing input(s) {', '.join(missing)}")
        return [given[n] for n in self.input_names]

    @staticmethod
    def _input(spec: _Tensor, value) -> np.ndarray:
        """As the graph executor takes an input (dialects/reference.check_value): the exact
        shape, and the dtype or one that casts to it within its kind."""
        a = np.asarray(value)
        if a.shape != spec.shape:
            raise LatheError(f"input '{spec.name}' has shape {a.shape}, but {spec.describe()} was expected")
        if a.dtype != spec.dtype:
            if not np.can_cast(a.dtype, spec.dtype, casting="same_kind"):
                raise LatheError(f"input '{spec.name}' has dtype {a.dtype}, but {spec.describe()} was expected")
            a = a.astype(spec.dtype)
        return a if a.flags.c_contiguous else a.copy(order="C")

    def _nest(self, n, flat: list):
        return tuple(self._nest(m, flat) for m in n) if isinstance(n, list) else flat[n]

    def _targets(self, out) -> list[np.ndarray]:
        """`out` flat, each array of its result's shape and dtype, writable and C-contiguous."""
        flat: list = [None] * len(self._results)

        def walk(n, a, where: str) -> None:
            if isinstance(n, list):
                if not isinstance(a, tuple | list) or len(a) != len(n):
                    raise LatheError(f"{where} must be a tuple of {len(n)}, nested as run() returns its results")
                for k, (m, b) in enumerate(zip(n, a)):
                    walk(m, b, f"{where}[{k}]")
                return
            spec = self._results[n]
            if not isinstance(a, np.ndarray) or a.shape != spec.shape or a.dtype != spec.dtype:
                got = f"shape {a.shape} and dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
                raise LatheError(f"{where} has {got}, but {spec.describe()} was expected")
            if not a.flags.writeable or not a.flags.c_contiguous:
                raise LatheError(f"{where} must be writable and C-contiguous")
            flat[n] = a

        walk(self._nesting, out, "out")
        return flat


class Artifact(Signature):
    """A deployed model, loaded: `run(*inputs, **named)` as CompiledModule.run."""

    def __init__(self, directory: str | os.PathLike, num_threads: int | None = None, verify: bool = True):
        directory = os.fspath(directory)
        meta = self.metadata = _read_metadata(directory)
        if meta.get("library") is None:
            raise LatheError(f"{directory} has no linked library: {meta.get('not_linked') or 'model.so was not built'}")
        _check_machine(meta)
        library = _check_file(directory, meta["library"], "library", verify)
        weights = _check_file(directory, meta["weights"], "weights", verify)
        _check_elf(library, meta["target"]["arch"])
        try:
            lib = ctypes.CDLL(os.path.abspath(library))
        except OSError as e:
            raise LatheError(f"cannot load the artifact's library {library}: {e}") from None
        self._lib = lib
        _declare(lib)
        if lib.lathe_abi_version() != ABI_VERSION:
            raise LatheError(f"{library} has C ABI version {lib.lathe_abi_version()}; this loader drives {ABI_VERSION}")
        Signature.__init__(self, meta)
        if lib.lathe_num_inputs() != len(self._inputs) or lib.lathe_num_outputs() != len(self._results):
            raise LatheError(f"{library} and {METADATA} disagree on the model's inputs and outputs")
        handle = lib.lathe_create(os.path.abspath(weights).encode())
        if not handle:
            raise LatheError(f"cannot create the model: {lib.lathe_last_error().decode(errors='replace')}")
        self._handle = handle
        if num_threads is not None:
            self._check(lib.lathe_set_num_threads(handle, int(num_threads)))

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._lib.lathe_destroy(handle)

    def _check(self, status: int) -> None:
        if status != 0:
            raise LatheError(self._lib.lathe_last_error().decode(errors="replace"))

    def run(self, *args, out=None, **kwargs):
        """Run on inputs by position or by name; the results in fresh arrays (a tuple, nested
        as the model returns them, where it returns several), or written into `out` (nested
        the same way) and returned."""
        if out is not None and "out" in self.input_names:
            kwargs["out"], out = out, None
        lib, handle = self._lib, self._handle
        targets = self._targets(out) if out is not None else None
        keep = []  # the arrays bound by address stay alive until the run returns
        for k, (spec, value) in enumerate(zip(self._inputs, self._values(args, kwargs))):
            a = self._input(spec, value)
            if targets and any(np.may_share_memory(a, t) for t in targets):
                a = a.copy()  # kernels' arguments are noalias: an input is never read where an output is written
            keep.append(a)
            self._check(lib.lathe_set_input(handle, k, _address(a)))
        flat: list = []
        for j, spec in enumerate(self._results):
            if targets is not None:
                flat.append(targets[j])
                self._check(lib.lathe_bind_output(handle, j, targets[j].ctypes.data))
            elif spec.written:
                array, address = _aligned_empty(spec.shape, spec.dtype)
                flat.append(array)
                self._check(lib.lathe_bind_output(handle, j, address))
            else:
                flat.append(None)
                self._check(lib.lathe_bind_output(handle, j, None))
        self._check(lib.lathe_run(handle))
        for j, spec in enumerate(self._results):
            if flat[j] is None:  # an input, a weight, or an output returned twice: a copy
                flat[j] = np.empty(spec.shape, spec.dtype)
                self._check(lib.lathe_get_output(handle, j, flat[j].ctypes.data))
        del keep
        return self._nest(self._nesting, flat)


def _declare(lib: ctypes.CDLL) -> None:
    """The C ABI's signatures (lathe_model.h), so ctypes passes 64-bit pointers as such."""
    p, i = ctypes.c_void_p, ctypes.c_int
    for name, restype, argtypes in (
        ("lathe_abi_version", i, []),
        ("lathe_create", p, [ctypes.c_char_p]),
        ("lathe_destroy", None, [p]),
        ("lathe_last_error", ctypes.c_char_p, []),
        ("lathe_set_num_threads", i, [p, i]),
        ("lathe_num_inputs", i, []),
        ("lathe_num_outputs", i, []),
        ("lathe_set_input", i, [p, i, p]),
        ("lathe_bind_output", i, [p, i, p]),
        ("lathe_run", i, [p]),
        ("lathe_get_output", i, [p, i, p]),
    ):
        try:
            f = getattr(lib, name)
        except AttributeError:
            raise LatheError(f"{lib._name} is not a Lathe model library: it has no {name}") from None
        f.restype, f.argtypes = restype, argtypes


def load(path: str | os.PathLike, num_threads: int | None = None, verify: bool = True) -> Artifact:
    """A deployed model from its directory. `num_threads`: threads for parallel loops (default:
    LATHE_NUM_THREADS, else the cores the process may use); `verify`: check the library's and
    weights' SHA-256 (their sizes are always checked)."""
    return Artifact(path, num_threads, verify)
