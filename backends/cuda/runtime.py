"""The CUDA driver API through cuda-bindings (`pip install 'lathe[cuda]'`): one context and
one stream per process, device memory, module loading, launches, events for timing.

Imported only when a model is run on `cuda`, so compiling to PTX needs neither the
bindings nor a driver. Every driver call's status is checked; a failure is a LatheError
naming the call and the driver's error name. The executor calls kernels through ctypes
function pointers (`void f(void **args)`, one device address per argument): a launcher
here is such a function, which hands the argument array to cuLaunchKernel as its
`kernelParams` (argument k's value lives at args + 8k) on the stream. Launches are
asynchronous; `synchronize` waits, and raises what a launch inside a callback could not.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
from collections.abc import Sequence

import numpy as np

from lathe.backends.interface import Device, KernelLibrary
from lathe.errors import LatheError

INSTALL = "pip install 'lathe[cuda]' (cuda-bindings), with an NVIDIA GPU and its driver"
KERNEL_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
POINTER = ctypes.sizeof(ctypes.c_void_p)


def _driver():
    try:
        from cuda.bindings import driver
    except ImportError:
        raise LatheError(
            "running on cuda needs the CUDA Python bindings, which are not installed", note=INSTALL
        ) from None
    return driver


def check(result, call: str):
    """cuda-bindings returns (CUresult, values...): the values, or a LatheError."""
    d = _driver()
    status, *values = result if isinstance(result, tuple) else (result,)
    if status != d.CUresult.CUDA_SUCCESS:
        _, name = d.cuGetErrorName(status)
        text = name.decode() if isinstance(name, bytes) else str(status)
        raise LatheError(f"CUDA: {call} failed: {text}")
    return values[0] if len(values) == 1 else tuple(values)


class Context:
    """The process's CUDA context on device 0, and the one stream every launch and copy uses."""

    def __init__(self):
        d = _driver()
        try:
            status = d.cuInit(0)
        except Exception as e:  # noqa: BLE001 - cuda-bindings raises its own kinds when libcuda is absent
            missing = "NotFound" in type(e).__name__ or isinstance(e, OSError)
            raise LatheError(
                "no CUDA driver on this machine (libcuda.so.1 was not found)"
                if missing
                else f"the CUDA driver failed to start: {e}",
                note=INSTALL + "; without one, lathe compile --target cuda -o model.ptx still writes PTX",
            ) from None
        status = status[0] if isinstance(status, tuple) else status
        if status != d.CUresult.CUDA_SUCCESS:
            _, name = d.cuGetErrorName(status)
            raise LatheError(f"the CUDA driver found no usable GPU ({name.decode()})", note=INSTALL)
        if check(d.cuDeviceGetCount(), "cuDeviceGetCount") < 1:
            raise LatheError("the CUDA driver found no GPU", note=INSTALL)
        self.device = check(d.cuDeviceGet(0), "cuDeviceGet")
        self.context = check(d.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain")
        check(d.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self.stream = check(d.cuStreamCreate(0), "cuStreamCreate")
        self.pending: LatheError | None = None  # a launch's failure, raised by synchronize
        name = check(d.cuDeviceGetName(256, self.device), "cuDeviceGetName")
        self.name = name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)
        attr = d.CUdevice_attribute
        major = check(d.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.device), "cc")
        minor = check(d.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.device), "cc")
        self.arch = f"sm_{major}{minor}"

    def synchronize(self) -> None:
        check(_driver().cuStreamSynchronize(self.stream), "cuStreamSynchronize")
        if self.pending is not None:
            error, self.pending = self.pending, None
            raise error


@functools.cache
def context() -> Context:
    return Context()


def probe() -> str:
    """One line for `lathe backends`: the GPU, or why there is none. Never raises."""
    try:
        ctx = context()
    except LatheError as e:
        return e.message
    return f"{ctx.name} ({ctx.arch})"


class DeviceBuffer:
    """Device memory for one array; freed with the object."""

    def __init__(self, shape: Sequence[int], dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.nbytes = max(1, math.prod(self.shape)) * self.dtype.itemsize
        self.ptr = check(_driver().cuMemAlloc(self.nbytes), "cuMemAlloc")
        self.address = int(self.ptr)

    def __del__(self):
        with contextlib.suppress(Exception):  # at interpreter exit the driver may be gone first
            _driver().cuMemFree(self.ptr)


class CUDADevice(Device):
    """Buffers in device memory: inputs are copied in and results out, on the stream."""

    host_memory = False

    def __init__(self):
        self.ctx = context()

    def allocate(self, shape: Sequence[int], dtype) -> DeviceBuffer:
        return DeviceBuffer(shape, dtype)

    def address(self, buffer: DeviceBuffer) -> int:
        return buffer.address

    def copy_in(self, buffer: DeviceBuffer, array: np.ndarray) -> None:
        host = np.ascontiguousarray(array, dtype=buffer.dtype)
        check(
            _driver().cuMemcpyHtoDAsync(buffer.ptr, host.ctypes.data, host.nbytes, self.ctx.stream),
            "cuMemcpyHtoDAsync",
        )
        self.ctx.synchronize()  # `host` may be a temporary

    def copy_out(self, buffer: DeviceBuffer) -> np.ndarray:
        out = np.empty(buffer.shape, buffer.dtype)
        check(
            _driver().cuMemcpyDtoHAsync(out.ctypes.data, buffer.ptr, out.nbytes, self.ctx.stream), "cuMemcpyDtoHAsync"
        )
        self.ctx.synchronize()
        return out

    def synchronize(self) -> None:
        self.ctx.synchronize()


class CUDAKernels(KernelLibrary):
    """A loaded CUDA module: PTX (the driver compiles it for the GPU) or a cubin, and each
    kernel's launch dimensions. `address(name)` is a launcher with the packed-entry ABI;
    `entry(calls)` one that launches a whole run back to back on the stream."""

    def __init__(self, image: bytes, plans: Sequence, stats=None):
        d = _driver()
        self.ctx = context()
        self.stats = stats
        self._image = ctypes.create_string_buffer(image)  # NUL-terminated PTX (or a cubin), by address
        self.module = check(d.cuModuleLoadData(ctypes.addressof(self._image)), "cuModuleLoadData")
        self.plans = {p.name: p for p in plans}  # kernel → codegen.KernelPlan: its launches in order
        self.functions = {
            launch.entry: check(d.cuModuleGetFunction(self.module, launch.entry.encode()), "cuModuleGetFunction")
            for p in plans
            for launch in p.launches
        }
        self._keep: list[object] = []  # ctypes callbacks and parameter arrays, alive as long as the library

    def _launch(self, name: str, params: int) -> None:
        """Every grid of kernel `name` in order on the stream; a failure waits for synchronize
        (a ctypes callback cannot raise into the executor)."""
        d = _driver()
        for launch in self.plans[name].launches:
            result = d.cuLaunchKernel(
                self.functions[launch.entry], *launch.grid, *launch.block, 0, self.ctx.stream, params, 0
            )
            status = result[0] if isinstance(result, tuple) else result
            if status != d.CUresult.CUDA_SUCCESS and self.ctx.pending is None:
                _, err = d.cuGetErrorName(status)
                self.ctx.pending = LatheError(f"CUDA: launching @{launch.entry} failed: {err.decode()}")

    def address(self, name: str) -> int:
        if name not in self.plans:
            raise LatheError(f"CUDA backend: kernel @{name} is not in the loaded module")
        nargs = self.plans[name].arity
        params = (ctypes.c_void_p * max(1, nargs))()
        base = ctypes.addressof(params)

        def launcher(args: int) -> None:
            for k in range(nargs):
                params[k] = args + POINTER * k
            self._launch(name, base)

        fn = KERNEL_FN(launcher)
        self._keep += [fn, params]
        return ctypes.cast(fn, ctypes.c_void_p).value  # type: ignore[return-value]

    def entry(self, calls, num_slots: int) -> int | None:
        """One callback per run: every kernel launched in order, each with pointers into the
        executor's slot table (which holds the device addresses) as its parameters."""
        arrays = []
        for name, slots in calls:
            if name not in self.plans:
                return None
            arrays.append((name, list(slots), (ctypes.c_void_p * max(1, len(slots)))()))

        def run(table: int) -> None:
            for name, slots, params in arrays:
                for k, s in enumerate(slots):
                    params[k] = table + POINTER * s
                self._launch(name, ctypes.addressof(params))

        fn = KERNEL_FN(run)
        self._keep += [fn, arrays]
        return ctypes.cast(fn, ctypes.c_void_p).value

    def synchronize(self) -> None:
        self.ctx.synchronize()

    def time(self, fn, repeat: int = 1) -> float:
        """Seconds per call of `fn` (which launches on the stream), by events around `repeat` calls."""
        d = _driver()
        start, stop = (check(d.cuEventCreate(0), "cuEventCreate") for _ in range(2))
        check(d.cuEventRecord(start, self.ctx.stream), "cuEventRecord")
        for _ in range(repeat):
            fn()
        check(d.cuEventRecord(stop, self.ctx.stream), "cuEventRecord")
        check(d.cuEventSynchronize(stop), "cuEventSynchronize")
        ms = check(d.cuEventElapsedTime(start, stop), "cuEventElapsedTime")
        for e in (start, stop):
            d.cuEventDestroy(e)
        self.ctx.synchronize()
        return ms / 1e3 / repeat
