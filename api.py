"""The Python API, shaped like Relay's: load, compile (build), interpret."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from lathe.errors import LatheError


def parse_source(text: str, filename: str, fmt: str | None = None) -> ModuleOp:
    """Parse .lathe (Relay text) or .mlir (any Lathe/xDSL dialect) source."""
    fmt = fmt or ("mlir" if filename.endswith(".mlir") else "lathe")
    if fmt == "lathe":
        from lathe.textual_ir.parser import parse_relay

        return parse_relay(text, filename)
    from lathe.dialects import make_context
    from lathe.textual_ir.mlir import parse_mlir

    return parse_mlir(make_context(), text, filename)


def load(path: str | os.PathLike) -> ModuleOp:
    """Read a .lathe or .mlir file into a verified module."""
    from lathe.textual_ir.source import decode

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise LatheError(f"cannot read {p}: {e.strerror}") from None
    return parse_source(decode(data, str(p)), str(p))


def load_params(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise LatheError(f"params file {path} does not exist") from None
    except Exception as e:  # zipfile.BadZipFile, ValueError, ...
        raise LatheError(f"{path} is not a valid .npz file: {e}") from None


def _params(params) -> dict[str, np.ndarray]:
    if params is None:
        return {}
    if isinstance(params, str | os.PathLike):
        return load_params(params)
    return dict(params)


def lower(
    module: ModuleOp, pipeline: str | None = None, opt_level: int | None = None, tuning_db=None, target="llvm"
) -> ModuleOp:
    """graph → te → loop on a copy of `module`: `pipeline`, or the opt level's (default 3);
    with `tuning_db`, each kernel is scheduled by its best record for `target`, with the
    target's pass options (its vector width) where the pipeline does not set them, as the
    records were made."""
    from lathe.dialects import make_context
    from lathe.dialects.verifier import verify
    from lathe.pipelines import DEFAULT_OPT_LEVEL, build_pipeline, pipeline_for, with_pass_options

    lowered = module.clone()
    spec = pipeline or pipeline_for(DEFAULT_OPT_LEVEL if opt_level is None else opt_level, lowered)
    if tuning_db is not None:
        from lathe.backends.registry import resolve_target

        backend, t = resolve_target(target)
        spec = with_pass_options(spec, backend.graph_pass_options(t))
    head, sched, tail = spec.partition("apply-default-schedule")
    if tuning_db is not None and sched:
        build_pipeline(head.rstrip(",")).apply(make_context(), lowered)
        _set_recorded_configs(lowered, tuning_db, target)
        spec = sched + tail
    build_pipeline(spec).apply(make_context(), lowered)
    verify(lowered)
    return lowered


def _set_recorded_configs(te_module: ModuleOp, tuning_db, target) -> None:
    """Each kernel's best recorded configuration, as the attribute apply-default-schedule reads."""
    import sys

    from xdsl.dialects.builtin import StringAttr

    from lathe.backends.registry import resolve_target
    from lathe.lowering.schedules import CONFIG_ATTR
    from lathe.tuner.tasks import kernels_at_te, target_id
    from lathe.tuner.tune import best_configs

    _, t = resolve_target(target)
    configs, notes = best_configs(te_module, tuning_db, target_id(t))
    for name, f in kernels_at_te(te_module).items():
        if name in configs:
            f.attributes[CONFIG_ATTR] = StringAttr(configs[name])
    for note in notes:
        print(note, file=sys.stderr)


class CompiledModule:
    """A module compiled for one target: `.run(*inputs, **inputs)` → numpy arrays."""

    def __init__(
        self,
        module: ModuleOp,
        target: str,
        params,
        num_threads: int | None,
        entry: str,
        opt_level: int | None = None,
        pipeline: str | None = None,
        tuning_db=None,
        emulate: bool = False,
    ):
        from lathe.backends.interface import default_num_threads
        from lathe.backends.registry import resolve_target
        from lathe.dialects.functions import is_kernel, param_names
        from lathe.runtime.graph_executor import GraphExecutor

        self.backend, self.target = resolve_target(target)
        if num_threads is not None:
            self.target = self.target.with_(num_threads=num_threads)
        params = _params(params)
        funcs = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
        if entry not in funcs:
            raise LatheError(f"the module has no function @{entry}")
        names = param_names(funcs[entry])
        unknown = [k for k in params if k not in names]
        if unknown:
            raise LatheError(
                f"params file has entries that @{entry} has no parameter for: {', '.join(sorted(unknown))}",
                note="its parameters: " + ", ".join(names),
            )
        from lathe.passes.fold_constant import bind_params
        from lathe.pipelines import DEFAULT_OPT_LEVEL, pipeline_for, with_pass_options

        pipeline = pipeline or pipeline_for(DEFAULT_OPT_LEVEL if opt_level is None else opt_level, module)
        if "fold-constant" in pipeline and params:  # weights become constants, so their preprocessing folds away
            module = bind_params(module.clone(), params, entry)
            params = {}
            names = param_names(next(f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == entry))
        pipeline = with_pass_options(pipeline, self.backend.graph_pass_options(self.target))
        self._graph_source = module, pipeline  # profile() rebuilds the graph-level kernels from them
        lowered = lower(module, pipeline=pipeline, tuning_db=tuning_db, target=self.target)
        self.loop_module = self.backend.lower(lowered, self.target)
        threads = self.num_threads = self.target.num_threads or default_num_threads()
        self.emulated = emulate and not self.backend.capabilities(self.target).runs_here
        if self.emulated:  # runtime/emulation.py: the deployed library, run by the backend's emulator
            from lathe.runtime.emulation import EmulatedExecutor

            self.kernels = None
            self.executor = EmulatedExecutor(self.loop_module, self.backend, self.target, entry, params, names, threads)
            self.input_names = self.executor.input_names
            return
        self.kernels = self.backend.load(self.loop_module, self.target)
        addresses = {
            f.sym_name.data: self.kernels.address(f.sym_name.data)  # type: ignore[union-attr]
            for f in self.loop_module.ops
            if is_kernel(f)
        }
        self.executor = GraphExecutor(
            self.loop_module,
            addresses,
            entry,
            params,
            names,
            before_run=lambda: self.kernels.set_num_threads(threads),
            device=self.backend.device(self.target),
            library=self.kernels,
        )
        self.input_names = self.executor.input_names

    @property
    def source(self) -> str:
        """The kernels as the backend renders them (LLVM IR, C, ...)."""
        return self.backend.render(self.loop_module, self.target)

    @property
    def llvm_ir(self) -> str:
        """The kernels' LLVM IR as generated, for a module compiled for an `llvm` target."""
        if self.target.kind != "llvm":
            raise LatheError(f"llvm_ir: this module is compiled for '{self.target.kind}'", note="use .source")
        return self.source

    @property
    def optimized_ir(self) -> str:
        """The kernels after the backend's own optimiser (LLVM's O3), where it has one."""
        return self.backend.optimized_source(self.source, self.target)

    @property
    def compile_stats(self):
        return self.kernels.stats

    def run(self, *inputs, out=None, **named):
        """Inputs by position or by name; results in fresh arrays (a tuple, nested as the model
        returns them, where it returns several), or written into `out`, nested the same way."""
        return self.executor.run(*inputs, out=out, **named)

    def profile(self, *inputs, repeat: int = 30, warmup_seconds: float = 1.0, clock=time.perf_counter, **named):
        """Where a run's time goes: every kernel timed on its own over `repeat` runs on these
        inputs, after a wall-clock warm-up. Returns a `Profile` (runtime/profiler.py): one row
        per kernel, heaviest first, with time, share, GFLOP/s, GB/s, % of the machine's peak and
        the source ops; `.table()` prints it, `.to_json()` writes it. `clock=time.thread_time`
        times a one-thread module by CPU time, which other processes on the cores do not inflate."""
        from lathe.runtime.profiler import profile

        if self.emulated:
            raise self.executor._not_measured("profile")

        self.executor.run(*inputs, **named)  # binds the inputs and this run's outputs
        return profile(
            self.executor,
            self.loop_module,
            self._graph_kernels(),
            self.target.vector_lanes,
            self.num_threads,
            repeat,
            warmup_seconds,
            clock,
        )

    def _graph_kernels(self) -> dict[str, func.FuncOp]:
        """The kernels at graph level, named as compiled: the graph part of the pipeline run
        again (it is deterministic), since lowering replaces each kernel and keeps neither its
        graph ops (the FLOPs) nor their locations (the source lines)."""
        from lathe.dialects import make_context
        from lathe.dialects.functions import is_kernel
        from lathe.pipelines import build_pipeline

        module, pipeline = self._graph_source
        graph_part = pipeline.partition("lower-graph-to-te")[0].rstrip(",")
        kernels = module.clone()
        if graph_part:
            build_pipeline(graph_part).apply(make_context(), kernels)
        return {f.sym_name.data: f for f in kernels.ops if is_kernel(f)}

    def memory_report(self):
        """Bytes of intermediates as planned, with a buffer each, and the live peak (MemoryReport)."""
        return self.executor.memory_report()

    def benchmark(self, repeat: int = 100, warmup_seconds: float = 1.0) -> list[float]:
        return self.executor.benchmark(repeat, warmup_seconds)


def _specialized(module: ModuleOp) -> ModuleOp:
    """`module`, or where it needs the VM a copy with what is known at compile time folded in
    (passes/specialize.py): one whose control flow was only shape-dependent is then static."""
    from lathe.passes.specialize import specialize
    from lathe.runtime.vm import needs_vm

    if not needs_vm(module):
        return module
    copy = module.clone()
    specialize(copy)
    return copy


def _use_vm(module: ModuleOp, executor: str | None) -> bool:
    from lathe.runtime.vm import needs_vm

    if executor not in (None, "graph", "vm"):
        raise LatheError(f"unknown executor '{executor}'", note="expected 'graph' or 'vm'")
    if executor == "graph" and needs_vm(module):
        raise LatheError(
            "the graph executor cannot run this module: it has control flow, function values or ? dimensions",
            note="compile it with executor='vm' (or leave executor unset)",
        )
    return executor == "vm" or (executor is None and needs_vm(module))


def _vm_module(module, target, params, num_threads, entry, opt_level, pipeline):
    """The VM over `module`, each primitive region compiled by the static pipeline for the shapes
    it meets (docs/vm.md)."""
    from lathe.runtime.vm import VMModule

    def compile_region(region: ModuleOp, bound: dict) -> CompiledModule:
        return CompiledModule(region, target, bound or None, num_threads, "main", opt_level, pipeline)

    return VMModule(module, compile_region, _params(params), entry)


def compile(
    module: ModuleOp,
    target: str = "llvm",
    params=None,
    num_threads: int | None = None,
    entry: str = "main",
    opt_level: int | None = None,
    pipeline: str | None = None,
    tuning_db: str | os.PathLike | None = None,
    emulate: bool = False,
    executor: str | None = None,
) -> CompiledModule:
    """Compile `module` for `target` at `opt_level` (0..3, default 3), or with an explicit
    graph-to-loop `pipeline`; parameters found in `params` are bound by name. With
    `tuning_db` (from `lathe tune`), each kernel takes its best recorded schedule; one
    warning names the kernels that have none. With `emulate`, a target this machine cannot
    run (another architecture) runs under the backend's emulator (qemu-user for
    `llvm -mtriple=aarch64-linux-gnu`; `.emulated` says whether it does): for checking
    results, not for timing them; without it such a target is a LatheError.
    `executor`: "graph" (the static graph executor), "vm" (runtime/vm.py: control flow,
    closures, `?` shapes), or None: the VM where the module needs it after folding what is known
    at compile time (specialize-control-flow), else the graph executor."""
    module = _specialized(module)
    if _use_vm(module, executor):
        return _vm_module(module, target, params, num_threads, entry, opt_level, pipeline)
    return CompiledModule(module, target, params, num_threads, entry, opt_level, pipeline, tuning_db, emulate)


def tune(
    module: ModuleOp,
    params=None,
    trials: int = 64,
    db: str | os.PathLike = "lathe-tuning.jsonl",
    target: str = "llvm",
    timeout_s: float = 60.0,
    search: str = "xgb",
    progress: bool = False,
    executor=None,
    **options,
):
    """Tune the schedule of every distinct kernel of `module` with `trials` measurements in
    all (the task scheduler shares them by expected gain), appending them to the database
    `db`; compile with `tuning_db=db` to use the best. `executor`: None (a local worker
    process), "dask://HOST:PORT" or a `distributed.Client` (measure on a Dask cluster's
    workers). Returns one result per task (trials, failures, best record, speedup over the default,
    and whether the model check kept it: the tuned build against the default one, tuner/check.py)."""
    from lathe.tuner.tune import tune as run

    params = _params(params)
    entry = options.get("entry", "main")

    def build(tuning_db):  # the model check's builds: with the best records, and with none
        return compile(module, target, params, entry=entry, tuning_db=tuning_db)

    return run(
        module,
        params,
        trials,
        db,
        target,
        timeout_s,
        search,
        progress=progress,
        executor=executor,
        build=build,
        **options,
    )


def interpret(module: ModuleOp, params=None, entry: str = "main", **inputs):
    """Run `module` with the numpy reference interpreter."""
    from lathe.runtime.interpreter import interpret as run

    return run(module, _params(params), entry, **inputs)


def emit_object(module: ModuleOp, target: str = "llvm", opt_level: int | None = None) -> bytes:
    """The kernels of `module` as the target's binary (an object file for LLVM; cross-compiles by -mtriple)."""
    from lathe.backends.registry import resolve_target
    from lathe.pipelines import DEFAULT_OPT_LEVEL, pipeline_for, with_pass_options

    backend, t = resolve_target(target)
    level = DEFAULT_OPT_LEVEL if opt_level is None else opt_level
    pipeline = with_pass_options(pipeline_for(level, module), backend.graph_pass_options(t))
    return backend.compile_source(backend.render(backend.lower(lower(module, pipeline=pipeline), t), t), t)
