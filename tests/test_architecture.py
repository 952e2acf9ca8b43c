"""The project's shape: layers import only downward, no module imports itself back, and every
op is one record with every part that the compiler reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lathe.dialects import graph

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_layers_are_kept():
    """pyproject.toml's import-linter contracts (text -> graph -> te -> loop -> code, runtime
    and tools above)."""
    r = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_no_module_imports_itself_back():
    """No import cycle between modules (type-checking imports aside), whatever the layers allow."""
    import grimp

    g = grimp.build_graph("lathe", cache_dir=None, exclude_type_checking_imports=True)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(root: str) -> None:  # Tarjan's strongly connected components, iteratively
        work = [(root, iter(sorted(g.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w == "lathe":  # the facade that re-exports the API
                    continue
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g.find_modules_directly_imported_by(w)))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))

    for m in sorted(g.modules - {"lathe"}):
        if m not in index:
            visit(m)
    assert not cycles, cycles


# Ops that a graph pass removes before lowering: they have a reference, no compute definition.
EXPANDED = {
    graph.SplitOp: "expand-split",
    graph.BatchNormOp: "simplify-inference",
    graph.DropoutOp: "simplify-inference",
    graph.TupleOp: "lowering (glue)",
    graph.TupleGetItemOp: "lowering (glue)",
}
# Ops that no ONNX op converts to directly: made by graph passes or by a converter's
# decomposition (rsqrt, squeeze...), or Relay-only. Each is still a full op otherwise.
NO_ONNX_MAPPING = {
    graph.ConstantOp,
    graph.RsqrtOp,
    graph.DensePackOp,
    graph.BatchMatmulPackOp,
    graph.WinogradWeightTransformOp,
    graph.WinogradInputTransformOp,
    graph.WinogradOutputTransformOp,
    graph.AdaptiveAvgPool2dOp,
    graph.BatchFlattenOp,
    graph.VarianceOp,
    graph.SqueezeOp,
    graph.ExpandDimsOp,
    graph.StackOp,
    graph.ZerosOp,
    graph.OnesOp,
    graph.ZerosLikeOp,
    graph.OnesLikeOp,
    graph.FullLikeOp,
    graph.TupleOp,
    graph.TupleGetItemOp,
}


@pytest.mark.parametrize("op", graph.GRAPH_OPS, ids=lambda c: c.name)
def test_every_op_has_every_part(op):
    """What adding an op takes (docs/architecture.md): a miss here is a miss in the compiler."""
    from lathe.dialects.reference import REFERENCE
    from lathe.frontends.onnx import converters_for
    from lathe.lowering.graph_to_te import TE_COMPUTE

    assert isinstance(op.PATTERN, graph.OpPattern)
    assert op.infer is not graph.GraphOp.infer or op.infer_type.__func__ is not graph.GraphOp.infer_type.__func__, (
        "no type inference"
    )
    assert op is graph.ConstantOp or op in REFERENCE, "no numpy reference (dialects/reference.py or a scalar formula)"
    assert op in EXPANDED or op in TE_COMPUTE, "no compute definition (lowering/graph_to_te.py or a scalar formula)"
    assert graph.OPS_BY_RELAY_NAME[op.relay_name()] is op, "not reachable by its Relay name"
    if op in NO_ONNX_MAPPING:
        assert not converters_for(op), "has an ONNX converter now: drop it from NO_ONNX_MAPPING"
    else:
        assert converters_for(op), "no ONNX converter declares makes= this op"


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    r = subprocess.run([str(BIN / "ruff"), *command], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
