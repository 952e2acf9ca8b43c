"""The OpenCL backend: GPU loop IR → OpenCL C → pyopencl, on any OpenCL device (PoCL on a CPU in CI).

Built only on the plug-in interface (nothing outside this package imports it): the shared
GPU schedule templates bind every kernel to work-groups and work-items
(`graph_pass_options`), emitter.py writes OpenCL C, runtime.py builds and launches it.

Target: `opencl`, `opencl -device=N` (the N-th device over all platforms, default 0).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

from xdsl.dialects.builtin import ModuleOp

from lathe.backends.interface import Backend, Capabilities, Target
from lathe.backends.opencl.emitter import OpenCLSource, emit_program
from lathe.dialects.graph import DTYPES
from lathe.errors import LatheError

OPTIONS = {"-device": "the index of the OpenCL device over all platforms (default 0)"}
DEFAULT_MAX_THREADS = 256  # work-items per group the schedules use where the device is unknown
WARP_SIZE = 32
# what the schedules claim on a GPU: bind and the loop-shaping primitives; parallel/vectorize
# loops run serially inside a work-item, which is correct but not what they ask for
GPU_PRIMITIVES = frozenset(
    {
        "split",
        "tile",
        "fuse",
        "reorder",
        "unroll",
        "bind",
        "pragma",
        "compute_inline",
        "compute_at",
        "compute_root",
        "cache_write",
        "cache_read",
        "rfactor",
        "storage_align",
        "prefetch",
    }
)

_PROBE = """
import json, sys
try:
    import pyopencl as cl
    ds = [d for p in cl.get_platforms() for d in p.get_devices()]
except Exception as e:
    print(json.dumps({"error": str(e).strip() or type(e).__name__})); sys.exit()
print(json.dumps([{"name": d.name.strip(), "platform": d.platform.name.strip(), "version": d.version.strip(),
    "fp64": "cl_khr_fp64" in d.extensions, "max_threads": d.max_work_group_size} for d in ds]))
"""


@functools.cache
def probe() -> list[dict] | str:
    """The OpenCL devices (or why there are none), asked in a child process: PoCL started in
    this one would not survive the conformance suite's fork()."""
    try:
        import importlib.util

        if importlib.util.find_spec("pyopencl") is None:
            return "pyopencl is not installed"
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
        found = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
        return f"probing OpenCL failed: {e}"
    if isinstance(found, dict):
        return f"no OpenCL platform: {found['error']}"
    return found or "no OpenCL device found"


class OpenCLBackend(Backend):
    name = "opencl"
    version = "1"
    target_kinds = ("opencl",)
    description = "OpenCL C through pyopencl (GPUs, or PoCL on the CPU); GPU schedule templates"
    source_suffix = ".cl"
    binary_suffix = ".bin"
    target_options = OPTIONS

    def parse_target(self, kind: str, options: dict[str, str]) -> Target:
        self.check_target(kind, options)
        device = options.get("-device", "0")
        if not device.isdigit():
            raise LatheError(f"-device must be a device index, got '{device}'")
        return Target("opencl", triple="opencl", vector_bits=32, options=tuple(options.items()))

    def _device_index(self, target: Target) -> int:
        return int(target.option("-device", "0"))  # type: ignore[arg-type]

    def _device_info(self, target: Target) -> dict | None:
        found = probe()
        if isinstance(found, str) or self._device_index(target) >= len(found):
            return None
        return found[self._device_index(target)]

    def capabilities(self, target: Target) -> Capabilities:
        info = self._device_info(target)
        dtypes = frozenset(d for d in DTYPES if d != "float16" and (d != "float64" or (info and info["fp64"])))
        return Capabilities(dtypes=dtypes, schedule_primitives=GPU_PRIMITIVES, runs_here=info is not None)

    def status(self) -> str:
        found = probe()
        if isinstance(found, str):
            return f"{found}: {_note()}"
        return "; ".join(f"{d['platform']}: {d['name']} ({d['version']})" for d in found)

    def graph_pass_options(self, target: Target) -> dict[str, dict[str, object]]:
        info = self._device_info(target)
        threads = min(1024, info["max_threads"]) if info else DEFAULT_MAX_THREADS
        return {
            "alter-op-layout": {"vector_lanes": 1},
            "winograd-conv": {"vector_lanes": 1},
            "block-conv-weights": {"vector_lanes": 1},
            "apply-default-schedule": {"gpu": True, "max_threads": threads, "warp_size": WARP_SIZE},
        }

    # -- compilation -----------------------------------------------------------
    def emit(self, module: ModuleOp, target: Target) -> OpenCLSource:
        from lathe.backends.llvm.kernel_cache import kernel_key

        return emit_program(module, lambda f: kernel_key(f, target))  # type: ignore[arg-type]

    def render(self, module: ModuleOp, target: Target) -> str:
        return self.emit(module, target).text

    def _build(self, source: str, target: Target):
        from lathe.backends.opencl.runtime import runtime

        rt = runtime(self._device_index(target))
        try:
            return rt, rt.cl.Program(rt.context, source).build()
        except rt.cl.Error as e:
            raise LatheError(f"OpenCL backend: the OpenCL C did not build: {str(e).strip()[:2000]}") from None

    def compile_source(self, source: str, target: Target) -> bytes:
        _, program = self._build(source, target)
        return b"".join(program.binaries)

    def load(self, module: ModuleOp, target: Target):
        from lathe.backends.opencl.runtime import OpenCLKernelLibrary

        source = self.emit(self.lower(module, target), target)
        rt, program = self._build(source.text, target)
        return OpenCLKernelLibrary(rt, program, source.plans)

    def artifact(self, module: ModuleOp, target: Target) -> dict[str, bytes]:
        """kernels.cl: the OpenCL C, which any OpenCL driver builds (binaries are per device)."""
        return {"kernels.cl": self.render(self.lower(module, target), target).encode()}

    def device(self, target: Target):
        from lathe.backends.opencl.runtime import OpenCLDevice

        return OpenCLDevice(self._device_index(target))


def _note() -> str:
    from lathe.backends.opencl.runtime import install_note

    return install_note()
