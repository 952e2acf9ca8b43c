"""Winograd convolution (winograd-conv, dialects/graph/winograd.py, lowering/winograd_template.py):
the matrices, the transforms' shapes and errors, the pass's choice of layers and tiles, and the
compiled layers against the interpreter's direct convolution (padding 0 and 1, sizes no tile
divides, batch 2, channels no vector divides, bias + relu and a residual add, F(2) and F(4))."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HOST_LANES, max_rel_err

import lathe
from lathe.dialects import graph, make_context
from lathe.errors import LatheError
from lathe.passes.fold_constant import bind_params
from lathe.passes.winograd import winograd_tile
from lathe.pipelines import build_pipeline, pipeline_for
from lathe.runtime.interpreter import Interpreter
from lathe.textual_ir.parser import parse_relay

# F(4, 3)'s error on these inputs (normal data, weights ~0.05) was 1-3e-6 relative to the
# largest output, F(2, 3)'s 0.4-0.9e-6; the direct convolution's ~1e-7
TOLERANCE = {2: 5e-6, 4: 1e-5}


@pytest.mark.parametrize("m", sorted(graph.WINOGRAD_MATRICES))
def test_matrices_compute_a_correlation(m):
    """Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A is the m x m correlation of an (m+2)² tile with a 3x3 filter."""
    bt, g, at = graph.WINOGRAD_MATRICES[m]
    rng = np.random.default_rng(m)
    d, w = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
    want = np.array([[(d[i : i + 3, j : j + 3] * w).sum() for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(at @ ((g @ w @ g.T) * (bt @ d @ bt.T)) @ at.T, want, atol=1e-12)


def _layer(n, h, w, c, f, pad, residual=False) -> str:
    conv = (
        f"nn.conv2d(%x, %w, padding=[{pad}, {pad}, {pad}, {pad}], kernel_size=[3, 3], "
        'data_layout="NHWC", kernel_layout="HWIO")'
    )
    body = f"nn.bias_add({conv}, %b, axis=3)"
    if residual:  # a ResNet block's shortcut: the conv's output shape is the input's
        body = f"add({body}, %x)"
    return (
        f"def @main(%x: Tensor[({n}, {h}, {w}, {c}), float32], %w: Tensor[(3, 3, {c}, {f}), float32], "
        f"%b: Tensor[({f},), float32]) {{ nn.relu({body}) }}"
    )


def _params(rng, c, f) -> dict:
    return {
        "w": (0.05 * rng.standard_normal((3, 3, c, f))).astype(np.float32),
        "b": (0.1 * rng.standard_normal(f)).astype(np.float32),
    }


def _winograd_pipeline(m: int) -> str:
    return pipeline_for(3).replace("winograd-conv", f"winograd-conv{{tile_size={m} every_layer=true}}")


def _ops_after(src: str, params: dict, spec: str) -> list[str]:
    m = bind_params(parse_relay(src), params)
    build_pipeline(spec).apply(make_context(), m)
    return [op.name for op in m.walk() if isinstance(op, graph.GraphOp)]


@pytest.mark.parametrize(
    "n, h, w, c, f, pad, residual, m",
    [
        (1, 14, 14, 32, 32, 1, False, 4),  # tiles divide the output
        (2, 13, 17, 16, 32, 0, False, 4),  # batch 2, no padding, 11x15: cropped tiles both ways
        (1, 13, 17, 32, 32, 1, True, 4),  # a residual add in the epilogue, 13x17 with padding
        (1, 9, 10, 24, 40, 1, False, 4),  # channels no 16-lane vector divides (8-lane blocks)
        (1, 7, 7, 64, 64, 1, True, 2),  # F(2, 3) at 7x7, with a residual add
        (2, 11, 6, 16, 16, 0, False, 2),  # F(2, 3), batch 2, 9x4 without padding
    ],
)
def test_compiled_layer_matches_the_direct_convolution(n, h, w, c, f, pad, residual, m):
    rng = np.random.default_rng(h * w + c)
    src = _layer(n, h, w, c, f, pad, residual)
    params = _params(rng, c, f)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    ref = Interpreter(bind_params(parse_relay(src), params)).run("main", [x])
    ops = _ops_after(src, params, _winograd_pipeline(m).split(",fuse-ops")[0])
    assert "graph.nn.conv2d" not in ops and "graph.nn.contrib_winograd_output_transform" in ops
    cm = lathe.compile(parse_relay(src), params=params, pipeline=_winograd_pipeline(m))
    assert max_rel_err(cm.run(x=x), ref) < TOLERANCE[m]
    # the epilogue (bias, the residual add, relu) runs in the output transform's kernel
    kernels = [f.sym_name.data for f in cm.loop_module.ops if hasattr(f, "sym_name")]
    assert any("winograd_output_transform" in k and k.endswith("relu_0") for k in kernels), kernels


def test_the_conv_row_runs_winograd_by_default():
    """The NCHW layer of issue 12's conv row (64 @56): alter-op-layout makes it NHWC, the rule
    takes F(4, 3), and the result matches the interpreter's direct convolution."""
    rng = np.random.default_rng(0)
    src = (
        "def @main(%x: Tensor[(1, 64, 56, 56), float32], %w: Tensor[(64, 64, 3, 3), float32], %b: Tensor[(64), float32]) {"
        " nn.relu(nn.bias_add(nn.conv2d(%x, %w, padding=[1, 1]), %b)) }"
    )
    params = {
        "w": (0.05 * rng.standard_normal((64, 64, 3, 3))).astype(np.float32),
        "b": (0.1 * rng.standard_normal(64)).astype(np.float32),
    }
    ops = _ops_after(src, params, pipeline_for(3).split(",fuse-ops")[0])
    assert "graph.nn.conv2d" not in ops and ops.count("graph.nn.contrib_winograd_input_transform") == 1
    x = rng.standard_normal((1, 64, 56, 56)).astype(np.float32)
    ref = Interpreter(bind_params(parse_relay(src), params)).run("main", [x])
    assert max_rel_err(lathe.compile(parse_relay(src), params=params).run(x=x), ref) < TOLERANCE[4]


@pytest.mark.parametrize(
    "c, f, oh, ow, lanes, want",
    [
        (64, 64, 56, 56, 16, 4),
        (256, 256, 14, 14, 16, 4),
        (512, 512, 7, 7, 16, 4),
        (256, 256, 6, 6, 16, 2),
        (256, 256, 3, 5, 16, 2),
        (256, 256, 2, 2, 16, None),  # below 3x3: the direct template
        (8, 64, 56, 56, 16, 4),  # fewer input channels than a vector: a block of 8
        (3, 64, 56, 56, 16, None),  # an image's 3 channels: no vector block for the transforms
        (64, 40, 28, 28, 16, None),  # output channels no packed block divides
        (16, 8, 28, 28, 8, 4),  # an 8-lane target
    ],
)
def test_the_rule(c, f, oh, ow, lanes, want):
    assert winograd_tile(c, f, oh, ow, lanes) == want


def test_leaves_other_convolutions_alone():
    """Stride 2, 1x1, dilation 2 and a weight that is an input stay direct convolutions, even
    with every_layer."""
    src = (
        "def @main(%x: Tensor[(1, 16, 16, 32), float32], %v: Tensor[(3, 3, 32, 32), float32]) {"
        ' %0 = nn.conv2d(%x, %w3, strides=[2, 2], padding=[1, 1], data_layout="NHWC", kernel_layout="HWIO");'
        ' %1 = nn.conv2d(%x, %w1, data_layout="NHWC", kernel_layout="HWIO");'
        ' %2 = nn.conv2d(%x, %w3, dilation=[2, 2], padding=[2, 2], data_layout="NHWC", kernel_layout="HWIO");'
        ' %3 = nn.conv2d(%x, %v, padding=[1, 1], data_layout="NHWC", kernel_layout="HWIO");'
        " (%0, %1, %2, %3) }"
    )
    rng = np.random.default_rng(1)
    params = {
        "w3": rng.standard_normal((3, 3, 32, 32)).astype(np.float32),
        "w1": rng.standard_normal((1, 1, 32, 32)).astype(np.float32),
    }
    src = src.replace(
        "%v: Tensor", "%w3: Tensor[(3, 3, 32, 32), float32], %w1: Tensor[(1, 1, 32, 32), float32], %v: Tensor"
    )
    ops = _ops_after(src, params, "winograd-conv{every_layer=true},fold-constant")
    assert ops.count("graph.nn.conv2d") == 4 and not any("winograd" in o for o in ops)


def test_bad_options_and_shapes_are_lathe_errors():
    with pytest.raises(LatheError, match="tile_size"):
        build_pipeline("winograd-conv{tile_size=3}").apply(make_context(), parse_relay(_layer(1, 8, 8, 16, 16, 1)))
    x = graph.tensor([1, 8, 8, 16])
    with pytest.raises(graph.ShapeError, match="tile_size"):
        graph.make_op("nn.contrib_winograd_input_transform", [_value(x)], tile_size=3)
    p = graph.tensor([36, 5, 16])
    with pytest.raises(graph.ShapeError, match="output_size"):
        graph.make_op("nn.contrib_winograd_output_transform", [_value(p)], output_size=[8, 8])
    with pytest.raises(graph.ShapeError, match="output_size"):
        graph.make_op("nn.contrib_winograd_output_transform", [_value(p)])
    with pytest.raises(graph.ShapeError, match="smaller than a 3x3"):
        graph.make_op("nn.contrib_winograd_input_transform", [_value(graph.tensor([1, 2, 2, 16]))])


def _value(t):
    """An SSA value of type t (a block argument) for building ops."""
    from xdsl.ir import Block

    return Block(arg_types=[t]).args[0]


def test_reference_transforms_compose_to_the_convolution():
    """The ops' numpy references (what the interpreter and fold-constant run): input transform,
    the products with G g Gᵀ, output transform = the direct convolution, for both tiles."""
    from lathe.dialects.reference import evaluate

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 11, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 4)).astype(np.float32)
    want = Interpreter(
        bind_params(
            parse_relay(
                "def @main(%x: Tensor[(2, 9, 11, 8), float32], %w: Tensor[(3, 3, 8, 4), float32]) {"
                ' nn.conv2d(%x, %w, padding=[1, 0, 2, 1], data_layout="NHWC", kernel_layout="HWIO") }'
            ),
            {"w": w},
        )
    ).run("main", [x])
    for m in sorted(graph.WINOGRAD_MATRICES):
        g = graph.WINOGRAD_MATRICES[m][1]
        vin = graph.make_op(
            "nn.contrib_winograd_input_transform", [_value(graph.tensor(x.shape))], tile_size=m, padding=[1, 0, 2, 1]
        )
        v = evaluate(vin, x)
        u = np.einsum("xi,ijck,yj->xyck", g, w.astype(np.float64), g).reshape((m + 2) ** 2, 8, 4)
        prod = np.matmul(v.astype(np.float64), u).astype(np.float32)
        out = graph.make_op(
            "nn.contrib_winograd_output_transform",
            [_value(graph.tensor(prod.shape))],
            tile_size=m,
            output_size=list(want.shape[1:3]),
        )
        np.testing.assert_allclose(evaluate(out, prod), want, rtol=1e-4, atol=1e-4)


def test_the_tuner_sees_the_three_kernels():
    """A Winograd layer is three tasks for `lathe tune`: the transforms' templates, each with its
    channel block as a knob (a whole vector by default), and the GEMM on dense_pack."""
    from lathe.tuner.tasks import extract_tasks

    rng = np.random.default_rng(2)
    tasks = {
        t.template: t for t in extract_tasks(parse_relay(_layer(1, 14, 14, 32, 64, 1)), params=_params(rng, 32, 64))
    }
    assert {"winograd_input", "winograd_output", "dense_pack"} <= set(tasks)
    knobs = {k.name: k for k in tasks["winograd_input"].space}
    assert knobs["block_c"].default == HOST_LANES and 2 * HOST_LANES in knobs["block_c"].candidates
    assert {k.name: k for k in tasks["winograd_output"].space}["block_k"].default == HOST_LANES


@pytest.mark.parametrize("config", ["winograd_input:block_c=32", "winograd_output:block_k=32"])
def test_a_tuned_channel_block_replays(config):
    rng = np.random.default_rng(4)
    src, params = _layer(1, 9, 12, 32, 64, 1), _params(rng, 32, 64)
    x = rng.standard_normal((1, 9, 12, 32)).astype(np.float32)
    ref = Interpreter(bind_params(parse_relay(src), params)).run("main", [x])
    pipeline = pipeline_for(3).replace("apply-default-schedule", f'apply-schedule{{config="{config}"}}')
    assert max_rel_err(lathe.compile(parse_relay(src), params=params, pipeline=pipeline).run(x=x), ref) < TOLERANCE[4]


def test_repeated_layers_lower_once_and_match_the_direct_convolution(rng):
    """Two layers of the same shape (a model's repeated blocks) give kernels the same but for
    their names: lower-te-to-loop and cleanup-loops handle the first and clone it for the
    second, which must still compute its own layer (its own weights, read as arguments)."""
    from lathe.passes.cleanup import function_structure

    c = 32
    src = (
        f"def @main(%x: Tensor[(1, 12, 12, {c}), float32], %w1: Tensor[(3, 3, {c}, {c}), float32], "
        f"%w2: Tensor[(3, 3, {c}, {c}), float32]) {{ "
        'nn.relu(nn.conv2d(nn.relu(nn.conv2d(%x, %w1, padding=[1, 1, 1, 1], kernel_size=[3, 3], data_layout="NHWC", '
        'kernel_layout="HWIO")), %w2, padding=[1, 1, 1, 1], kernel_size=[3, 3], data_layout="NHWC", kernel_layout="HWIO")) }'
    )
    params = {k: (0.05 * rng.standard_normal((3, 3, c, c))).astype(np.float32) for k in ("w1", "w2")}
    x = rng.standard_normal((1, 12, 12, c)).astype(np.float32)
    ref = Interpreter(bind_params(parse_relay(src), params)).run("main", [x])
    cm = lathe.compile(parse_relay(src), params=params, pipeline=_winograd_pipeline(4))
    assert max_rel_err(cm.run(x=x), ref) < TOLERANCE[4]
    kernels = {f.sym_name.data: f for f in cm.loop_module.ops if hasattr(f, "sym_name")}
    inputs = [f for name, f in kernels.items() if "winograd_input_transform" in name]
    assert len(inputs) == 2 and function_structure(inputs[0]) == function_structure(inputs[1])
