"""Channel permutations (passes/channel_permutation.py): alter-op-layout turns a channel shuffle
into take(x, P, axis), keeps shuffles, splits and concats NHWC, and moves permutations into the
weights of the convolutions and dense layers that read them. Every case is compiled and
compared with the reference interpreter on fresh random inputs; the IR checks say what is left
at run time."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_compiles_as_interpreted, graph_ops_after_layout

import lathe
from lathe.dialects import graph
from lathe.dialects.graph import shape_of


def _weights(rng, **shapes) -> dict:
    return {k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}


def _kinds(ops) -> list[str]:
    return [op.relay_name() for op in ops]


def _shuffle(x: str, c: int, g: int, h: int, w: int) -> str:
    """PyTorch's channel_shuffle as exported: reshape, transpose, reshape (NCHW)."""
    return (
        f"reshape(transpose(reshape({x}, newshape=[1, {g}, {c // g}, {h}, {w}]), axes=[0, 2, 1, 3, 4]),"
        f" newshape=[1, {c}, {h}, {w}])"
    )


# A ShuffleNet-v2 unit of stride 1 (split, a 1x1 / depthwise / 1x1 branch, concat, shuffle) and
# a conv reading the shuffle: 58-channel halves, which alter-op-layout pads to 64.
UNIT = f"""
def @main(%input: Tensor[(1, 16, 9, 7), float32], %w0: Tensor[(116, 16, 1, 1), float32], %w1: Tensor[(58, 58, 1, 1), float32], %b1: Tensor[(58), float32],
          %dw: Tensor[(58, 1, 3, 3), float32], %w2: Tensor[(58, 58, 1, 1), float32], %b2: Tensor[(58), float32],
          %w3: Tensor[(40, 116, 1, 1), float32]) {{
  %x = nn.relu(nn.conv2d(%input, %w0));
  %0 = strided_slice(%x, begin=[0], end=[58], strides=[1], axes=[1]);
  %1 = strided_slice(%x, begin=[58], end=[116], strides=[1], axes=[1]);
  %2 = nn.relu(nn.bias_add(nn.conv2d(%1, %w1), %b1));
  %3 = nn.conv2d(%2, %dw, padding=[1, 1, 1, 1], groups=58, channels=58, kernel_size=[3, 3]);
  %4 = nn.relu(nn.bias_add(nn.conv2d(%3, %w2), %b2));
  %5 = concatenate((%0, %4), axis=1);
  %6 = {_shuffle("%5", 116, 2, 9, 7)};
  nn.conv2d(%6, %w3)
}}
"""


def _unit_params(rng):
    shapes = dict(w0=(116, 16, 1, 1), w1=(58, 58, 1, 1), b1=(58,), dw=(58, 1, 3, 3), w2=(58, 58, 1, 1), b2=(58,))
    return _weights(rng, **shapes, w3=(40, 116, 1, 1))


def test_shuffle_unit_matches_the_interpreter(rng):
    assert_compiles_as_interpreted(
        UNIT, _unit_params(rng), {"input": rng.standard_normal((1, 16, 9, 7)).astype(np.float32)}
    )


def test_shuffle_unit_stays_nhwc_and_the_shuffle_moves_into_the_weights(rng):
    ops = graph_ops_after_layout(UNIT, _unit_params(rng))
    kinds = _kinds(ops)
    # one transpose at each end, none between the convolutions; no 5-D reshape left
    assert kinds.count("transpose") == 2 and "reshape" not in kinds, kinds
    # the conv reading the shuffle took it into its weight: no take of the concatenation (the
    # split's second half of the input is one: x[58:116] gathered as 64 channels)
    assert not [op for op in ops if isinstance(op, graph.TakeOp) and isinstance(op.data.owner, graph.ConcatenateOp)]
    convs = [op for op in ops if isinstance(op, graph.Conv2dOp)]
    assert all(op.attrs()["data_layout"] == "NHWC" for op in convs)
    # the branch's field of the concatenation is its padded output (64 channels), not a cut
    (concat,) = [op for op in ops if isinstance(op, graph.ConcatenateOp)]
    assert shape_of(concat.data.owner.operands[1].type)[-1] == 64


# Two units in a row: the second one's split reads halves of the first one's shuffle, which
# no weight can take (each half is a subset), so they stay gathers, padded to the vector.
TWO_UNITS = f"""
def @main(%input: Tensor[(1, 16, 6, 6), float32], %w0: Tensor[(116, 16, 1, 1), float32], %w1: Tensor[(58, 58, 1, 1), float32],
          %w2: Tensor[(58, 58, 1, 1), float32], %w3: Tensor[(24, 116, 1, 1), float32]) {{
  %x = nn.relu(nn.conv2d(%input, %w0));
  %0 = strided_slice(%x, begin=[0], end=[58], strides=[1], axes=[1]);
  %1 = strided_slice(%x, begin=[58], end=[116], strides=[1], axes=[1]);
  %2 = nn.relu(nn.conv2d(%1, %w1));
  %3 = {_shuffle("concatenate((%0, %2), axis=1)", 116, 2, 6, 6)};
  %4 = strided_slice(%3, begin=[0], end=[58], strides=[1], axes=[1]);
  %5 = strided_slice(%3, begin=[58], end=[116], strides=[1], axes=[1]);
  %6 = nn.relu(nn.conv2d(%5, %w2));
  %7 = {_shuffle("concatenate((%4, %6), axis=1)", 116, 2, 6, 6)};
  nn.conv2d(%7, %w3)
}}
"""


def test_split_after_a_shuffle_is_a_padded_gather(rng):
    params = _weights(rng, w0=(116, 16, 1, 1), w1=(58, 58, 1, 1), w2=(58, 58, 1, 1), w3=(24, 116, 1, 1))
    assert_compiles_as_interpreted(TWO_UNITS, params, {"input": rng.standard_normal((1, 16, 6, 6)).astype(np.float32)})
    ops = graph_ops_after_layout(TWO_UNITS, params)
    takes = [op for op in ops if isinstance(op, graph.TakeOp)]
    assert takes and all(shape_of(t.result.type)[-1] % 16 == 0 for t in takes)  # 58 gathered as 64
    assert _kinds(ops).count("transpose") == 2


@pytest.mark.parametrize("c, groups", [(48, 2), (48, 3), (40, 2), (40, 4)])
def test_shuffle_before_a_depthwise_conv(c, groups, rng):
    """A shuffle read by a depthwise conv: the take moves past it (its filters and the bias
    permuted) into the 1x1 conv after it. 40 channels: the depthwise is padded to 48, and
    the take moves through the padding too."""
    src = f"""
    def @main(%x: Tensor[(1, 8, 5, 5), float32], %w0: Tensor[({c}, 8, 1, 1), float32],
              %dw: Tensor[({c}, 1, 3, 3), float32], %b: Tensor[({c}), float32], %w1: Tensor[(16, {c}, 1, 1), float32]) {{
      %0 = {_shuffle("nn.relu(nn.conv2d(%x, %w0))", c, groups, 5, 5)};
      %1 = nn.relu(nn.bias_add(nn.conv2d(%0, %dw, padding=[1, 1, 1, 1], groups={c}, channels={c}, kernel_size=[3, 3]), %b));
      nn.conv2d(%1, %w1)
    }}
    """
    params = _weights(rng, w0=(c, 8, 1, 1), dw=(c, 1, 3, 3), b=(c,), w1=(16, c, 1, 1))
    assert_compiles_as_interpreted(src, params, {"x": rng.standard_normal((1, 8, 5, 5)).astype(np.float32)})
    kinds = _kinds(graph_ops_after_layout(src, params))
    assert "take" not in kinds and "reshape" not in kinds and kinds.count("transpose") == 2, kinds


def test_shuffle_before_a_dense_layer(rng):
    """A shuffle of a vector's 48 features (3 groups) moves into the dense weight's columns."""
    src = """
    def @main(%x: Tensor[(4, 48), float32], %w: Tensor[(24, 48), float32]) {
      nn.dense(reshape(transpose(reshape(%x, newshape=[4, 3, 16]), axes=[0, 2, 1]), newshape=[4, 48]), %w)
    }
    """
    params = _weights(rng, w=(24, 48))
    assert_compiles_as_interpreted(src, params, {"x": rng.standard_normal((4, 48)).astype(np.float32)})
    kinds = _kinds(graph_ops_after_layout(src, params))
    assert "take" not in kinds, kinds


def test_shuffle_with_no_convolution_after_it_is_one_gather(rng):
    src = f"def @main(%x: Tensor[(1, 12, 4, 4), float32]) {{ {_shuffle('%x', 12, 3, 4, 4)} }}"
    x = rng.standard_normal((1, 12, 4, 4)).astype(np.float32)
    assert_compiles_as_interpreted(src, {}, {"x": x})
    kinds = _kinds(graph_ops_after_layout(src, {}))
    assert kinds == ["constant", "take"], kinds


def test_reshapes_that_move_more_than_one_axis_are_not_a_permutation(rng):
    """(N, 2, C/2, H, W) with H moved next to the groups permutes two axes together: it stays."""
    src = """
    def @main(%x: Tensor[(1, 8, 3, 3), float32]) {
      reshape(transpose(reshape(%x, newshape=[1, 2, 4, 3, 3]), axes=[0, 3, 2, 1, 4]), newshape=[1, 8, 3, 3])
    }
    """
    assert_compiles_as_interpreted(src, {}, {"x": rng.standard_normal((1, 8, 3, 3)).astype(np.float32)})
    assert "take" not in _kinds(graph_ops_after_layout(src, {}))


def test_a_take_of_a_run_is_a_slice_and_of_everything_nothing(rng):
    src = """
    def @main(%x: Tensor[(2, 10), float32], %a: Tensor[(3), int64], %b: Tensor[(10), int64]) {
      concatenate((take(%x, %a, axis=1), take(%x, %b, axis=1)), axis=1)
    }
    """
    params = {"a": np.array([1, 4, 7], dtype=np.int64), "b": np.arange(10, dtype=np.int64)}
    kinds = _kinds(graph_ops_after_layout(src, params))
    assert "take" not in kinds and kinds.count("strided_slice") == 1, kinds  # x[:, 1:8:3], and x
    assert_compiles_as_interpreted(src, params, {"x": rng.standard_normal((2, 10)).astype(np.float32)})


def test_a_take_of_run_time_indices_is_left_alone(rng):
    src = """
    def @main(%x: Tensor[(1, 6, 2, 2), float32], %i: Tensor[(6), int64], %w: Tensor[(4, 6, 1, 1), float32]) {
      nn.conv2d(take(%x, %i, axis=1), %w)
    }
    """
    params = _weights(rng, w=(4, 6, 1, 1))
    kinds = _kinds(graph_ops_after_layout(src, params))
    assert "take" in kinds
    x = rng.standard_normal((1, 6, 2, 2)).astype(np.float32)
    assert_compiles_as_interpreted(src, params, {"x": x, "i": rng.permutation(6).astype(np.int64)})


def test_full_size_shufflenet_has_no_transpose_between_convolutions():
    """ShuffleNet-v2 x1.0's graph after -O3's graph passes: transposes only at the model's ends."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lathe.dialects import make_context
    from lathe.passes.fold_constant import bind_params
    from lathe.pipelines import GRAPH_PIPELINES, build_pipeline
    from models import shufflenet_v2

    model = shufflenet_v2.build(stage_repeats=(2, 2, 2), image_size=64, num_classes=10)
    module, params = lathe.from_onnx(model)
    module = bind_params(module, params)
    build_pipeline(GRAPH_PIPELINES[3].replace(",fuse-ops", "")).apply(make_context(), module)
    ops = [op for op in module.walk() if isinstance(op, graph.GraphOp)]
    kinds = _kinds(ops)
    assert kinds.count("transpose") == 2 and "reshape" in kinds and kinds.count("reshape") == 1  # the head's flatten
    # every tensor a convolution reads or a gather makes is a whole number of vectors wide
    for op in ops:
        if isinstance(op, graph.Conv2dOp | graph.TakeOp | graph.ConcatenateOp):
            assert shape_of(op.results[0].type)[-1] % 16 == 0, op.relay_name()
