"""The OpenCL runtime shim: buffers, handles, and the launch callbacks the executor calls.

The graph executor plans a model's memory as one arena (a base address plus offsets) and
calls each kernel as `void name__packed(void **args)` with one address per argument. OpenCL
buffers have no addresses (SVM would give them, but it is optional in OpenCL 3.0 and absent
from many GPU drivers), so an "address" here is a handle: the buffer's number times 2**40
plus a byte offset into it. The executor's arithmetic (base + offset) works on handles
unchanged, and each kernel's callback decodes its arguments into (buffer, offset) pairs,
which the OpenCL C kernels take as `__global T *base, ulong offset`. Every buffer is
allocated once per model (arena, weights, staging, outputs); a run copies inputs in, enqueues
every launch on one in-order queue and copies outputs out.

PoCL's worker threads do not survive fork(), so nothing here touches OpenCL until a model
is loaded, and a process that forked after using it gets a fresh context (`_runtime`).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import weakref
from collections.abc import Sequence

import numpy as np

from lathe.backends.interface import Device, KernelLibrary
from lathe.errors import LatheError

HANDLE_SHIFT = 40  # an offset is below 2**40 bytes (1 TiB)
_KERNEL_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def install_note() -> str:
    return "pip install 'lathe[opencl]' (pyopencl and PoCL, a CPU OpenCL driver)"


class Runtime:
    """One OpenCL context and in-order queue, and the buffers handles name."""

    def __init__(self, device_index: int = 0):
        try:
            import pyopencl as cl
        except ImportError:
            raise LatheError("the OpenCL backend needs pyopencl", note=install_note()) from None
        devices = [d for p in _platforms(cl) for d in p.get_devices()]
        if not devices:
            raise LatheError("no OpenCL device found", note=install_note())
        if not 0 <= device_index < len(devices):
            raise LatheError(f"OpenCL device {device_index} does not exist: {len(devices)} found")
        self.cl = cl
        self.device = devices[device_index]
        self.context = cl.Context([self.device])
        self.queue = cl.CommandQueue(self.context)
        self.buffers: weakref.WeakValueDictionary[int, Buffer] = weakref.WeakValueDictionary()
        self._ids = itertools.count(1)
        self.error: LatheError | None = None  # raised by a launch callback, re-raised at synchronize

    def finish(self) -> None:
        self.queue.finish()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def new_buffer(self, nbytes: int) -> Buffer:
        b = Buffer(self.cl.Buffer(self.context, self.cl.mem_flags.READ_WRITE, max(4, nbytes)), next(self._ids))
        self.buffers[b.id] = b
        return b

    def decode(self, handle: int) -> tuple[object, np.uint64]:
        buffer = self.buffers.get(handle >> HANDLE_SHIFT)
        if buffer is None:
            raise LatheError(f"OpenCL backend: {handle:#x} is not a live buffer handle")
        return buffer.mem, np.uint64(handle & ((1 << HANDLE_SHIFT) - 1))


def _platforms(cl):
    try:
        return cl.get_platforms()
    except cl.Error:  # no ICD at all
        return []


@functools.cache
def _runtime_for(pid: int, device_index: int) -> Runtime:
    return Runtime(device_index)


def runtime(device_index: int = 0) -> Runtime:
    return _runtime_for(os.getpid(), device_index)


class Buffer:
    """A device buffer, its handle number, and what the executor sees it as."""

    def __init__(self, mem, id_: int, shape: tuple[int, ...] = (), dtype=np.uint8):
        self.mem = mem
        self.id = id_
        self.shape = shape
        self.dtype = np.dtype(dtype)

    @property
    def handle(self) -> int:
        return self.id << HANDLE_SHIFT


class OpenCLDevice(Device):
    host_memory = False

    def __init__(self, device_index: int = 0):
        self.rt = runtime(device_index)

    def allocate(self, shape: Sequence[int], dtype) -> Buffer:
        dtype = np.dtype(dtype)
        b = self.rt.new_buffer(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        b.shape, b.dtype = tuple(shape), dtype
        return b

    def address(self, buffer: Buffer) -> int:
        return buffer.handle

    def copy_in(self, buffer: Buffer, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array, dtype=buffer.dtype)
        if data.size:
            self.rt.cl.enqueue_copy(self.rt.queue, buffer.mem, data)

    def copy_out(self, buffer: Buffer) -> np.ndarray:
        out = np.empty(buffer.shape, buffer.dtype)
        if out.size:
            self.rt.cl.enqueue_copy(self.rt.queue, out, buffer.mem)
        return out

    def synchronize(self) -> None:
        self.rt.finish()


class OpenCLKernelLibrary(KernelLibrary):
    """The built program; each Lathe kernel's packed entry is a callback that enqueues its launches."""

    def __init__(self, rt: Runtime, program, plans):
        self.rt = rt
        self.program = program
        self._callbacks: dict[str, object] = {}
        self._kernels: dict[str, object] = {}
        self._scratch: dict[int, list[Buffer]] = {}  # per plan (shared by identical kernels)
        max_wg = rt.device.max_work_group_size
        for name, plan in plans.items():
            for _, launch in plan.launches:
                threads = launch.local[0] * launch.local[1] * launch.local[2]
                if threads > max_wg:
                    raise LatheError(
                        f"OpenCL backend: kernel @{name} needs {threads} work-items per group; "
                        f"the device allows {max_wg}",
                        note="give apply-default-schedule a smaller max_threads",
                    )
            self._callbacks[name] = _KERNEL_FN(self._launcher(name, plan))

    def _launcher(self, name: str, plan):
        cl, queue = self.rt.cl, self.rt.queue
        kernels = [(self._kernel(cname), launch) for cname, launch in plan.launches]
        scratch = self._scratch.setdefault(id(plan), [self.rt.new_buffer(n) for n in plan.scratch_bytes])
        tail: list = []
        for s in scratch:
            tail += [s.mem, np.uint64(0)]
        n = plan.num_args
        decode = self.rt.decode

        def launch(args: int) -> None:
            try:
                handles = (ctypes.c_uint64 * max(1, n)).from_address(args)
                values: list = []
                for k in range(n):
                    values.extend(decode(handles[k]))
                values += tail
                for kernel, spec in kernels:
                    kernel.set_args(*values)
                    cl.enqueue_nd_range_kernel(queue, kernel, spec.global_size, spec.local)
            except Exception as e:  # noqa: BLE001 - ctypes would print it and go on: kept for synchronize
                self.rt.error = e if isinstance(e, LatheError) else LatheError(f"OpenCL launch of @{name}: {e}")

        return launch

    def _kernel(self, cname: str):
        """One cl.Kernel per OpenCL kernel (identical Lathe kernels share it): its arguments are
        set just before each enqueue, which captures them."""
        if cname not in self._kernels:
            self._kernels[cname] = self.rt.cl.Kernel(self.program, cname)
        return self._kernels[cname]

    def address(self, name: str) -> int:
        if name not in self._callbacks:
            raise LatheError(f"OpenCL backend: kernel @{name} is not in the built program")
        return ctypes.cast(self._callbacks[name], ctypes.c_void_p).value  # type: ignore[return-value]

    def synchronize(self) -> None:
        self.rt.finish()
