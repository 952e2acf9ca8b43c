"""The graph executor: runs a bufferized glue function with JIT-compiled kernels.

The plan is static, as in TVM's graph executor: every buffer (input, kernel
output, constant) is allocated once, 64-byte aligned, when the module is
built; each kernel call gets a prebuilt array of buffer pointers. A run is
then: copy the inputs in, call the kernels in order, copy the outputs out.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from xdsl.dialects import func, memref
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.ir import SSAValue

from lathe.backends.interface import Device, HostDevice
from lathe.dialects import graph
from lathe.dialects.dtypes import np_dtype
from lathe.dialects.functions import is_kernel
from lathe.dialects.reference import check_value, constant_value
from lathe.errors import LatheError

_KERNEL_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


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
    ):
        self.before_run = before_run  # the backend's per-run setup (its thread count)
        self.device = device = device or HostDevice()  # where the backend's buffers live
        funcs = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
        if entry not in funcs:
            raise LatheError(f"the module has no function @{entry}")
        fn = funcs[entry]
        globals_ = {g.sym_name.data: g for g in module.ops if isinstance(g, memref.GlobalOp)}
        params = params or {}
        self.buffers: list = []
        slot: dict[SSAValue, object] = {}

        def new_buffer(t: MemRefType) -> int:
            self.buffers.append(device.allocate(tuple(t.get_shape()), np_dtype(t.element_type)))
            return len(self.buffers) - 1

        self.input_names: list[str] = []
        self.input_slots: list[int] = []
        self.input_types = []
        for name, arg in zip(param_names, fn.body.block.args):
            if not isinstance(arg.type, MemRefType):
                raise LatheError(f"@{entry}: parameter %{name} is not a buffer")
            k = new_buffer(arg.type)
            slot[arg] = k
            if name in params:
                device.copy_in(self.buffers[k], check_value(name, params[name], _tensor_type(arg.type)))
            else:
                self.input_names.append(name)
                self.input_slots.append(k)
                self.input_types.append(_tensor_type(arg.type))

        self.steps: list[tuple[object, object, str]] = []
        self._keep: list[object] = []
        self.outputs: object = None
        for op in fn.body.block.ops:
            if isinstance(op, memref.AllocOp):
                slot[op.memref] = new_buffer(op.memref.type)  # type: ignore[arg-type]
            elif isinstance(op, memref.GetGlobalOp):
                g = globals_[op.name_.root_reference.data]
                k = new_buffer(op.memref.type)  # type: ignore[arg-type]
                device.copy_in(self.buffers[k], _global_value(g))
                slot[op.memref] = k
            elif isinstance(op, func.CallOp):
                name = op.callee.root_reference.data
                callee = funcs.get(name)
                if callee is None or not is_kernel(callee):
                    raise LatheError(f"graph executor: @{name} is not a compiled kernel")
                ptrs = (ctypes.c_void_p * len(op.arguments))(
                    *[device.address(self.buffers[slot[a]]) for a in op.arguments]  # type: ignore[index]
                )
                fnptr = _KERNEL_FN(addresses[name])
                self._keep.append(ptrs)
                self.steps.append((fnptr, ptrs, name))
            elif isinstance(op, graph.TupleOp):
                slot[op.result] = tuple(slot[a] for a in op.operands)
            elif isinstance(op, graph.TupleGetItemOp):
                slot[op.result] = slot[op.tuple][op.index.value.data]  # type: ignore[index]
            elif isinstance(op, func.ReturnOp):
                self.outputs = slot[op.operands[0]] if len(op.operands) == 1 else tuple(slot[v] for v in op.operands)
            else:
                raise LatheError(f"graph executor: cannot run '{op.name}' in @{entry}")

    def set_inputs(self, args: Sequence[np.ndarray], kwargs: Mapping[str, np.ndarray]) -> None:
        if len(args) > len(self.input_names):
            raise LatheError(
                f"run() takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), got {len(args)}"
            )
        given = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k in given:
                raise LatheError(f"input '{k}' is given twice")
            given[k] = v
        unknown = set(given) - set(self.input_names)
        if unknown:
            raise LatheError(
                f"unknown input(s) {', '.join(sorted(unknown))}", note="inputs: " + ", ".join(self.input_names)
            )
        missing = [n for n in self.input_names if n not in given]
        if missing:
            raise LatheError(f"missing input(s) {', '.join(missing)}")
        for name, k, t in zip(self.input_names, self.input_slots, self.input_types):
            self.device.copy_in(self.buffers[k], check_value(name, given[name], t))

    def execute(self) -> None:
        self.before_run()
        for fnptr, ptrs, _ in self.steps:
            fnptr(ptrs)  # type: ignore[operator]
        self.device.synchronize()

    def get_outputs(self):
        def out(s):
            return tuple(out(x) for x in s) if isinstance(s, tuple) else self.device.copy_out(self.buffers[s])

        return out(self.outputs)

    def run(self, *args, **kwargs):
        self.set_inputs(args, kwargs)
        self.execute()
        return self.get_outputs()

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
