"""Index-set splitting (lowering/index_split.py): concatenations of 2..40 inputs along NHWC's
channel axis and NCHW's, odd channel counts, with and without a fused epilogue, against the
interpreter on fresh random inputs; and the loops it leaves (one select-free vector copy per
input where the vector width divides every input's channels)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err
from xdsl.dialects import arith, scf

import lathe
from lathe.dialects import make_context
from lathe.dialects.loop import annotation_of
from lathe.pipelines import build_pipeline
from lathe.textual_ir.parser import parse_relay


def _concat(channels: list[int], layout: str, epilogue: bool) -> str:
    axis = 3 if layout == "NHWC" else 1

    def shape(c: int) -> str:
        return f"(1, 3, 5, {c})" if layout == "NHWC" else f"(1, {c}, 3, 5)"

    total = sum(channels)
    params = [f"%x{k}: Tensor[{shape(c)}, float32]" for k, c in enumerate(channels)]
    fields = ", ".join(f"%x{k}" for k in range(len(channels)))
    body = f"concatenate(({fields}), axis={axis})"
    if epilogue:
        per_channel = f"({total})" if layout == "NHWC" else f"({total}, 1, 1)"
        params += [f"%s: Tensor[{per_channel}, float32]", f"%t: Tensor[{per_channel}, float32]"]
        body = f"nn.relu(add(multiply({body}, %s), %t))"
    return f"def @main({', '.join(params)}) {{ {body} }}"


def _inputs(src: str, rng) -> dict[str, np.ndarray]:
    fn = parse_relay(src).ops.first
    return {
        a.name_hint: rng.standard_normal(a.type.get_shape()).astype(np.float32)
        for a in fn.body.block.args  # type: ignore[union-attr]
    }


CASES = [
    [1, 3],
    [17, 32],
    [64, 32, 17],
    [3, 1, 17, 32, 1],
    [32] * 8,
    [64] + [32] * 31,  # a DenseNet block's last concatenation
    [16] * 40,  # more inputs than MAX_PARTS' share: still right
    [1] * 33,
]


@pytest.mark.parametrize("channels", CASES, ids=lambda c: f"{len(c)}x{c[-1]}")
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("epilogue", [False, True], ids=["copy", "bn_relu"])
def test_concatenation_agrees(channels, layout, epilogue, rng):
    src = _concat(channels, layout, epilogue)
    inputs = _inputs(src, rng)
    ref = lathe.interpret(parse_relay(src), **inputs)
    got = lathe.compile(parse_relay(src), num_threads=2).run(**inputs)
    assert max_rel_err(got, ref) < 1e-6


def _kernel_loops(src: str):
    m = parse_relay(src)
    build_pipeline("fuse-ops,lower-graph-to-te,apply-default-schedule,lower-te-to-loop,cleanup-loops").apply(
        make_context(), m
    )
    kernel = next(f for f in m.ops if "lathe.kernel" in f.attributes)  # type: ignore[union-attr]
    vector = [op for op in kernel.walk() if isinstance(op, scf.ForOp) and annotation_of(op) is not None]
    selects = [op for op in kernel.walk() if isinstance(op, arith.SelectOp)]
    return vector, selects


@pytest.mark.parametrize("channels", [[64, 32, 32], [64] + [32] * 23, [16, 48, 16]])
def test_each_input_is_one_plain_vector_copy(channels):
    vector, selects = _kernel_loops(_concat(channels, "NHWC", epilogue=True))
    vectorized = [op for op in vector if annotation_of(op).kind.data == "vectorize"]  # type: ignore[union-attr]
    assert len(vectorized) == len(channels)
    assert not selects


def test_a_straddled_boundary_keeps_its_select():
    """17 + 32 channels: the vector holding channels 16..31 reads both inputs; only that part
    keeps the select, the others are plain copies."""
    vector, selects = _kernel_loops(_concat([16, 17, 31], "NHWC", epilogue=False))
    vectorized = [op for op in vector if annotation_of(op).kind.data == "vectorize"]  # type: ignore[union-attr]
    assert len(vectorized) >= 3
    assert selects
    plain = [v for v in vectorized if not any(isinstance(op, arith.SelectOp) for op in v.walk())]
    assert len(plain) >= 2


def test_too_many_parts_leave_the_loop_whole():
    """Past MAX_PARTS the loop is not copied per part; the select chain stays (and is right,
    test_concatenation_agrees[40x16])."""
    _, selects = _kernel_loops(_concat([16] * 70, "NHWC", epilogue=False))
    assert selects


@pytest.mark.parametrize(
    "reduce",
    ["sum(%0, axis=[3])", "max(%0, axis=[3], keepdims=True)", "mean(%0, axis=[1, 2])", "sum(%0, axis=[0, 3])"],
)
def test_a_reduction_over_a_concatenation_agrees(reduce, rng):
    """A reduction reading a split concatenation's buffer (fuse-ops keeps an injective op feeding
    a reduction its own kernel), a part of the channels one vector straddles (48 + 17) included."""
    src = (
        "def @main(%a: Tensor[(2, 3, 5, 48), float32], %b: Tensor[(2, 3, 5, 17), float32], "
        "%c: Tensor[(2, 3, 5, 32), float32]) { %0 = concatenate((%a, %b, %c), axis=3); " + reduce + " }"
    )
    inputs = _inputs(src, rng)
    ref = lathe.interpret(parse_relay(src), **inputs)
    got = lathe.compile(parse_relay(src), num_threads=2).run(**inputs)
    assert max_rel_err(got, ref) < 1e-5
