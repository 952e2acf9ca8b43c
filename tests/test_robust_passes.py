"""Passes, lowering and the interpreter on awkward input: declarations, deep and
wide graphs, zero-size tensors, hand-written te schedules, passes out of order.
Each failure must be a LatheError (or a correct result), never another exception,
a hang or exponential time."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

import lathe
from lathe.api import parse_source
from lathe.dialects import make_context
from lathe.dialects.verifier import verify
from lathe.errors import LatheError
from lathe.pipelines import GRAPH_PIPELINES, LOWERING, build_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from compile_scaling import chain, diamond, ladder  # noqa: E402


def run_passes(module, spec: str):
    build_pipeline(spec).apply(make_context(), module)
    verify(module)
    return module


def kernels(module) -> list:
    from lathe.dialects.functions import is_kernel

    return [f for f in module.ops if is_kernel(f)]


# -- bounded cost on deep and wide graphs -------------------------------------------


def test_fusion_of_a_ladder_is_not_cubic():
    """%i = add(%i-1, %i-2): every node's post-dominator is the last node, and the path
    check walked every path to it (1,000 bindings took a minute, 20 never finished)."""
    module = parse_source(ladder(1500), "ladder.lathe")
    t0 = time.perf_counter()
    run_passes(module, "fuse-ops")
    assert time.perf_counter() - t0 < 30
    sizes = sorted(len(list(k.body.block.ops)) - 1 for k in kernels(module))
    assert sizes[-1] == 256 and sizes.count(1) == 1500 - 256  # TVM's rule: groups stop at max_depth


def test_post_dominators_of_a_diamond_chain_fuse_it_whole():
    module = parse_source(diamond(300), "diamond.lathe")
    run_passes(module, "fuse-ops{max_depth=1000}")
    assert len(kernels(module)) == 1


def test_deep_chain_lowers_without_recursion():
    """One kernel of 1,500 inlined stages: emitting its body must not recurse per stage."""
    module = parse_source(chain(1500), "chain.lathe")
    run_passes(module, "fuse-ops{max_depth=100000},lower-graph-to-te,apply-default-schedule,lower-te-to-loop")
    assert len(kernels(module)) == 1


def test_inlined_diamonds_are_emitted_once():
    """Each stage of a diamond is read twice; re-emitting an inlined producer per read made
    the loop body exponential in the depth (45 ops took 15 s at lower-te-to-loop)."""
    body, prev = [], "%x"
    for k in range(30):
        body += [f"%a{k} = tanh({prev});", f"%b{k} = sigmoid({prev});", f"%p{k} = add(%a{k}, %b{k});"]
        prev = f"%p{k}"
    module = parse_source("def @main(%x: Tensor[(16), float32]) {" + "\n".join(body) + prev + "}", "diamond.lathe")
    x = np.linspace(-1, 1, 16, dtype=np.float32)
    t0 = time.perf_counter()
    got = lathe.compile(module, opt_level=1).run(x)
    assert time.perf_counter() - t0 < 60
    np.testing.assert_allclose(got, lathe.interpret(module, x=x), rtol=1e-5)


# -- declarations ---------------------------------------------------------------------

DECL = """
func.func private @ext(tensor<4xf32>) -> tensor<4xf32>
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = graph.exp %x : (tensor<4xf32>) -> tensor<4xf32>
  func.return %0 : tensor<4xf32>
}
"""


@pytest.mark.parametrize(
    "spec", [GRAPH_PIPELINES[0], GRAPH_PIPELINES[1], GRAPH_PIPELINES[3], GRAPH_PIPELINES[3] + "," + LOWERING]
)
def test_declarations_are_skipped(spec):
    """Every pass but inline-calls (which drops the unused declaration) sees it and leaves it."""
    spec = spec.replace("inline-calls,", "")
    module = run_passes(parse_source(DECL, "decl.mlir"), spec)
    ext = next(f for f in module.ops if f.sym_name.data == "ext")
    assert ext.is_declaration and len(kernels(module)) == 1


def test_a_call_to_a_declaration_is_named_when_lowering():
    src = DECL.replace("func.return %0", "%1 = func.call @ext(%0) : (tensor<4xf32>) -> tensor<4xf32>\n  func.return %1")
    module = parse_source(src, "decl.mlir")
    with pytest.raises(LatheError, match="@main calls @ext, which is only declared"):
        run_passes(module, GRAPH_PIPELINES[3] + "," + LOWERING)


def test_relay_printer_names_a_declaration():
    from lathe.textual_ir.printer import print_relay

    with pytest.raises(LatheError, match="@ext is only declared"):
        print_relay(parse_source(DECL, "decl.mlir"))


# -- zero-size tensors and attributes out of range -------------------------------------


def _program(expr: str, **shapes) -> str:
    params = ", ".join(
        f"%{n}: Tensor[({', '.join(map(str, s))}{',' if len(s) == 1 else ''}), {'int32' if n == 'i' else 'float32'}]"
        for n, s in shapes.items()
    )
    return f"def @main({params}) {{ {expr} }}"


@pytest.mark.parametrize(
    "expr, shapes",
    [
        ("nn.softmax(%x)", {"x": (2, 0)}),
        ("nn.softmax(%x, axis=0)", {"x": (0, 3)}),
        ("nn.log_softmax(%x)", {"x": (2, 0)}),
        ("nn.batch_flatten(%x)", {"x": (0, 3, 4)}),
        ("take(%x, %i, axis=0)", {"x": (3, 2), "i": (0,)}),
        ("argmax(%x, axis=[1])", {"x": (0, 2)}),
        ("exp(%x)", {"x": (0,)}),
    ],
)
@pytest.mark.parametrize("how", ["interpret", "compile"])
def test_zero_size_tensors(expr, shapes, how):
    module = parse_source(_program(expr, **shapes), "zero.lathe")
    inputs = {n: np.zeros(s, np.int32 if n == "i" else np.float32) for n, s in shapes.items()}
    out = lathe.interpret(module, **inputs) if how == "interpret" else lathe.compile(module).run(**inputs)
    assert out.shape == tuple(module.ops.first.function_type.outputs.data[0].get_shape())


@pytest.mark.parametrize(
    "expr, shapes, message",
    [
        ("take(%x, %i, axis=1)", {"x": (2, 0), "i": (3,)}, "take: cannot take from an empty axis"),
        ("take(%x, %i)", {"x": (0, 2), "i": (3,)}, "take: cannot take from an empty axis"),
        ("argmax(%x, axis=[1])", {"x": (2, 0)}, "argmax: cannot find an index over an empty axis"),
        ("argmin(%x)", {"x": (0,)}, "argmin: cannot find an index over an empty axis"),
        (
            "nn.conv2d_transpose(%x, %w, strides=[0, 1])",
            {"x": (1, 2, 4, 4), "w": (2, 3, 3, 3)},
            "nn.conv2d_transpose: strides and dilation must be >= 1",
        ),
        (
            "nn.conv2d_transpose(%x, %w, dilation=[1, -2])",
            {"x": (1, 2, 4, 4), "w": (2, 3, 3, 3)},
            "nn.conv2d_transpose: strides and dilation must be >= 1",
        ),
    ],
)
def test_nothing_to_pick_or_stride_zero_is_a_verifier_error(expr, shapes, message):
    with pytest.raises(LatheError, match=message):
        parse_source(_program(expr, **shapes), "bad.lathe")


def test_gather_from_an_empty_axis_is_a_verifier_error():
    src = """func.func @main(%x: tensor<2x0xf32>, %i: tensor<2x3xi32>) -> tensor<2x3xf32> {
      %0 = graph.gather %x, %i {axis = 1 : i64} : (tensor<2x0xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
      func.return %0 : tensor<2x3xf32>
    }"""
    with pytest.raises(LatheError, match="gather: cannot gather from an empty axis"):
        parse_source(src, "bad.mlir")


def test_lrn_window_is_clamped_to_the_axis():
    """size=2**63-1 compiled to a reduction loop of that extent: it never finished."""
    module = parse_source(_program("nn.lrn(%x, size=9223372036854775807)", x=(1, 5, 2, 3)), "lrn.lathe")
    x = np.random.default_rng(0).standard_normal((1, 5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(lathe.compile(module).run(x), lathe.interpret(module, x=x), rtol=1e-5)


@pytest.mark.parametrize(
    "pipeline, op",
    [("outline-kernels,lower-graph-to-te", "te.compute"), ("outline-kernels," + LOWERING, "memref.alloc")],
)
def test_interpreter_refuses_lowered_ir(pipeline, op):
    module = lathe.api.lower(parse_source(_program("exp(%x)", x=(4,)), "t.lathe"), pipeline=pipeline)
    with pytest.raises(LatheError, match=f"runs graph-level IR only, but '{op}'"):
        lathe.interpret(module, x=np.ones(4, np.float32))


def test_interpreter_names_a_called_declaration():
    src = DECL.replace("func.return %0", "%1 = func.call @ext(%0) : (tensor<4xf32>) -> tensor<4xf32>\n  func.return %1")
    with pytest.raises(LatheError, match="@ext is only declared"):
        lathe.interpret(parse_source(src, "decl.mlir"), x=np.ones(4, np.float32))


# -- passes in an order that does not fit ----------------------------------------------


def test_lower_te_to_loop_names_a_graph_op_left_in_a_kernel():
    module = parse_source(_program("exp(%x)", x=(4,)), "t.lathe")
    with pytest.raises(LatheError, match="kernel @exp_0 still has graph op 'graph.exp'") as e:
        run_passes(module, "outline-kernels,lower-te-to-loop")
    assert "run lower-graph-to-te first" in e.value.render()


def test_lower_te_to_loop_twice_keeps_the_lowered_kernels():
    module = parse_source(_program("exp(%x)", x=(4,)), "t.lathe")
    once = run_passes(module, "outline-kernels," + LOWERING)
    text = str(once)
    assert str(run_passes(once, "lower-te-to-loop")) == text


# -- hand-written te schedules -----------------------------------------------------------

_TE_CASES = (Path(__file__).parent / "te_schedule_errors.mlir").read_text().split("// -----")


@pytest.mark.parametrize("case", _TE_CASES, ids=[f"case{k}" for k in range(len(_TE_CASES))])
def test_odd_te_schedules_are_lathe_errors(case):
    import re

    expected = re.search(r"// ERROR: (.*)", case).group(1)
    module = parse_source(case, "te.mlir")
    with pytest.raises(LatheError) as e:
        run_passes(module, "lower-te-to-loop")
    assert expected in str(e.value)


def test_pad_of_a_scalar():
    module = parse_source("def @main(%a: Tensor[(), float32]) { nn.pad(%a, pad_width=[], pad_value=6) }", "p.lathe")
    x = np.array(2.5, np.float32)
    assert lathe.interpret(module, a=x) == 2.5
    assert lathe.compile(module).run(x) == 2.5


def test_integer_power_with_negative_exponents_matches_the_compiled_code():
    module = parse_source(_program("power(%x, %y)", x=(6,), y=(6,)).replace("float32", "int64"), "p.lathe")
    x = np.array([2, -2, 1, -1, 3, 5], np.int64)
    y = np.array([-1, -1, -3, -3, 2, 0], np.int64)
    ref = lathe.interpret(module, x=x, y=y)
    np.testing.assert_array_equal(ref, [0, 0, 1, -1, 9, 1])
    np.testing.assert_array_equal(lathe.compile(module).run(x, y), ref)


def test_combine_parallel_dense_is_linear_in_the_dense_ops():
    """Each dense op's weight position was found by renumbering the whole block: 3,000
    dense ops whose weight is computed took 28 s."""
    body = ["%v = negative(%w);", "%0 = nn.dense(%x, %v);"] + [
        f"%{i} = nn.dense(%{i - 1}, %v);" for i in range(1, 3000)
    ]
    module = parse_source(
        "def @main(%x: Tensor[(2, 8), float32], %w: Tensor[(8, 8), float32]) {" + "\n".join(body) + "%2999}",
        "dense.lathe",
    )
    t0 = time.perf_counter()
    run_passes(module, "combine-parallel-dense")
    assert time.perf_counter() - t0 < 8


def test_verifying_thousands_of_kernel_calls_is_linear(monkeypatch):
    """xDSL finds each callee by scanning the module's symbols: n kernels and n calls cost
    n²/2 symbol-name reads (4,000 kernels took minutes). Indexed, each name is read once."""
    from xdsl.traits import SymbolOpInterface, SymbolTable

    module = run_passes(parse_source(chain(1000), "chain.lathe"), "outline-kernels")
    reads = [0]
    name_of = SymbolOpInterface.get_sym_attr_name

    def counted(self, op):
        reads[0] += 1
        return name_of(self, op)

    monkeypatch.setattr(SymbolOpInterface, "get_sym_attr_name", counted)
    scan = SymbolTable.__dict__["lookup_symbol"]
    verify(module)
    assert reads[0] < 3 * 1001
    assert SymbolTable.__dict__["lookup_symbol"] is scan
    call = next(o for o in module.walk() if o.name == "func.call")
    call.properties["callee"] = type(call.callee)("nope")
    with pytest.raises(Exception, match="'@nope' could not be found"):
        verify(module)


def test_post_dominator_tree_matches_the_definition():
    """ipdom(n): the strict post-dominator of n that all its other strict post-dominators
    post-dominate; post-dominators from the set equations pdom(n) = {n} ∪ ∩ pdom(consumer)."""
    import random

    from lathe.passes.fuse_ops import _PostDominatorTree

    rng = random.Random(7)
    for _ in range(500):
        n = rng.randint(1, 40)
        nodes = [object() for _ in range(n)]
        consumers = {}
        for i, x in enumerate(nodes):
            cs = [nodes[rng.randint(i + 1, n - 1)] for _ in range(rng.randint(1, 3))] if i < n - 1 else []
            consumers[x] = cs if cs and rng.random() < 0.9 else cs + [None]  # None: used outside
        pdom: dict = {None: {None}}
        for x in reversed(nodes):
            pdom[x] = {x} | set.intersection(*(pdom[c] for c in consumers[x]))
        tree = _PostDominatorTree(nodes, consumers).ipdom
        for x in nodes:
            strict = pdom[x] - {x}
            want = next(d for d in strict if strict <= pdom[d])
            assert tree[x] is want


@pytest.mark.parametrize(
    "expr",
    ["argmax(%x, axis=[1])", "argmin(%x, axis=[1])", "argmax(%x, axis=[1], select_last_index=True)", "argmax(%x)"],
)
def test_arg_reductions_find_nan_as_numpy_does(expr):
    """The max of a row holding NaN is NaN, which no element compares equal to: the kernel
    returned the axis size (out of range) where numpy gives the first NaN's index."""
    x = np.array([[1, np.nan, 3, np.nan], [4, 2, 9, 1], [np.nan] * 4], np.float32)
    module = parse_source(_program(expr, x=x.shape), "arg.lathe")
    np.testing.assert_array_equal(lathe.compile(module).run(x), lathe.interpret(module, x=x))


@pytest.mark.parametrize("n", [1, 64])  # a scalar loop; a vectorized one (which crashed on half)
def test_erf_on_float16(n):
    """libm's erf was called with half arguments (relative error 57 against the interpreter)."""
    module = parse_source(f"def @main(%a: Tensor[({n}), float16]) {{ erf(%a) }}", "erf.lathe")
    x = np.resize(np.concatenate([np.linspace(-2, -0.5, 32), np.linspace(0.5, 2, 32)]), n).astype(np.float16)
    np.testing.assert_allclose(
        lathe.compile(module, opt_level=0).run(x).astype(np.float32),
        lathe.interpret(module, a=x).astype(np.float32),
        rtol=2e-3,
    )


@pytest.mark.parametrize("dtype", ["int8", "int32"])
@pytest.mark.parametrize("n", [1, 64])  # scalar and vectorized loops
def test_integer_power_wraps_as_numpy(dtype, n):
    """int8 2**7: float64 128 converted straight to i8 is poison (127 vectorized, -128 scalar)."""
    module = parse_source(_program("power(%x, %y)", x=(n,), y=(n,)).replace("float32", dtype), "p.lathe")
    x = np.resize(np.array([2, -2, 3, 7], dtype), n)
    y = np.resize(np.array([7, 7, 5, 3], dtype), n)
    ref = lathe.interpret(module, x=x, y=y)
    np.testing.assert_array_equal(ref, np.power(x, y))
    np.testing.assert_array_equal(lathe.compile(module).run(x, y), ref)
