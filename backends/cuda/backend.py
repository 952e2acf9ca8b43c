"""The CUDA backend on the Backend interface: loop IR → NVPTX LLVM IR → PTX (llvmlite) →
the driver (cuda-bindings), built as a third party would build it.

Targets: `cuda` (PTX for sm_80, which every later GPU runs), `cuda -arch=sm_90`,
`cuda -opt-level=2`. Compiling needs only llvmlite (and libdevice, from the
`nvidia-cuda-nvcc-cu12` wheel or a CUDA toolkit, where kernels call math functions);
ptxas checks and assembles the PTX (`lathe compile --emit=obj`, the artifact's cubin);
running needs `pip install 'lathe[cuda]'`, a GPU and its driver.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import llvmlite.binding as llvm
from xdsl.dialects.builtin import ModuleOp

from lathe.backends.cuda.codegen import TRIPLE, module_to_nvptx_ir
from lathe.backends.cuda.ptx import ARCHES, DEFAULT_ARCH, find_libdevice, to_ptx
from lathe.backends.cuda.ptxas import INSTALL_NOTE, assemble, find_ptxas, ptxas_version, resource_table
from lathe.backends.interface import Backend, Capabilities, Device, KernelLibrary, Target, parse_opt_level
from lathe.backends.llvm.backend import CPU_PRIMITIVES
from lathe.errors import LatheError

OPTIONS = {
    "-arch": f"the GPU architecture the PTX is for: {', '.join(ARCHES)} (default {DEFAULT_ARCH})",
    "-opt-level": "0..3, LLVM's optimisation level",
}
MAX_THREADS = 1024  # threads per block, every architecture Lathe targets
WARP_SIZE = 32


@dataclass
class CUDAStats:
    kernels: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.kernels} kernels, PTX and module load in {self.seconds:.2f} s"


class CUDABackend(Backend):
    name = "cuda"
    target_kinds = ("cuda",)
    description = "NVIDIA GPUs: NVPTX through llvmlite, run through the CUDA driver (cuda-bindings)"
    source_suffix = ".ptx"
    binary_suffix = ".cubin"
    target_options = OPTIONS

    @property
    def version(self) -> str:  # type: ignore[override]
        return "LLVM " + ".".join(map(str, llvm.llvm_version_info))

    # -- targets ---------------------------------------------------------------
    def parse_target(self, kind: str, options: dict[str, str]) -> Target:
        self.check_target(kind, options)
        arch = options.get("-arch", DEFAULT_ARCH)
        if arch not in ARCHES:
            raise LatheError(f"unknown CUDA architecture '{arch}'", note=f"known: {', '.join(ARCHES)}")
        level = parse_opt_level(options.get("-opt-level", "3"))
        return Target("cuda", triple=TRIPLE, cpu=arch, vector_bits=128, opt_level=level)

    def capabilities(self, target: Target) -> Capabilities:
        return Capabilities(schedule_primitives=CPU_PRIMITIVES | {"bind"}, runs_here=self._gpu() is None)

    def status(self) -> str:
        gpu = self._gpu()
        ptxas = find_ptxas()
        parts = [
            f"driver: {'not found: ' + gpu if gpu else 'ready, ' + self._device_name()}",
            f"ptxas: {f'{ptxas} (CUDA {ptxas_version(ptxas)})' if ptxas else 'not found'}",
            f"libdevice: {'found' if find_libdevice() else 'not found'}",
        ]
        return "; ".join(parts)

    def _gpu(self) -> str | None:
        """Why kernels cannot run here, or None when a GPU and its driver are present."""
        try:
            from lathe.backends.cuda.runtime import context

            context()
        except LatheError as e:
            return e.message
        return None

    def _device_name(self) -> str:
        from lathe.backends.cuda.runtime import context

        ctx = context()
        return f"{ctx.name} ({ctx.arch})"

    # -- compilation -----------------------------------------------------------
    def graph_pass_options(self, target: Target) -> dict[str, dict[str, object]]:
        """GPU schedules (docs/backends.md, "GPU kernels"): no weight packing for vectors, and the
        GPU templates with the block size limit and warp size. Until apply-default-schedule
        takes the `gpu` option, the CPU templates with one lane, whose kernels run unbound."""
        from lathe.lowering.schedules import ApplyDefaultSchedule

        fields = {f.name for f in dataclasses.fields(ApplyDefaultSchedule)}
        schedule: dict[str, object] = {"vector_lanes": 1}
        if "gpu" in fields:
            schedule = {"gpu": True, "max_threads": MAX_THREADS, "warp_size": WARP_SIZE}
        return {
            "alter-op-layout": {"vector_lanes": 1},
            "winograd-conv": {"vector_lanes": 1},
            "block-conv-weights": {"vector_lanes": 1},
            "apply-default-schedule": schedule,
        }

    def nvptx_ir(self, module: ModuleOp) -> str:
        """The kernels as NVPTX LLVM IR, before LLVM's optimiser (what render compiles)."""
        return module_to_nvptx_ir(module)[0]

    def render(self, module: ModuleOp, target: Target) -> str:
        return to_ptx(self.nvptx_ir(module), target.cpu, target.opt_level)

    def assembly(self, source: str, target: Target) -> str:
        """PTX is NVPTX's assembly: the rendered source itself."""
        return source

    def compile_source(self, source: str, target: Target) -> bytes:
        return assemble(source, target.cpu)[0]

    def resources(self, module: ModuleOp, target: Target) -> str:
        """`ptxas -v` of every kernel: registers, spills, stack and shared memory, as a table."""
        return resource_table(assemble(self.render(module, target), target.cpu)[1])

    def artifact(self, module: ModuleOp, target: Target) -> dict[str, bytes]:
        """kernels.ptx (what the driver loads), kernels.ll (the NVPTX IR it came from),
        launch.json (each kernel's grid, block and argument count) and, where ptxas is
        found, kernels.cubin and resources.txt."""
        ir, plans = module_to_nvptx_ir(module)
        ptx = to_ptx(ir, target.cpu, target.opt_level)
        launches = {p.name: {"arity": p.arity, "launches": [la.as_json() for la in p.launches]} for p in plans}
        files = {
            "kernels.ptx": ptx.encode(),
            "kernels.ll": ir.encode(),
            "launch.json": json.dumps({"arch": target.cpu, "kernels": launches}, indent=1).encode(),
        }
        if find_ptxas() is not None:
            cubin, rows = assemble(ptx, target.cpu)
            files["kernels.cubin"] = cubin
            files["resources.txt"] = (resource_table(rows) + "\n").encode()
        return files

    def load(self, module: ModuleOp, target: Target) -> KernelLibrary:
        from lathe.backends.cuda.runtime import CUDAKernels, context

        ctx = context()  # first: without a GPU, say so before compiling anything
        if int(ctx.arch[3:]) < int(target.cpu[3:]):
            raise LatheError(
                f"the GPU is {ctx.name} ({ctx.arch}); PTX for {target.cpu} cannot run on it",
                note=f"use --target 'cuda -arch={ctx.arch}'" if ctx.arch in ARCHES else f"known: {', '.join(ARCHES)}",
            )
        t0 = time.perf_counter()
        ir, plans = module_to_nvptx_ir(module)
        ptx = to_ptx(ir, target.cpu, target.opt_level)
        kernels = CUDAKernels(ptx.encode(), plans)
        kernels.stats = CUDAStats(len(plans), time.perf_counter() - t0)
        return kernels

    def emulator(self, target: Target):
        """Nothing emulates a GPU: asked for one (a GPU target where none runs), the driver's
        own reason, naming what to install."""
        from lathe.backends.cuda.runtime import context

        context()  # raises: no bindings, no driver, or no GPU
        raise LatheError(f"{target} runs on this machine's GPU, not under an emulator")

    def device(self, target: Target) -> Device:
        from lathe.backends.cuda.runtime import CUDADevice

        return CUDADevice()


__all__ = ["INSTALL_NOTE", "CUDABackend"]
