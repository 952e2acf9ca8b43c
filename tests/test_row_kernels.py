"""Row kernels (softmax, log_softmax, layer norm):
the per-stage schedules compute each row's statistics inside one parallel loop over the rows
(lowering/schedules.py, `schedule_row_kernel`). Every case compiles through the default
pipeline and is compared with the interpreter on fresh random inputs, on row lengths no
vector divides too; the row_kernel knob turned off computes the same function."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_matches
from xdsl.dialects import scf

import lathe
from lathe.dialects import make_context, te
from lathe.dialects.functions import defined_functions, is_kernel
from lathe.dialects.loop import ANNOTATION
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay

OPS = ["softmax", "log_softmax", "layer_norm"]
SHAPES = [(12, 16, 128), (6, 768), (5, 3, 10), (4, 1000), (3, 17)]


def _program(op: str, shape) -> str:
    t = f"Tensor[({', '.join(map(str, shape))}), float32]"
    n = shape[-1]
    if op == "layer_norm":
        return (
            f"def @main(%x: {t}, %g: Tensor[({n}), float32], %b: Tensor[({n}), float32]) "
            "{ nn.layer_norm(%x, %g, %b, axis=-1) }"
        )
    return f"def @main(%x: {t}) {{ nn.{op}(%x, axis=-1) }}"


def _inputs(src: str, rng) -> dict[str, np.ndarray]:
    fn = parse_relay(src).ops.first
    return {
        a.name_hint: (3 * rng.standard_normal(tuple(a.type.get_shape()))).astype(np.float32)
        for a in fn.body.block.args  # type: ignore[union-attr]
    }


def _scheduled(src: str, config: str | None = None):
    m = parse_relay(src)
    schedule = f'apply-schedule{{config="{config}"}}' if config else "apply-default-schedule"
    build_pipeline(f"fuse-ops,lower-graph-to-te,{schedule}").apply(make_context(), m)
    return m


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", OPS)
def test_row_kernels_agree(op, shape, rng):
    src = _program(op, shape)
    inputs = _inputs(src, rng)
    ref = lathe.interpret(parse_relay(src), **inputs)
    got = lathe.compile(parse_relay(src), num_threads=2).run(**inputs)
    assert_matches(got, ref, rtol=1e-4)
    off = lathe.compile(_scheduled(src, "per_stage:row_kernel=off"), num_threads=2).run(**inputs)
    assert_matches(off, ref, rtol=1e-4)


@pytest.mark.parametrize("op", OPS)
def test_statistics_are_computed_per_row(op):
    """Each reduction is computed at the output's row loop, and so is softmax's row of exps
    (read by its sum and by the output: computed once, not inlined into both); the row loop
    is the only loop at the kernel's top level, parallel, and its output axis is vectorized
    whole."""
    m = _scheduled(_program(op, (12, 128, 128)))
    (kernel,) = [f for f in defined_functions(m) if is_kernel(f)]
    computes = [o for o in kernel.body.block.ops if isinstance(o, te.ComputeOp)]
    stats = [c for c in computes if c.reduce_extent_list]
    assert stats
    rows = [c for c in computes if c.stage.data == "T_softmax_exp"]
    assert len(rows) == (op == "softmax")
    at = [o for o in kernel.body.block.ops if isinstance(o, te.ComputeAtOp)]
    assert {o.operands[0].owner for o in at} == set(stats) | set(rows)
    assert not any(isinstance(o, te.ComputeInlineOp) and o.operands[0].owner in rows for o in kernel.body.block.ops)
    (row,) = {o.axis.data for o in at}
    assert any(isinstance(o, te.ParallelOp) and o.axis.data == row for o in kernel.body.block.ops)

    build_pipeline("lower-te-to-loop").apply(make_context(), m)
    (kernel,) = [f for f in defined_functions(m) if is_kernel(f)]
    loops = [o for o in kernel.body.block.ops if isinstance(o, scf.ForOp)]
    assert len(loops) == 1 and "parallel" in str(loops[0].attributes[ANNOTATION])


def test_a_statistic_read_outside_the_kernel_is_not_a_row_kernel(rng):
    """A statistic that is also a kernel output cannot live in a per-row tile: the per-stage
    schedules compute it on its own."""
    src = """def @main(%x: Tensor[(8, 64), float32]) {
      %0 = max(%x, axis=[-1], keepdims=True);
      (subtract(%x, %0), %0)
    }"""
    m = _scheduled(src)
    assert not any(isinstance(o, te.ComputeAtOp) for o in m.walk())
    x = rng.standard_normal((8, 64)).astype(np.float32)
    got = lathe.compile(parse_relay(src), num_threads=2).run(x=x)
    ref = lathe.interpret(parse_relay(src), x=x)
    for g, r in zip(got, ref):
        assert_matches(g, r)


def test_a_nan_in_a_row_makes_that_row_nan(rng):
    """numpy's softmax of a row holding NaN is NaN throughout; the other rows are untouched."""
    src = _program("softmax", (4, 32))
    x = rng.standard_normal((4, 32)).astype(np.float32)
    x[2, 5] = np.nan
    got = lathe.compile(parse_relay(src), num_threads=2).run(x=x)
    assert np.isnan(got[2]).all() and not np.isnan(got[[0, 1, 3]]).any()
    assert_matches(got[[0, 1, 3]], lathe.interpret(parse_relay(src), x=x)[[0, 1, 3]])
