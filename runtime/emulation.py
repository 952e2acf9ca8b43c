"""Running a model compiled for another architecture on this machine, under an emulator.

`lathe.compile(module, target="llvm -mtriple=aarch64-linux-gnu", emulate=True)` on an x86
host (and `lathe run --target ...`, which always asks) builds the model's deployable
artifact (runtime/export.py: the same plan and library as `lathe compile -o DIR`, linked
by the cross compiler) into a private directory, and each `run()` hands it to the
backend's emulator (`Backend.emulator`: qemu-user for the LLVM backend), which runs it
through the library's C ABI and gives the outputs back. Inputs are bound and results
nested as the artifact loader does (runtime/artifact.Signature), so `run()` takes and
returns what `CompiledModule.run` does. Timings under emulation say nothing about the
target, so an emulated module does not benchmark or profile.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from lathe.backends.interface import Backend, EmulatedRun, Target
from lathe.errors import LatheError
from lathe.runtime.artifact import METADATA, Signature
from lathe.runtime.export import export


class EmulatedExecutor(Signature):
    """A loop-level module deployed to a private directory and run by an emulator."""

    def __init__(
        self,
        loop_module: ModuleOp,
        backend: Backend,
        target: Target,
        entry: str,
        params: Mapping[str, np.ndarray] | None,
        names: Sequence[str],
        num_threads: int,
    ):
        self.emulator = backend.emulator(target)  # first: what is missing is said before any work
        self.target = target
        self.num_threads = num_threads
        self.directory = tempfile.mkdtemp(prefix="lathe-emulated-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.directory, True)
        _, not_linked = export(loop_module, backend, target, self.directory, params, names, entry)
        if not_linked:
            raise LatheError(f"cannot run {target} here: {not_linked}")
        with open(os.path.join(self.directory, METADATA)) as f:
            self.metadata = json.load(f)
        super().__init__(self.metadata)

    @property
    def description(self) -> str:
        return self.emulator.description

    def job(self, *args, **kwargs) -> EmulatedRun:
        """One run of this model on these inputs, for `Emulator.run` (alone, or in a batch)."""
        inputs = [self._input(spec, value) for spec, value in zip(self._inputs, self._values(args, kwargs))]
        return EmulatedRun(
            os.path.join(self.directory, self.metadata["library"]["file"]),
            os.path.join(self.directory, self.metadata["weights"]["file"]),
            inputs,
            [(r.shape, r.dtype.name) for r in self._results],
        )

    def results(self, flat: list[np.ndarray], out=None):
        """A job's flat outputs nested as the model returns them, or copied into `out`."""
        if out is not None:
            targets = self._targets(out)
            for t, a in zip(targets, flat):
                t[...] = a
            flat = targets
        return self._nest(self._nesting, flat)

    def run(self, *args, out=None, **kwargs):
        if out is not None and "out" in self.input_names:
            kwargs["out"], out = out, None
        if out is not None:
            self._targets(out)  # a wrong `out` is said before the emulator starts
        (flat,) = self.emulator.run([self.job(*args, **kwargs)], self.num_threads)
        return self.results(flat, out)

    def _not_measured(self, what: str):
        return LatheError(
            f"{what}: this module runs under emulation ({self.description}), and timings under emulation "
            f"say nothing about {self.target.arch} hardware",
            note="measure on a machine of that architecture: lathe compile -o DIR, then load it there",
        )

    def benchmark(self, repeat: int = 100, warmup_seconds: float = 1.0) -> list[float]:
        raise self._not_measured("benchmark")

    def memory_report(self):
        raise LatheError(
            "memory_report: not kept for a module run under emulation",
            note="the plan is the target's: compile it for this machine to read it",
        )
