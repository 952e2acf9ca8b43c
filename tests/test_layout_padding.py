"""Channel counts no vector block divides: alter-op-layout pads them (zero weights), cuts the
result with a marked strided_slice, lifts the cut through the epilogue, and lets the next
layer read the padded tensor. Every case is compiled and compared with the interpreter on
fresh random inputs; the IR checks say the padding is paid once (no cut between layers)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_compiles_as_interpreted, graph_ops_after_layout, max_rel_err

import lathe
from lathe.dialects import graph
from lathe.passes.alter_op_layout import PAD_SLICE, padded_width
from lathe.textual_ir.parser import parse_relay


def test_padded_width():
    assert padded_width(24) == 32 and padded_width(40) == 48 and padded_width(1000) == 1008
    assert padded_width(32) is None and padded_width(48) is None  # a block divides: no padding
    assert padded_width(3) is None  # too few channels: padding would more than double the work
    assert padded_width(24, lanes=8) is None and padded_width(30, lanes=4) == 32


CHAIN = """
def @main(%x: Tensor[(1, 24, 13, 11), float32], %w1: Tensor[(40, 24, 3, 3), float32], %b1: Tensor[(40), float32],
          %w2: Tensor[(40, 40, 1, 1), float32], %w3: Tensor[(24, 40, 3, 3), float32]) {
  %0 = nn.bias_add(nn.conv2d(%x, %w1, padding=[1, 1, 1, 1]), %b1);
  %1 = multiply(%0, clip(add(multiply(%0, 0.166667f), 0.5f), a_min=0f, a_max=1f));
  %2 = nn.relu(nn.conv2d(%1, %w2));
  %3 = add(%2, %1);
  nn.conv2d(%3, %w3, strides=[2, 2], padding=[1, 1, 1, 1])
}
"""


def _chain_params(rng):
    return {
        "w1": (rng.standard_normal((40, 24, 3, 3)) * 0.1).astype(np.float32),
        "b1": rng.standard_normal(40).astype(np.float32),
        "w2": (rng.standard_normal((40, 40, 1, 1)) * 0.2).astype(np.float32),
        "w3": (rng.standard_normal((24, 40, 3, 3)) * 0.1).astype(np.float32),
    }


def test_padded_chain_agrees_with_the_interpreter(rng):
    """40 output channels (padded to 48) through bias, hard-swish, a 1x1 conv, a residual add
    and a strided 3x3 conv to 24 channels (padded to 32)."""
    x = rng.standard_normal((1, 24, 13, 11)).astype(np.float32)
    assert_compiles_as_interpreted(CHAIN, _chain_params(rng), {"x": x})


def test_the_cut_rises_to_the_end_and_every_conv_is_padded(rng):
    ops = graph_ops_after_layout(CHAIN, _chain_params(rng))
    convs = [op for op in ops if isinstance(op, graph.Conv2dOp)]
    assert len(convs) == 3
    assert all(graph.shape_of(c.result.type)[-1] % 16 == 0 for c in convs)  # NHWC, padded channels
    assert [graph.shape_of(c.data.type)[-1] for c in convs] == [24, 48, 48]  # the padded tensor, read in place
    cuts = [op for op in ops if isinstance(op, graph.StridedSliceOp)]
    assert len(cuts) == 1 and PAD_SLICE in cuts[0].attributes  # only the model's output is cut
    assert isinstance(cuts[0].data.owner, graph.Conv2dOp)


@pytest.mark.parametrize("n", [1000, 30, 77, 24])
@pytest.mark.parametrize("m", [1, 5])
def test_dense_with_any_n_is_packed_and_agrees(m, n, rng):
    src = f"""
    def @main(%x: Tensor[({m}, 64), float32], %w: Tensor[({n}, 64), float32], %b: Tensor[({n}), float32]) {{
      nn.relu(nn.bias_add(nn.dense(%x, %w), %b, axis=-1))
    }}"""
    params = {"w": rng.standard_normal((n, 64)).astype(np.float32), "b": rng.standard_normal(n).astype(np.float32)}
    ops = graph_ops_after_layout(src, params)
    assert any(isinstance(op, graph.DensePackOp) for op in ops)
    assert not any(isinstance(op, graph.DenseOp) for op in ops)
    assert_compiles_as_interpreted(src, params, {"x": rng.standard_normal((m, 64)).astype(np.float32)})


def test_a_cut_is_not_lifted_through_ops_that_could_make_its_padding_infinite(rng):
    """log(0) is -inf, and -inf times a zero weight is NaN: log stays after the cut."""
    src = """
    def @main(%x: Tensor[(1, 8, 6, 6), float32], %w1: Tensor[(24, 8, 1, 1), float32], %w2: Tensor[(16, 24, 1, 1), float32]) {
      nn.conv2d(log(nn.relu(nn.conv2d(%x, %w1))), %w2)
    }"""
    params = {
        "w1": rng.standard_normal((24, 8, 1, 1)).astype(np.float32),
        "w2": rng.standard_normal((16, 24, 1, 1)).astype(np.float32),
    }
    ops = graph_ops_after_layout(src, params)
    logs = [op for op in ops if isinstance(op, graph.LogOp)]
    assert len(logs) == 1 and graph.shape_of(logs[0].result.type)[1] == 24  # computed on the cut tensor
    x = np.abs(rng.standard_normal((1, 8, 6, 6))).astype(np.float32)
    module = parse_relay(src)
    ref = lathe.interpret(module, params=params, x=x)
    got = lathe.compile(module, params=params, num_threads=2).run(x=x)
    finite = np.isfinite(ref)
    assert np.array_equal(finite, np.isfinite(got))
    assert max_rel_err(got[finite], ref[finite]) < 2e-5


BLOCK = """
def @main(%x: Tensor[(1, 16, 9, 10), float32], %w1: Tensor[(120, 16, 1, 1), float32],
          %wd: Tensor[(120, 1, 3, 3), float32], %w2: Tensor[(40, 120, 1, 1), float32]) {
  %0 = clip(nn.conv2d(%x, %w1), a_min=0f, a_max=6f);
  %1 = clip(nn.conv2d(%0, %wd, padding=[1, 1, 1, 1], groups=120), a_min=0f, a_max=6f);
  nn.conv2d(%1, %w2)
}
"""


def _block_params(rng):
    return {
        "w1": (rng.standard_normal((120, 16, 1, 1)) * 0.3).astype(np.float32),
        "wd": (rng.standard_normal((120, 1, 3, 3)) * 0.3).astype(np.float32),
        "w2": (rng.standard_normal((40, 120, 1, 1)) * 0.1).astype(np.float32),
    }


def test_inverted_residual_stays_padded_through_the_depthwise(rng):
    """expand 16 -> 120 (padded to 128), depthwise over all 128 channels (no pad or cut
    between the layers), project 120 -> 40 reading the padded tensor."""
    params = _block_params(rng)
    ops = graph_ops_after_layout(BLOCK, params)
    convs = [op for op in ops if isinstance(op, graph.Conv2dOp)]
    assert [graph.shape_of(c.data.type)[-1] for c in convs] == [16, 128, 128]
    assert convs[1].attrs()["groups"] == 128
    assert not any(isinstance(op, graph.PadOp) for op in ops)
    assert len([op for op in ops if isinstance(op, graph.StridedSliceOp)]) == 1
    assert_compiles_as_interpreted(BLOCK, params, {"x": rng.standard_normal((1, 16, 9, 10)).astype(np.float32)})


@pytest.mark.parametrize("channels, stride", [(72, 2), (120, 1), (24, 1)])
def test_a_lone_depthwise_of_any_width_runs_padded_in_nhwc(channels, stride, rng):
    src = f"""
    def @main(%x: Tensor[(1, {channels}, 11, 12), float32], %w: Tensor[({channels}, 1, 3, 3), float32]) {{
      nn.conv2d(%x, %w, strides=[{stride}, {stride}], padding=[1, 1, 1, 1], groups={channels})
    }}"""
    params = {"w": rng.standard_normal((channels, 1, 3, 3)).astype(np.float32)}
    (conv,) = [op for op in graph_ops_after_layout(src, params) if isinstance(op, graph.Conv2dOp)]
    assert conv.attrs()["data_layout"] == "NHWC" and graph.shape_of(conv.result.type)[-1] % 16 == 0
    assert_compiles_as_interpreted(src, params, {"x": rng.standard_normal((1, channels, 11, 12)).astype(np.float32)})


SE = """
def @main(%x: Tensor[(1, 8, 7, 7), float32], %w1: Tensor[(72, 8, 1, 1), float32], %f1: Tensor[(24, 72, 1, 1), float32],
          %f2: Tensor[(72, 24, 1, 1), float32], %w2: Tensor[(40, 72, 1, 1), float32]) {
  %0 = nn.relu(nn.conv2d(%x, %w1));
  %1 = sigmoid(nn.conv2d(nn.relu(nn.conv2d(nn.global_avg_pool2d(%0), %f1)), %f2));
  nn.conv2d(multiply(%0, %1), %w2)
}
"""


def test_a_squeeze_excitation_gate_multiplies_the_padded_tensor(rng):
    """x * gate broadcasts two cuts of one width: the product is taken on the padded tensors."""
    params = {
        k: (rng.standard_normal(s) * 0.3).astype(np.float32)
        for k, s in {"w1": (72, 8, 1, 1), "f1": (24, 72, 1, 1), "f2": (72, 24, 1, 1), "w2": (40, 72, 1, 1)}.items()
    }
    ops = graph_ops_after_layout(SE, params)
    (mul,) = [op for op in ops if isinstance(op, graph.MultiplyOp)]
    assert graph.shape_of(mul.result.type)[-1] == 80
    assert len([op for op in ops if isinstance(op, graph.StridedSliceOp)]) == 1
    assert_compiles_as_interpreted(SE, params, {"x": rng.standard_normal((1, 8, 7, 7)).astype(np.float32)})
