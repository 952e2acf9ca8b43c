"""Deployable artifacts: a compiled model as a directory that runs without the compiler.

`lathe compile -o DIR` writes (docs/deployment.md):

    model.so        the whole run behind a C ABI (the backend's `library`)
    weights.bin     every constant, little-endian, each at a 64-byte-aligned offset
    metadata.json   format version, target and CPU features, inputs and results, hashes
    lathe_model.h, example.c, README.txt, and the files model.so is linked from
    load.py         the loader (runtime/artifact.py) as one file: numpy and the standard library

The run is the graph executor's own plan (the same slots, calls, arena offsets and
result nesting `CompiledModule.run` uses): an executor is built on the loop module with
no kernels loaded, and its plan is read back and laid out in one block of memory.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import shlex
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from lathe.backends.interface import Backend, InputSpec, KernelLibrary, ResultSpec, RunProgram, Target
from lathe.dialects.functions import Nesting
from lathe.errors import LatheError
from lathe.runtime import artifact
from lathe.runtime.graph_executor import GraphExecutor
from lathe.runtime.memory_plan import aligned_size

LOADER = "load.py"
EXAMPLE_BUILD = "cc -O2 -o example example.c ./model.so -Wl,-rpath,'$ORIGIN' -lm"  # on the target's machine


def _example_build(link: str | None, target: Target) -> str:
    """EXAMPLE_BUILD, by the compiler that linked model.so (link.sh's command, up to its first
    flag) where the target is another architecture's: the example is cross-compiled too."""
    if link is None or target.arch == artifact.host_arch():
        return EXAMPLE_BUILD
    compiler = list(itertools.takewhile(lambda w: not w.startswith("-"), shlex.split(link)))
    return shlex.join(compiler) + EXAMPLE_BUILD.removeprefix("cc")


class _CallRecorder(KernelLibrary):
    """A library with no kernels that keeps the calls the executor asks an entry for."""

    calls: Sequence[tuple[str, Sequence[int]]] = ()

    def entry(self, calls, num_slots: int) -> None:
        self.calls = calls
        return None


def run_program(
    loop_module: ModuleOp, entry: str = "main", params: Mapping[str, np.ndarray] | None = None, names=()
) -> tuple[RunProgram, Nesting, list[tuple[int, np.ndarray]]]:
    """The executor's plan of a run as a RunProgram, the results' nesting (indices into the
    flat results), and the weights with their offsets in the block."""
    recorder = _CallRecorder()
    # the executor takes its plan from the IR alone; kernel addresses are never called here
    ex = GraphExecutor(loop_module, defaultdict(int), entry, params, names, library=recorder)
    offset = 0

    def take(nbytes: int) -> int:
        nonlocal offset
        at, offset = offset, offset + aligned_size(nbytes)
        return at

    placed: list[tuple[int, int]] = []
    weights: list[tuple[int, np.ndarray]] = []  # (offset, value)
    for s, buffer in sorted(ex._constants.items()):
        placed.append((s, take(buffer.nbytes)))
        weights.append((placed[-1][1], np.ascontiguousarray(buffer)))
    weights_bytes = offset
    arena = take(ex.plan.arena_bytes) if ex.plan.arena_bytes else offset
    base = ex.device.address(ex._arena)
    io = {i.slot for i in ex._inputs} | {o.slot for o in ex._outputs} | set(ex._constants)
    for s in range(ex.num_slots):
        address = ex._slots[s]
        if s not in io and address:  # a planned intermediate (an alloc no call uses has none)
            placed.append((s, arena + address - base))
    inputs = tuple(
        InputSpec(i.name, i.slot, tuple(i.shape), i.dtype.name, take(_nbytes(i.shape, i.dtype))) for i in ex._inputs
    )
    structure = ex._structure()
    names_of = _result_names(structure)
    results = []
    for j, (written, k) in enumerate(ex._results):
        s = ex._outputs[k].slot if written else k
        shape, dtype = ex._kinds[s]
        at = take(_nbytes(shape, dtype)) if written else -1
        results.append(ResultSpec(names_of[j], s, tuple(shape), dtype.name, written, at))
    calls = tuple((name, tuple(args)) for name, args in recorder.calls)
    program = RunProgram(ex.num_slots, calls, tuple(placed), weights_bytes, offset, inputs, tuple(results))
    return program, structure, weights


def _nbytes(shape, dtype) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def _result_names(structure: Nesting) -> dict[int, str]:
    """output, or output_0, output_1_0, ... by where each flat result sits (as `lathe run
    --output` names them)."""
    names: dict[int, str] = {}

    def walk(n: Nesting, name: str) -> None:
        if isinstance(n, tuple):
            for k, m in enumerate(n):
                walk(m, f"{name}_{k}")
        else:
            names.setdefault(n, name)

    walk(structure, "output")
    return names


def _weights_blob(program: RunProgram, weights: list[tuple[int, np.ndarray]]) -> bytes:
    blob = bytearray(program.weights_bytes)
    for at, w in weights:
        data = w.astype(w.dtype.newbyteorder("<"), copy=False).tobytes()
        blob[at : at + len(data)] = data
    return bytes(blob)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _lathe_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lathe")
    except PackageNotFoundError:
        return "unknown"


def export(
    loop_module: ModuleOp,
    backend: Backend,
    target: Target,
    directory: str | os.PathLike,
    params: Mapping[str, np.ndarray] | None = None,
    param_names: Sequence[str] = (),
    entry: str = "main",
) -> tuple[list[str], str | None]:
    """Write the artifact of a loop-level module; returns the files written and, where the
    library could not be linked (no linker for another architecture), why."""
    if not backend.deploys:
        raise LatheError(f"the {backend.name} backend does not build deployable libraries")
    program, structure, weights = run_program(loop_module, entry, params, param_names)
    files = backend.library(loop_module, target, program)
    files["weights.bin"] = _weights_blob(program, weights)
    not_linked = files.get("NOT_LINKED.txt", b"").decode().strip() or None
    library = files.get("model.so")
    link = files.get("link.sh", b"").decode().strip().splitlines()
    meta = {
        "format": artifact.FORMAT,
        "format_version": artifact.FORMAT_VERSION,
        "lathe_version": _lathe_version(),
        "built_on": f"{platform.machine()} python {sys.version.split()[0]}",
        "target": {
            "string": str(target),
            "triple": target.triple,
            "arch": target.arch,
            "cpu": target.cpu,
            "features": [f for f in target.features.split(",") if f.startswith("+")],
        },
        "library": None if library is None else {"file": "model.so", "bytes": len(library), "sha256": _sha256(library)},
        "not_linked": not_linked,
        "weights": {
            "file": "weights.bin",
            "bytes": len(files["weights.bin"]),
            "sha256": _sha256(files["weights.bin"]),
            "byte_order": "little",
            "tensors": [{"offset": at, "shape": list(w.shape), "dtype": w.dtype.name} for at, w in weights],
        },
        "memory_bytes": program.block_bytes,
        "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in program.inputs],
        "outputs": [
            {"name": r.name, "shape": list(r.shape), "dtype": r.dtype, "written": r.written} for r in program.results
        ],
        "nesting": _json_nesting(structure),
        "example": {"build": _example_build(link[-1] if link else None, target), "run": "./example weights.bin"},
    }
    files["metadata.json"] = (json.dumps(meta, indent=1) + "\n").encode()
    files[LOADER] = Path(artifact.__file__).read_bytes()
    files["README.txt"] = _readme(meta, target, link[-1] if link else None).encode()
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():
        path = Path(directory) / name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return sorted(files), not_linked


def _json_nesting(n: Nesting):
    return [_json_nesting(m) for m in n] if isinstance(n, tuple) else n


def _readme(meta: dict, target: Target, link: str | None) -> str:
    inputs = "\n".join(f"  {i['name']}: {tuple(i['shape'])} {i['dtype']}" for i in meta["inputs"])
    outputs = "\n".join(f"  {o['name']}: {tuple(o['shape'])} {o['dtype']}" for o in meta["outputs"])
    state = "model.so is linked" if meta["library"] else f"model.so is NOT linked: {meta['not_linked']}"
    relink = f"; sh link.sh links it again:\n  {link}" if link else ""
    return f"""A model compiled by Lathe {meta["lathe_version"]} for {target} ({target.triple}, cpu {target.cpu or "generic"}).

Inputs:
{inputs}
Outputs (flat; metadata.json's "nesting" nests them as the model returns them):
{outputs}

From Python, with numpy only (Lathe need not be installed), in this directory:
  python -c "import load, numpy as np; m = load.load('.'); print(m.input_names); y = m.run(*inputs)"
or where Lathe is installed: lathe.runtime.load(THIS_DIRECTORY).

From C: lathe_model.h declares the ABI (docs/deployment.md); example.c runs the model once:
  {meta["example"]["build"]}
  {meta["example"]["run"]}

{state}{relink}
"""
