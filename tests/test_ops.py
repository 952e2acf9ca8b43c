"""Property tests: every graph operator, compiled through te -> loop -> LLVM,
against the reference interpreter on random shapes, attributes and values.
Edge shapes: size-1 dimensions, odd sizes (7, 13, 97), broadcasting from rank 0."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_harness import ELEMWISE_RTOL, REDUCE_RTOL, check_op, one_op_module, random_inputs
from xdsl.dialects.builtin import f32, i1, i32, i64

import lathe
from lathe.dialects import graph
from lathe.dialects.graph import tensor

EXAMPLES = int(os.environ.get("LATHE_OP_EXAMPLES", "10"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
DIM = st.sampled_from([1, 2, 3, 7, 13])
BIG_DIM = st.sampled_from([1, 5, 13, 97])
seeds = st.integers(0, 2**32 - 1)


def shapes(min_rank=0, max_rank=4, dims=DIM):
    return st.lists(dims, min_size=min_rank, max_size=max_rank)


def run(name, types, seed, rtol=ELEMWISE_RTOL, positive=False, tuple_arity=None, int_range=(-5, 6), **attrs):
    m = one_op_module(name, types, tuple_arity=tuple_arity, **attrs)
    check_op(m, random_inputs(np.random.default_rng(seed), types, positive, int_range), rtol)


# -- elementwise -------------------------------------------------------------------------

UNARY = ["nn.relu", "negative", "abs", "exp", "tanh", "sigmoid", "erf", "floor", "ceil", "round"]
POSITIVE_UNARY = ["log", "sqrt", "rsqrt"]


@pytest.mark.parametrize("name", UNARY + POSITIVE_UNARY)
@SETTINGS
@given(shape=shapes(), seed=seeds)
def test_unary(name, shape, seed):
    run(name, [tensor(shape)], seed, positive=name in POSITIVE_UNARY)


@SETTINGS
@given(shape=shapes(), seed=seeds, alpha=st.floats(0.01, 0.5))
def test_leaky_relu(shape, seed, alpha):
    run("nn.leaky_relu", [tensor(shape)], seed, alpha=alpha)


@SETTINGS
@given(shape=shapes(), seed=seeds, lo=st.floats(-1, 0), width=st.floats(0, 2), dtype=st.sampled_from([f32, i32]))
def test_clip(shape, seed, lo, width, dtype):
    run("clip", [tensor(shape, dtype)], seed, a_min=lo, a_max=lo + width)


@pytest.mark.parametrize(
    "a_min, a_max, expected",
    [
        (-2.7, 3.9, [-2, -2, 0, 3, 3]),  # truncated toward zero, as TVM casts the bounds
        (-1e30, 1e30, [-128, -3, 0, 5, 127]),  # past int8's range: nothing clipped (it overflowed the interpreter)
        (float("-inf"), float("nan"), [-128, -3, 0, 5, 127]),
        (200.0, 300.0, [127, 127, 127, 127, 127]),
    ],
)
def test_clip_bounds_saturate_to_the_integer_dtype(a_min, a_max, expected):
    m = one_op_module("clip", [tensor([5], graph.DTYPES["int8"])], a_min=a_min, a_max=a_max)
    x = np.array([-128, -3, 0, 5, 127], np.int8)
    for got in (lathe.interpret(m, a0=x), lathe.compile(m).run(a0=x)):
        assert got.dtype == np.int8 and got.tolist() == expected


CASTS = [(f32, i32), (i32, f32), (f32, i1), (i1, f32), (i32, i64), (i64, i32), (f32, graph.DTYPES["float64"])]


@pytest.mark.parametrize("src,dst", CASTS)
@SETTINGS
@given(shape=shapes(), seed=seeds)
def test_cast(src, dst, shape, seed):
    run("cast", [tensor(shape, src)], seed, dtype=graph.dtype_name(dst))


BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "power"]
COMPARE = ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]


@st.composite
def broadcast_pair(draw):
    out = draw(shapes(0, 4))

    def sub():
        k = draw(st.integers(0, len(out)))
        return [d if draw(st.booleans()) else 1 for d in out[len(out) - k :]]

    return sub(), sub()


@pytest.mark.parametrize("name", BINARY)
@SETTINGS
@given(pair=broadcast_pair(), seed=seeds, dtype=st.sampled_from([f32, i32]))
def test_binary(name, pair, seed, dtype):
    if name == "power" and dtype == i32:
        dtype = f32
    positive = name in ("divide", "power")
    run(
        name,
        [tensor(pair[0], dtype), tensor(pair[1], dtype)],
        seed,
        positive=positive,
        int_range=(1, 9) if positive else (-5, 6),
    )


@pytest.mark.parametrize("name", COMPARE)
@SETTINGS
@given(pair=broadcast_pair(), seed=seeds, dtype=st.sampled_from([f32, i32]))
def test_compare(name, pair, seed, dtype):
    run(name, [tensor(pair[0], dtype), tensor(pair[1], dtype)], seed, int_range=(0, 3))


@pytest.mark.parametrize("name", ["logical_and", "logical_or"])
@SETTINGS
@given(pair=broadcast_pair(), seed=seeds)
def test_logical(name, pair, seed):
    run(name, [tensor(pair[0], i1), tensor(pair[1], i1)], seed)


@SETTINGS
@given(shape=shapes(), seed=seeds)
def test_logical_not(shape, seed):
    run("logical_not", [tensor(shape, i1)], seed)


@SETTINGS
@given(pair=broadcast_pair(), seed=seeds)
def test_where(pair, seed):
    run("where", [tensor(pair[0], i1), tensor(pair[1]), tensor(pair[0])], seed)


# -- contractions -------------------------------------------------------------------------


@SETTINGS
@given(n=BIG_DIM, k=BIG_DIM, m=BIG_DIM, batch=st.lists(DIM, max_size=2), seed=seeds)
def test_dense(n, k, m, batch, seed):
    run("nn.dense", [tensor([*batch, n, k]), tensor([m, k])], seed, REDUCE_RTOL)


@SETTINGS
@given(m=BIG_DIM, k=BIG_DIM, n=BIG_DIM, ta=st.booleans(), tb=st.booleans(), seed=seeds)
def test_matmul(m, k, n, ta, tb, seed):
    a = [k, m] if ta else [m, k]
    b = [n, k] if tb else [k, n]
    run("nn.matmul", [tensor(a), tensor(b)], seed, REDUCE_RTOL, transpose_a=ta, transpose_b=tb)


@SETTINGS
@given(b=DIM, m=DIM, k=BIG_DIM, n=DIM, ta=st.booleans(), tb=st.booleans(), bcast=st.sampled_from([0, 1, 2]), seed=seeds)
def test_batch_matmul(b, m, k, n, ta, tb, bcast, seed):
    ba, bb = (1 if bcast == 1 else b), (1 if bcast == 2 else b)
    a = [ba, k, m] if ta else [ba, m, k]
    y = [bb, n, k] if tb else [bb, k, n]
    run("nn.batch_matmul", [tensor(a), tensor(y)], seed, REDUCE_RTOL, transpose_a=ta, transpose_b=tb)


@SETTINGS
@given(
    m=st.sampled_from([2, 4]),
    n=st.sampled_from([1, 2]),
    h=st.sampled_from([3, 5, 8, 13]),
    w=st.sampled_from([3, 6, 17]),
    c=st.sampled_from([1, 5, 16]),
    pad=st.lists(st.integers(0, 2), min_size=4, max_size=4),
    seed=seeds,
)
def test_winograd_transforms(m, n, h, w, c, pad, seed):
    """The transforms alone, any shape (their templates where a vector of channels divides,
    else the per-stage schedules): the input's tiles read with the padding inside, a weight's
    (one that is not a constant), and the output transform's crop of the last tiles."""
    run("nn.contrib_winograd_input_transform", [tensor([n, h, w, c])], seed, REDUCE_RTOL, tile_size=m, padding=pad)
    run("nn.contrib_winograd_weight_transform", [tensor([3, 3, c, h])], seed, REDUCE_RTOL, tile_size=m)
    oh, ow = h + pad[0] + pad[2] - 2, w + pad[1] + pad[3] - 2
    tiles = n * -(-oh // m) * -(-ow // m)
    run(
        "nn.contrib_winograd_output_transform",
        [tensor([(m + 2) ** 2, tiles, c])],
        seed,
        REDUCE_RTOL,
        tile_size=m,
        output_size=[oh, ow],
    )


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    depthwise = draw(st.booleans())
    cpg = draw(st.sampled_from([1, 2, 3]))
    c = groups * cpg
    o = c if depthwise else groups * draw(st.sampled_from([1, 2, 4]))
    if depthwise:
        groups = c
    kh, kw = draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 2, 3]))
    h, w = draw(st.sampled_from([5, 7, 8])), draw(st.sampled_from([4, 7, 9]))
    strides = [draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 3]))]
    dilation = [draw(st.sampled_from([1, 2])), 1]
    padding = draw(st.sampled_from([[0, 0], [1, 1], [1, 0, 2, 1]]))
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    return dict(
        c=c,
        o=o,
        groups=groups,
        kh=kh,
        kw=kw,
        h=h,
        w=w,
        strides=strides,
        dilation=dilation,
        padding=padding,
        layout=layout,
        n=draw(st.sampled_from([1, 2])),
    )


@SETTINGS
@given(case=conv_case(), seed=seeds)
def test_conv2d(case, seed):
    c = case
    if c["layout"] == "NCHW":
        data, weight, kl = [c["n"], c["c"], c["h"], c["w"]], [c["o"], c["c"] // c["groups"], c["kh"], c["kw"]], "OIHW"
    else:
        data, weight, kl = [c["n"], c["h"], c["w"], c["c"]], [c["kh"], c["kw"], c["c"] // c["groups"], c["o"]], "HWIO"
    run(
        "nn.conv2d",
        [tensor(data), tensor(weight)],
        seed,
        REDUCE_RTOL,
        strides=c["strides"],
        padding=c["padding"],
        dilation=c["dilation"],
        groups=c["groups"],
        data_layout=c["layout"],
        kernel_layout=kl,
    )


@SETTINGS
@given(
    c=st.sampled_from([1, 2, 4]),
    o=st.sampled_from([1, 2, 3]),
    k=st.sampled_from([1, 2, 3]),
    s=st.sampled_from([1, 2, 3]),
    p=st.sampled_from([0, 1]),
    op_=st.sampled_from([0, 1]),
    groups=st.sampled_from([1, 2]),
    seed=seeds,
)
def test_conv2d_transpose(c, o, k, s, p, op_, groups, seed):
    if c % groups:
        c = groups * c
    op_ = min(op_, s - 1)
    run(
        "nn.conv2d_transpose",
        [tensor([1, c, 5, 4]), tensor([c, o, k, k])],
        seed,
        REDUCE_RTOL,
        strides=[s, s],
        padding=[p, p],
        output_padding=[op_, op_],
        groups=groups,
    )


# -- nn -------------------------------------------------------------------------------------


@SETTINGS
@given(shape=shapes(1, 4), seed=seeds, data=st.data())
def test_bias_add_and_prelu(shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    run("nn.bias_add", [tensor(shape), tensor([shape[axis]])], seed, axis=axis)
    run("nn.prelu", [tensor(shape), tensor([shape[axis]])], seed, axis=axis)


@pytest.mark.parametrize("name", ["nn.softmax", "nn.log_softmax"])
@SETTINGS
@given(shape=shapes(1, 4, BIG_DIM), seed=seeds, data=st.data())
def test_softmax(name, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    run(name, [tensor(shape)], seed, REDUCE_RTOL, axis=axis)


@SETTINGS
@given(shape=shapes(1, 3, BIG_DIM), seed=seeds, data=st.data(), center=st.booleans(), scale=st.booleans())
def test_layer_norm(shape, seed, data, center, scale):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    run(
        "nn.layer_norm",
        [tensor(shape), tensor([n]), tensor([n])],
        seed,
        REDUCE_RTOL,
        axis=axis,
        epsilon=1e-5,
        center=center,
        scale=scale,
    )


@SETTINGS
@given(shape=st.sampled_from([[2, 3], [1, 4, 5, 5], [2, 3, 7]]), seed=seeds)
def test_batch_norm(shape, seed):
    c = shape[1]
    m = one_op_module("nn.batch_norm", [tensor(shape)] + [tensor([c])] * 4, epsilon=1e-3)
    inputs = random_inputs(np.random.default_rng(seed), [tensor(shape)] + [tensor([c])] * 4)
    inputs["a4"] = np.abs(inputs["a4"]) + 0.5  # a variance
    check_op(m, inputs, REDUCE_RTOL)


@SETTINGS
@given(c=st.sampled_from([1, 3, 7]), size=st.sampled_from([1, 2, 3, 5]), seed=seeds)
def test_lrn(c, size, seed):
    run("nn.lrn", [tensor([1, c, 4, 3])], seed, REDUCE_RTOL, size=size, alpha=1e-3, beta=0.75, bias=1.5)


@st.composite
def pool_case(draw):
    k = [draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([2, 3]))]
    return dict(
        pool_size=k,
        strides=[draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2, 3]))],
        padding=[min(draw(st.sampled_from([0, 1])), k[0] // 2), min(draw(st.sampled_from([0, 1])), k[1] // 2)],
        dilation=[draw(st.sampled_from([1, 2])), 1],
        ceil_mode=draw(st.booleans()),
        layout=draw(st.sampled_from(["NCHW", "NHWC"])),
    )


@pytest.mark.parametrize("name", ["nn.max_pool2d", "nn.avg_pool2d"])
@SETTINGS
@given(case=pool_case(), include=st.booleans(), seed=seeds)
def test_pool(name, case, include, seed):
    shape = [2, 3, 7, 8] if case["layout"] == "NCHW" else [2, 7, 8, 3]
    if name == "nn.avg_pool2d":
        case["count_include_pad"] = include
    run(name, [tensor(shape)], seed, REDUCE_RTOL, **case)


@pytest.mark.parametrize("name", ["nn.global_avg_pool2d", "nn.global_max_pool2d"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_global_pool(name, layout, rng):
    run(name, [tensor([2, 3, 5, 7])], int(rng.integers(1 << 30)), REDUCE_RTOL, layout=layout)


@SETTINGS
@given(
    h=st.sampled_from([4, 7, 9]),
    w=st.sampled_from([5, 8]),
    oh=st.sampled_from([1, 2, 3, 4]),
    ow=st.sampled_from([1, 3, 5]),
    seed=seeds,
)
def test_adaptive_avg_pool(h, w, oh, ow, seed):
    run("nn.adaptive_avg_pool2d", [tensor([1, 2, h, w])], seed, REDUCE_RTOL, output_size=[oh, ow])


@SETTINGS
@given(
    shape=shapes(1, 3, st.sampled_from([2, 3, 5])),
    seed=seeds,
    data=st.data(),
    mode=st.sampled_from(["constant", "edge", "reflect"]),
)
def test_pad(shape, seed, data, mode):
    limit = 1 if mode == "reflect" else 3
    pw = [[data.draw(st.integers(0, limit)), data.draw(st.integers(0, limit))] for _ in shape]
    run("nn.pad", [tensor(shape)], seed, pad_width=pw, pad_value=0.5, pad_mode=mode)


@SETTINGS
@given(shape=shapes(1, 4), seed=seeds)
def test_batch_flatten(shape, seed):
    run("nn.batch_flatten", [tensor(shape)], seed)


@SETTINGS
@given(
    method=st.sampled_from(["nearest_neighbor", "linear"]),
    mode=st.sampled_from(["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"]),
    size=st.tuples(st.sampled_from([1, 3, 8, 13]), st.sampled_from([2, 5, 16])),
    layout=st.sampled_from(["NCHW", "NHWC"]),
    seed=seeds,
)
def test_resize2d(method, mode, size, layout, seed):
    shape = [1, 2, 4, 6] if layout == "NCHW" else [1, 4, 6, 2]
    run(
        "image.resize2d",
        [tensor(shape)],
        seed,
        REDUCE_RTOL,
        size=list(size),
        method=method,
        coordinate_transformation_mode=mode,
        layout=layout,
    )


# -- reductions -------------------------------------------------------------------------------


@st.composite
def reduce_case(draw):
    shape = draw(shapes(1, 4, st.sampled_from([1, 2, 5, 13])))
    axis = draw(
        st.one_of(
            st.none(), st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape), unique=True)
        )
    )
    if axis is not None and len({a % len(shape) for a in axis}) != len(axis):
        axis = sorted({a % len(shape) for a in axis})
    return shape, axis, draw(st.booleans()), draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod", "variance", "argmax", "argmin"])
@SETTINGS
@given(case=reduce_case(), seed=seeds)
def test_reduce(name, case, seed):
    shape, axis, keepdims, exclude = case
    attrs = dict(axis=axis, keepdims=keepdims, exclude=exclude)
    if name == "variance":
        attrs["unbiased"] = exclude
    if name == "prod":  # factors near 1: a product of 169 normals underflows float32 into denormals
        m = one_op_module(name, [tensor(shape)], **attrs)
        x = np.random.default_rng(seed).uniform(0.8, 1.25, shape).astype(np.float32)
        check_op(m, {"a0": x}, REDUCE_RTOL)
        return
    run(name, [tensor(shape)], seed, REDUCE_RTOL, **attrs)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_ties_and_last_index(name, rng):
    m = one_op_module(name, [tensor([3, 6], i32)], axis=[1], select_last_index=True)
    check_op(m, {"a0": rng.integers(0, 2, (3, 6)).astype(np.int32)}, 0)
    m = one_op_module(name, [tensor([3, 6], i32)], axis=[1])
    check_op(m, {"a0": rng.integers(0, 2, (3, 6)).astype(np.int32)}, 0)


# -- shape ---------------------------------------------------------------------------------------


@SETTINGS
@given(shape=shapes(1, 4), seed=seeds, data=st.data())
def test_reshape(shape, seed, data):
    n = int(np.prod(shape))
    divs = [d for d in range(1, n + 1) if n % d == 0]
    a = data.draw(st.sampled_from(divs))
    newshape = data.draw(st.sampled_from([[a, -1], [-1], [a, n // a, 1], [0, -1] if shape else [-1]]))
    if newshape == [0, -1] and n % shape[0]:
        newshape = [-1]
    run("reshape", [tensor(shape)], seed, newshape=newshape)


@SETTINGS
@given(shape=shapes(0, 4), seed=seeds, data=st.data())
def test_transpose(shape, seed, data):
    axes = data.draw(st.one_of(st.none(), st.permutations(list(range(len(shape))))))
    run("transpose", [tensor(shape)], seed, axes=list(axes) if axes is not None else None)


@SETTINGS
@given(shape=shapes(1, 4, st.sampled_from([1, 2, 3])), seed=seeds, data=st.data())
def test_squeeze_expand(shape, seed, data):
    ones = [d for d, s in enumerate(shape) if s == 1]
    axis = data.draw(st.one_of(st.none(), st.just(ones)))
    run("squeeze", [tensor(shape)], seed, axis=axis)
    run(
        "expand_dims",
        [tensor(shape)],
        seed,
        axis=data.draw(st.integers(-len(shape) - 1, len(shape))),
        num_newaxis=data.draw(st.integers(0, 2)),
    )


@SETTINGS
@given(base=shapes(1, 3), n=st.integers(1, 3), seed=seeds, data=st.data())
def test_concatenate_stack(base, n, seed, data):
    axis = data.draw(st.integers(0, len(base) - 1))
    types = []
    for _ in range(n):
        s = list(base)
        s[axis] = data.draw(DIM)
        types.append(tensor(s))
    run("concatenate", types, seed, tuple_arity=n, axis=axis)
    run("stack", [tensor(base)] * n, seed, tuple_arity=n, axis=data.draw(st.integers(-len(base) - 1, len(base))))


@SETTINGS
@given(shape=shapes(1, 3, st.sampled_from([4, 6, 12])), seed=seeds, data=st.data())
def test_split(shape, seed, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    ios = data.draw(st.sampled_from([2, [1, n - 1], [0, 2, 3]]))
    m = one_op_module("split", [tensor(shape)], indices_or_sections=ios, axis=axis)
    check_op(m, random_inputs(np.random.default_rng(seed), [tensor(shape)]), 0)


@SETTINGS
@given(shape=shapes(1, 3, st.sampled_from([3, 7, 13])), seed=seeds, data=st.data())
def test_strided_slice(shape, seed, data):
    begin = [data.draw(st.integers(-d, d - 1)) for d in shape]
    end = [data.draw(st.integers(-d - 1, d + 2)) for d in shape]
    strides = [data.draw(st.sampled_from([1, 2, 3, -1, -2])) for _ in shape]
    ok = all(len(range(*slice(b, e, s).indices(d))) > 0 for b, e, s, d in zip(begin, end, strides, shape))
    if not ok:
        return
    run("strided_slice", [tensor(shape)], seed, begin=begin, end=end, strides=strides)


@SETTINGS
@given(
    shape=shapes(1, 3, st.sampled_from([3, 5])),
    ishape=shapes(0, 2, st.sampled_from([1, 4])),
    seed=seeds,
    data=st.data(),
    mode=st.sampled_from(["clip", "wrap"]),
)
def test_take(shape, ishape, seed, data, mode):
    axis = data.draw(st.one_of(st.none(), st.integers(0, len(shape) - 1)))
    run("take", [tensor(shape), tensor(ishape, i64)], seed, int_range=(-6, 9), axis=axis, mode=mode)


@SETTINGS
@given(shape=shapes(1, 3, st.sampled_from([3, 5])), seed=seeds, data=st.data())
def test_gather(shape, seed, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    ishape = [data.draw(st.integers(1, d)) for d in shape]
    run("gather", [tensor(shape), tensor(ishape, i32)], seed, int_range=(0, min(shape[axis], 3)), axis=axis)


@SETTINGS
@given(shape=shapes(0, 3), reps=st.lists(st.integers(1, 3), min_size=0, max_size=4), seed=seeds)
def test_tile(shape, reps, seed):
    run("tile", [tensor(shape)], seed, reps=reps)


@SETTINGS
@given(pair=broadcast_pair(), seed=seeds)
def test_broadcast_to(pair, seed):
    out = (
        [max(a, b) for a, b in zip([1] * (len(pair[1]) - len(pair[0])) + pair[0], pair[1])]
        if len(pair[1]) >= len(pair[0])
        else None
    )
    if out is None:
        return
    run("broadcast_to", [tensor(pair[0])], seed, shape=out)


@pytest.mark.parametrize("name", ["zeros", "ones"])
def test_fills(name, rng):
    check_op(one_op_module(name, [], shape=[2, 3], dtype="int32"), {}, 0)
    check_op(one_op_module("full", [tensor([])], shape=[4, 1], dtype="float32"), {"a0": np.float32(2.5)}, 0)
    check_op(one_op_module(f"{name}_like", [tensor([3, 2])]), {"a0": rng.standard_normal((3, 2)).astype(np.float32)}, 0)
    check_op(
        one_op_module("full_like", [tensor([3]), tensor([])]), {"a0": np.ones(3, np.float32), "a1": np.float32(7)}, 0
    )


def test_every_op_has_a_reference_and_a_compute():
    from lathe.dialects.reference import REFERENCE
    from lathe.lowering.graph_to_te import TE_COMPUTE

    expanded = {graph.SplitOp, graph.BatchNormOp, graph.DropoutOp, graph.TupleOp, graph.TupleGetItemOp}
    for op in graph.GRAPH_OPS:
        if op is not graph.ConstantOp:
            assert op in REFERENCE, op.name
        if op not in expanded:
            assert op in TE_COMPUTE, op.name


@SETTINGS
@given(
    n=st.sampled_from([1, 7, 13, 33]),
    k=st.sampled_from([3, 17, 64]),
    m=st.sampled_from([16, 32, 48, 96]),
    batch=st.lists(st.sampled_from([1, 3]), max_size=1),
    epilogue=st.sampled_from(["", "relu", "bias"]),
    seed=seeds,
)
def test_dense_packed_register_tiles(n, k, m, batch, epilogue, seed):
    """Widths that alter-op-layout packs: the dense_pack template's register tiles, with and
    without an epilogue, on row counts the tile does not divide."""
    from op_harness import one_op_module
    from xdsl.dialects import func as _func

    types = [tensor([*batch, n, k]), tensor([m, k]), tensor([m])]
    mod = one_op_module("nn.dense", types[:2])
    if epilogue:
        fn = next(iter(mod.ops))
        ret = fn.body.block.last_op
        dense = ret.operands[0]
        if epilogue == "relu":
            new = graph.make_op("nn.relu", [dense])
        else:
            fn.body.block.insert_arg(types[2], 2)
            fn.function_type = _func.FunctionType.from_lists(types, [dense.type])
            fn.body.block.args[2].name_hint = "a2"
            new = graph.make_op("nn.bias_add", [dense, fn.body.block.args[2]], axis=-1)
        fn.body.block.insert_op_before(new, ret)
        ret.operands = [new.results[0]]
        mod.verify()
        if epilogue != "bias":
            types = types[:2]
    else:
        types = types[:2]
    check_op(mod, random_inputs(np.random.default_rng(seed), types), REDUCE_RTOL)


# -- ordering and ranges --------------------------------------------------------------------------


@SETTINGS
@given(shape=shapes(1, 3, BIG_DIM), seed=seeds, data=st.data())
def test_topk(shape, seed, data):
    """Indices and values, largest or smallest; values drawn from a few integers, so ties are
    common and must come in index order; NaNs are the largest value."""
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    k = data.draw(st.integers(0, shape[axis]))
    dtype = data.draw(st.sampled_from([f32, i32]))
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, shape).astype(np.float32 if dtype == f32 else np.int32)
    if dtype == f32:
        x[rng.random(shape) < 0.1] = np.nan
    for ret in ("indices", "values"):
        for ascend in (False, True):
            m = one_op_module("topk", [tensor(shape, dtype)], k=k, axis=axis, ret_type=ret, is_ascend=ascend)
            ref, got = lathe.interpret(m, a0=x), lathe.compile(m).run(a0=x)
            np.testing.assert_array_equal(got, ref)


def test_topk_reference_is_a_stable_sort():
    x = np.array([[3, 1, 3, 2, 1]], np.int32)
    m = one_op_module("topk", [tensor([1, 5], i32)], k=4, ret_type="indices", dtype="int64")
    np.testing.assert_array_equal(lathe.interpret(m, a0=x), [[0, 2, 3, 1]])
    m = one_op_module("topk", [tensor([1, 5], i32)], k=3, ret_type="indices", is_ascend=True, dtype="int64")
    np.testing.assert_array_equal(lathe.interpret(m, a0=x), [[1, 4, 3]])


@pytest.mark.parametrize(
    "start, stop, step, dtype",
    [
        (0, 10, 3, "int64"),
        (5, 1, -2, "int32"),
        (5, 1, 1, "int32"),
        (1.5, -2.0, -0.25, "float32"),
        (0, 1, 0.1, "float64"),
    ],
)
def test_arange(start, stop, step, dtype):
    m = one_op_module("arange", [], start=start, stop=stop, step=step, dtype=dtype)
    got = lathe.compile(m).run()
    np.testing.assert_allclose(got, np.arange(start, stop, step, dtype=dtype), rtol=1e-6)
    np.testing.assert_array_equal(got, lathe.interpret(m))


def test_topk_and_arange_refuse_what_they_cannot_be():
    with pytest.raises(graph.ShapeError, match="k = 6 is larger than the axis"):
        one_op_module("topk", [tensor([2, 5])], k=6)
    with pytest.raises(graph.ShapeError, match="step must not be 0"):
        one_op_module("arange", [], stop=3, step=0)
    m = one_op_module("topk", [tensor([2, 5])], k=2)
    with pytest.raises(lathe.LatheError, match="ret_type='both' gives a tuple"):
        lathe.compile(m)
