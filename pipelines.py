"""Every named pass Lathe offers, and the standard pipelines.

A pass is an xDSL `ModulePass` with a kebab-case `name`; its dataclass fields
are its options (`-p 'name{opt=1}'`). The registry names graph passes, lowerings
and cleanup alike, so it sits above all of them.
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def lathe_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    def outline():
        from lathe.passes.outline import OutlineKernels

        return OutlineKernels

    def inline():
        from lathe.passes.outline import InlineCalls

        return InlineCalls

    def to_te():
        from lathe.lowering.graph_to_te import LowerGraphToTe

        return LowerGraphToTe

    def sched():
        from lathe.lowering.schedules import ApplyDefaultSchedule

        return ApplyDefaultSchedule

    def apply_schedule():
        from lathe.lowering.schedules import ApplySchedule

        return ApplySchedule

    def expand_stage_ops():
        from lathe.lowering.te_transforms import ExpandStageOps

        return ExpandStageOps

    def to_loop():
        from lathe.lowering.te_to_loop import LowerTeToLoop

        return LowerTeToLoop

    def simplify():
        from lathe.passes.simplify import SimplifyInference

        return SimplifyInference

    def expand_split():
        from lathe.passes.simplify import ExpandSplit

        return ExpandSplit

    def fuse():
        from lathe.passes.fuse_ops import FuseOps

        return FuseOps

    def fold_constant():
        from lathe.passes.fold_constant import FoldConstant

        return FoldConstant

    def cse():
        from lathe.passes.cleanup import EliminateCommonSubexpr

        return EliminateCommonSubexpr

    def dce():
        from lathe.passes.cleanup import DeadCodeElimination

        return DeadCodeElimination

    def canonicalize():  # xDSL's, which runs the graph ops' patterns (passes/canonicalize.py)
        from xdsl.transforms.canonicalize import CanonicalizePass

        import lathe.passes.canonicalize  # noqa: F401  (registers the patterns)

        return CanonicalizePass

    def fold_scale_axis():
        from lathe.passes.fold_scale_axis import FoldScaleAxis

        return FoldScaleAxis

    def combine_dense():
        from lathe.passes.combine_parallel import CombineParallelDense

        return CombineParallelDense

    def combine_bmm():
        from lathe.passes.combine_parallel import CombineParallelBatchMatmul

        return CombineParallelBatchMatmul

    def alter_layout():
        from lathe.passes.alter_op_layout import AlterOpLayout

        return AlterOpLayout

    def winograd():
        from lathe.passes.winograd import WinogradConvolution

        return WinogradConvolution

    def block_conv_weights():
        from lathe.passes.conv_weight_blocking import BlockConvWeights

        return BlockConvWeights

    def sink_reshapes():
        from lathe.passes.sink_reshape import SinkLeadingReshapes

        return SinkLeadingReshapes

    def cleanup():
        from lathe.passes.cleanup import CleanupLoops

        return CleanupLoops

    def specialize():
        from lathe.passes.specialize import SpecializeControlFlow

        return SpecializeControlFlow

    return {
        "inline-calls": inline,
        "simplify-inference": simplify,
        "expand-split": expand_split,
        "outline-kernels": outline,
        "fuse-ops": fuse,
        "fold-constant": fold_constant,
        "canonicalize": canonicalize,
        "fold-scale-axis": fold_scale_axis,
        "alter-op-layout": alter_layout,
        "winograd-conv": winograd,
        "block-conv-weights": block_conv_weights,
        "sink-leading-reshapes": sink_reshapes,
        "combine-parallel-dense": combine_dense,
        "combine-parallel-batch-matmul": combine_bmm,
        "eliminate-common-subexpr": cse,
        "dead-code-elimination": dce,
        "lower-graph-to-te": to_te,
        "apply-default-schedule": sched,
        "apply-schedule": apply_schedule,
        "expand-te-stage-ops": expand_stage_ops,
        "lower-te-to-loop": to_loop,
        "cleanup-loops": cleanup,
        "specialize-control-flow": specialize,
    }


DYNAMIC_PASSES = frozenset({"specialize-control-flow"})
"""Passes that take modules with control flow and `?` dimensions (the static-only check runs
before the first pass of a pipeline that is not one of them)."""


# Graph-level pipelines by opt level, as TVM's: each ends with every compute op in a kernel.
GRAPH_PIPELINES = {
    0: "inline-calls,simplify-inference,expand-split,outline-kernels",
    1: "inline-calls,simplify-inference,expand-split,fuse-ops{opt_level=1}",
    2: "inline-calls,simplify-inference,expand-split,fold-constant,canonicalize,eliminate-common-subexpr,"
    "dead-code-elimination,fuse-ops",
    3: "inline-calls,simplify-inference,expand-split,fold-constant,fold-scale-axis,fold-constant,"
    "combine-parallel-dense,combine-parallel-batch-matmul,alter-op-layout,winograd-conv,block-conv-weights,sink-leading-reshapes,"
    "fold-constant,"
    "canonicalize,"
    "eliminate-common-subexpr,dead-code-elimination,fuse-ops",
}
# kernels -> te -> loop: what every opt level runs before the backend.
LOWERING = "lower-graph-to-te,apply-default-schedule,lower-te-to-loop,cleanup-loops"
DEFAULT_OPT_LEVEL = 3


def pipeline_for(opt_level: int, module=None) -> str:
    """The passes from graph to loop level at `opt_level`; given `module`, only those of the
    stages it has not been through: IR that lathe-opt already outlined or lowered must not
    go through them again (lower-te-to-loop rejects glue that is already bufferized)."""
    from lathe.errors import LatheError

    if opt_level not in GRAPH_PIPELINES:
        raise LatheError(f"opt level must be 0..3, got {opt_level}")
    stage = "graph" if module is None else stage_of(module)
    return {"graph": GRAPH_PIPELINES[opt_level] + "," + LOWERING, "kernels": LOWERING, "loop": ""}[stage]


def stage_of(module) -> str:
    """'graph' before outlining; 'kernels' once kernel functions exist (their bodies graph or
    te ops: LOWERING takes both); 'loop' once functions pass buffers (memrefs), as after
    lower-te-to-loop."""
    from xdsl.dialects import func
    from xdsl.dialects.builtin import MemRefType

    from lathe.dialects.functions import is_kernel

    funcs = [f for f in module.ops if isinstance(f, func.FuncOp)]
    types = [t for f in funcs for t in (*f.function_type.inputs.data, *f.function_type.outputs.data)]
    if any(isinstance(t, MemRefType) for t in types):
        return "loop"
    return "kernels" if any(is_kernel(f) for f in funcs) else "graph"


def build_pipeline(spec: str, available: dict[str, Callable[[], type[ModulePass]]] | None = None, callback=None):
    """Parse `-p` text into a PassPipeline, turning every mistake into a LatheError."""
    import difflib

    from xdsl.passes import PassPipeline
    from xdsl.utils.arg_spec import parse_pipeline
    from xdsl.utils.exceptions import ArgSpecParseError

    from lathe.errors import LatheError

    available = available if available is not None else lathe_passes()
    try:
        specs = tuple(parse_pipeline(spec))
    except (Exception, ArgSpecParseError) as e:  # ArgSpecParseError is a BaseException in xDSL
        raise LatheError(
            f"malformed pass pipeline '{spec}': {_one_line(e)}", note="expected 'pass-a,pass-b{option=value other=1,2}'"
        ) from None
    passes = []
    for s in specs:
        if s.name not in available:
            close = difflib.get_close_matches(s.name, available.keys(), n=3)
            note = ("did you mean " + ", ".join(close) + "?") if close else "see --list-passes"
            raise LatheError(f"unknown pass '{s.name}'", note=note)
        cls = available[s.name]()
        try:
            passes.append(cls.from_pass_spec(s))
        except (Exception, ArgSpecParseError) as e:
            import dataclasses

            opts = [f.name for f in dataclasses.fields(cls)]
            raise LatheError(
                f"bad option for pass '{s.name}': {_one_line(e)}",
                note="its options: " + (", ".join(opts) if opts else "none"),
            ) from None
    first_static = next((k for k, s in enumerate(specs) if s.name not in DYNAMIC_PASSES), None)
    if first_static is not None:
        passes[first_static] = _checked_static(passes[first_static])
    return PassPipeline(tuple(passes), callback)


def _checked_static(first: ModulePass) -> ModulePass:
    """`first`, checking before it runs that the module is static: every pass and lowering here
    takes static graphs only, so a module with control flow, function values or `?` shapes (what
    the VM runs, docs/vm.md) is refused by name instead of failing half-way through a pass that
    never expected it. The check rides on the pass rather than being one, so --print-ir-after-all
    and the pipeline's stages stay the ones the user asked for."""
    import dataclasses

    from lathe.dialects import graph
    from lathe.errors import LatheError

    base = type(first)

    def apply(self, ctx, op) -> None:
        ops = list(op.walk())
        control = next((o for o in ops if isinstance(o, graph.ControlOp)), None)
        dynamic = next((o for o in ops if any(graph.is_dynamic(r.type) for r in o.results)), None)
        funcs = (o for o in ops if hasattr(o, "function_type") and graph.is_dynamic(o.function_type))
        found = control or dynamic or next(funcs, None)
        if found is not None:
            what = "control flow or a function value" if found is control else "a ? dimension"
            raise LatheError(
                f"pass '{base.name}' cannot run on '{found.name}': it has {what}, and Lathe's passes and "
                "static lowering take static graphs only",
                note="compile the module with lathe.compile, which runs it on the VM (docs/vm.md)",
            )
        base.apply(self, ctx, op)

    checked = type(base.__name__, (base,), {"apply": apply, "__module__": base.__module__})
    return checked(**{f.name: getattr(first, f.name) for f in dataclasses.fields(first) if f.init})


def with_pass_options(spec: str, options: dict[str, dict[str, object]]) -> str:
    """`spec` with `options` ({"alter-op-layout": {"vector_lanes": 8}}) given to the passes it
    names, where the spec does not set them itself: how a target's choices reach graph passes
    that know no target."""
    from xdsl.utils.arg_spec import ArgSpec, parse_pipeline

    out = []
    for s in parse_pipeline(spec):
        extra = {k: (v,) for k, v in options.get(s.name, {}).items() if k not in s.parameters}
        out.append(str(ArgSpec(s.name, {**s.parameters, **extra})))
    return ",".join(out)


def _one_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[-1] if text else type(e).__name__
