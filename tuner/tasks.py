"""Tunable tasks: the distinct kernels of a model, each with how often it runs.

A task's workload is its kernel at te level before scheduling, printed under a fixed name:
two kernels that print alike are one task, whatever fusion called them. Its key hashes that
text with the target, so a record made for one CPU is never applied to another, and the
compile path (which sees the same te-level kernels) finds its records by the same key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType

from lathe.dialects import make_context
from lathe.dialects.dtypes import np_dtype
from lathe.dialects.functions import is_kernel
from lathe.lowering.schedules import (
    CONFIG_ATTR,
    ApplyDefaultSchedule,
    CacheInfo,
    Config,
    Space,
    default_config,
    plan_kernel,
)
from lathe.pipelines import GRAPH_PIPELINES, build_pipeline, with_pass_options

KERNEL_NAME = "kernel"  # the name every task's kernel is printed and built under


def normalised_kernel(f: func.FuncOp) -> str:
    """The kernel's text under KERNEL_NAME, without a configuration: what makes two kernels one workload."""
    g = f.clone()
    g.sym_name = StringAttr(KERNEL_NAME)
    g.attributes.pop(CONFIG_ATTR, None)
    return str(g)


def target_id(target) -> str:
    """The target as records name it: its string, with the CPU the host detection chose."""
    text = str(target)
    return text + (f" -mcpu={target.cpu}" if target.cpu and "-mcpu" not in text else "")


def workload_key(kernel_text: str, target: str) -> str:
    return hashlib.sha256(f"{kernel_text}\n{target}".encode()).hexdigest()[:24]


@dataclass
class Task:
    """One distinct kernel: its te text (unscheduled), its graph-level text (for the reference
    interpreter), its knob space, and the kernels of the model that are it."""

    key: str
    name: str  # the first kernel's name, for people
    te_text: str
    graph_text: str
    template: str
    space: Space
    lanes: int
    target: str
    kernels: list[str] = field(default_factory=list)
    weight: int = 0  # calls per run of the model
    activations: int | None = None  # bytes of every kernel output of one run of the model (measure.evicted_from)

    @property
    def default(self) -> Config:
        return default_config(self.template, self.space)

    @property
    def space_size(self) -> int:
        n = 1
        for k in self.space:
            n *= len(k.candidates)
        return n

    def signature(self) -> tuple[list[TensorType], list[TensorType]]:
        fn = _only_kernel(_parse(self.te_text))
        return list(fn.function_type.inputs.data), list(fn.function_type.outputs.data)  # type: ignore[arg-type]

    def flops(self) -> float:
        return kernel_flops(_only_kernel(_parse(self.te_text)))

    def module_text(self, graph: bool = False) -> str:
        """A module whose @main calls this task's kernel once: what a candidate is built from."""
        ins, outs = self.signature()
        args = ", ".join(f"%a{i}: {t}" for i, t in enumerate(ins))
        types_in = ", ".join(str(t) for t in ins)
        types_out = ", ".join(str(t) for t in outs)
        res = ", ".join(f"%r#{i}" for i in range(len(outs))) if len(outs) > 1 else "%r"
        head = "%r" + (f":{len(outs)}" if len(outs) > 1 else "")
        call = ", ".join(f"%a{i}" for i in range(len(ins)))
        ret_types = f"({types_out})" if len(outs) != 1 else types_out
        main = (
            f"func.func @main({args}) -> {ret_types} {{\n"
            f"  {head} = func.call @{KERNEL_NAME}({call}) : ({types_in}) -> {ret_types}\n"
            f"  func.return {res} : {types_out}\n}}\n"
        )
        body = self.graph_text if graph else self.te_text
        return f"builtin.module {{\n{main}{body}\n}}\n"

    def random_inputs(self, seed: int = 0) -> list[np.ndarray]:
        return random_arrays(self.signature()[0], seed)

    def reference(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The kernel's outputs by the numpy interpreter on its graph-level form."""
        from lathe.runtime.interpreter import interpret

        out = interpret(_parse(self.module_text(graph=True)), **{f"a{i}": x for i, x in enumerate(inputs)})
        return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


def random_arrays(types: list[TensorType], seed: int = 0) -> list[np.ndarray]:
    """Inputs of these types: normal floats, booleans, and integers in [0, 4) (valid indices
    of any gather, valid token ids of any embedding)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in types:
        dt = np_dtype(t.element_type)
        shape = tuple(t.get_shape())
        if np.issubdtype(dt, np.floating):
            out.append(rng.standard_normal(shape).astype(dt))
        elif dt == np.bool_:
            out.append(rng.integers(0, 2, shape).astype(dt))
        else:
            out.append(rng.integers(0, 4, shape).astype(dt))
    return out


def tensor_bytes(t) -> int:
    return int(np.prod(t.get_shape())) * np.dtype(np_dtype(t.element_type)).itemsize if isinstance(t, TensorType) else 0


def activation_bytes(te_module: ModuleOp) -> int:
    """Bytes of every kernel call's outputs in a te-level module: what one run of the model
    writes (without the memory planner's reuse, so at most what it touches)."""
    return sum(tensor_bytes(r.type) for op in te_module.walk() if isinstance(op, func.CallOp) for r in op.results)


def kernel_flops(f: func.FuncOp) -> float:
    """Multiply-adds ×2 of a te-level kernel's contractions plus one per other element: a
    throughput denominator (GFLOP/s), the same for every configuration."""
    from lathe.dialects import te

    total = 0.0
    for c in f.walk():
        if isinstance(c, te.ComputeOp):
            n = float(np.prod(c.spatial_extents or [1]))
            r = float(np.prod(c.reduce_extent_list or [1]))
            total += n * r * (2.0 if c.reduce_extent_list else 1.0)
    return total


def _parse(text: str) -> ModuleOp:
    from lathe.textual_ir.mlir import parse_mlir

    return parse_mlir(make_context(), text, "<task>")


def _only_kernel(module: ModuleOp) -> func.FuncOp:
    return next(f for f in module.ops if isinstance(f, func.FuncOp) and is_kernel(f))


def kernels_at_te(module: ModuleOp) -> dict[str, func.FuncOp]:
    return {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp) and is_kernel(f)}


def call_counts(module: ModuleOp) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in module.walk():
        if isinstance(op, func.CallOp):
            name = op.callee.root_reference.data
            counts[name] = counts.get(name, 0) + 1
    return counts


def extract_tasks(module: ModuleOp, target_spec: str = "llvm", params=None, entry: str = "main") -> list[Task]:
    """The distinct kernels `lathe.compile(module, target, params)` would build at -O3, heaviest first."""
    from lathe.backends.registry import resolve_target
    from lathe.passes.fold_constant import bind_params

    backend, target = resolve_target(target_spec)
    options = backend.graph_pass_options(target)
    graph_level = module.clone()
    if params:
        graph_level = bind_params(graph_level, dict(params), entry)
    build_pipeline(with_pass_options(GRAPH_PIPELINES[3], options)).apply(make_context(), graph_level)
    te_level = graph_level.clone()
    build_pipeline("lower-graph-to-te").apply(make_context(), te_level)
    graph_kernels = kernels_at_te(graph_level)
    counts = call_counts(te_level)
    activations = activation_bytes(te_level)
    lanes = target.vector_lanes
    # the caches the compiler's scheduling pass gets from the target: the spaces' defaults are its
    schedule = ApplyDefaultSchedule(**options.get("apply-default-schedule", {}))  # type: ignore[arg-type]
    tasks: dict[str, Task] = {}
    for name, f in kernels_at_te(te_level).items():
        text = normalised_kernel(f)
        key = workload_key(text, target_id(target))
        if key not in tasks:
            plan = plan_kernel(f, lanes, CacheInfo(schedule.l2_bytes))
            g = graph_kernels[name].clone()
            g.sym_name = StringAttr(KERNEL_NAME)
            tasks[key] = Task(
                key,
                name,
                text,
                str(g),
                plan.template_name,
                plan.space,
                lanes,
                target_id(target),
                activations=activations,
            )
        tasks[key].kernels.append(name)
        tasks[key].weight += counts.get(name, 0)
    return sorted(tasks.values(), key=lambda t: -t.flops() * max(t.weight, 1))
