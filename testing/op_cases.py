"""How to make a valid random instance of every graph op, in one place.

The property tests (tests/test_ops.py, through tests/op_harness.py) and the
backend conformance suite (`lathe.testing.backends`) both build one-op
modules, draw inputs for them and compare a backend with the reference
interpreter; this module is what they share:

  * `one_op_module`, `random_inputs`, `rel_err` and the tolerances;
  * `CASES`: for every op in `graph.OPS_BY_RELAY_NAME`, a builder that draws a
    valid instance (operand types on odd and size-1 dimensions, attributes,
    and the value constraints its inputs need: positive for log, index ranges
    for take and gather, ...) from a numpy Generator;
  * `DTYPE_CASES`: one case per graph dtype, so a backend's dtype claims are
    exercised too.

Values are realistic and never all zeros: a zero input hides a wrong
multiply, a missing bias or a dropped accumulation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, TupleType, f32, i1, i32, i64
from xdsl.ir import Attribute, Block, Region

from lathe.dialects import graph
from lathe.dialects.dtypes import np_dtype
from lathe.dialects.graph import tensor

ELEMWISE_RTOL = 1e-5
REDUCE_RTOL = 1e-4
# the least precise dtype in a case sets its tolerance (float16 keeps ~3 decimal digits)
DTYPE_RTOL = {"float16": 2e-2}

# odd sizes (no vector width divides them: remainder loops), size-1 dimensions, and 16, so that
# some draws take the default schedule's vectorized path (it vectorizes only sizes 4, 8 or 16 divide)
DIMS = (1, 3, 7, 13, 16)


# -- modules, inputs, comparison ------------------------------------------------------------


def one_op_module(name: str, types: list, tuple_arity: int | None = None, **attrs) -> ModuleOp:
    """@main(a0, a1, ...) = name(a0, a1, ..., **attrs); with tuple_arity the first
    `tuple_arity` parameters are packed into a tuple operand (concatenate, stack)."""
    block = Block(arg_types=types)
    for k, a in enumerate(block.args):
        a.name_hint = f"a{k}"
    operands = list(block.args)
    if tuple_arity is not None:
        t = graph.make_op("tuple", operands[:tuple_arity])
        block.add_op(t)
        operands = [t.results[0], *operands[tuple_arity:]]
    op = graph.make_op(name, operands, **attrs)
    block.add_op(op)
    block.add_op(func.ReturnOp(op.results[0]))
    f = func.FuncOp("main", (types, [op.results[0].type]), Region(block))
    m = ModuleOp([f])
    m.verify()
    return m


def random_inputs(rng, types: list, positive: bool = False, int_range=(-5, 6)) -> dict:
    """Inputs a0, a1, ... for `types`: normal floats (|x| + 0.5 with `positive`), integers
    drawn from `int_range`, fair booleans."""
    float_sampler = positive_values if positive else normal
    out = {}
    for k, t in enumerate(types):
        if not isinstance(t, TensorType):
            raise TypeError(f"parameter a{k} is not a tensor: {t}")
        dt = np_dtype(t.element_type)
        sampler = ints(*int_range) if np.issubdtype(dt, np.integer) else float_sampler
        out[f"a{k}"] = np.asarray(sampler(rng, tuple(t.get_shape()), dt))
    return out


def rel_err(got, ref) -> float:
    """max |got - ref| / max |ref| over the finite values; exact equality for integers and
    booleans (0 or inf). Raises ValueError when shapes, dtypes or the positions of
    non-finite values (NaN, inf) differ: that is a wrong answer, not an inaccurate one."""
    got = np.asarray(got)
    ref = np.asarray(ref)
    if got.shape != ref.shape:
        raise ValueError(f"shape {got.shape} differs from the reference's {ref.shape}")
    if got.dtype != ref.dtype:
        raise ValueError(f"dtype {got.dtype} differs from the reference's {ref.dtype}")
    if got.dtype == np.bool_ or np.issubdtype(got.dtype, np.integer):
        return 0.0 if np.array_equal(got, ref) else float("inf")
    g, r = got.astype(np.float64), ref.astype(np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(r)) or not np.array_equal(np.isinf(g), np.isinf(r)):
        raise ValueError("non-finite values differ")
    inf = np.isinf(r)
    if not np.array_equal(g[inf], r[inf]):
        raise ValueError("infinities of different signs")
    fin = np.isfinite(r)
    if not fin.any():
        return 0.0
    scale = np.max(np.abs(r[fin]))
    err = np.max(np.abs(g[fin] - r[fin]))
    return float(err / scale if scale > 0 else err)


def outputs(value) -> list[np.ndarray]:
    """A result (an array or nested tuples of arrays) as a flat list, in order."""
    if isinstance(value, tuple | list):
        return [x for v in value for x in outputs(v)]
    return [value]


def worst_rel_err(got, ref) -> float:
    """rel_err over every output of a (possibly tuple) result."""
    g, r = outputs(got), outputs(ref)
    if len(g) != len(r):
        raise ValueError(f"{len(g)} outputs, the reference has {len(r)}")
    return max((rel_err(a, b) for a, b in zip(g, r)), default=0.0)


# -- value samplers: (rng, shape, numpy dtype) -> array ---------------------------------------

Sampler = Callable[[np.random.Generator, tuple, np.dtype], np.ndarray]


def normal(rng, shape, dt) -> np.ndarray:
    """Both signs, magnitudes around 1; integers from ±1..±5 (never 0); fair booleans."""
    if dt == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if np.issubdtype(dt, np.integer):
        return np.asarray(rng.integers(1, 6, size=shape) * rng.choice([-1, 1], size=shape)).astype(dt)
    return np.asarray(rng.standard_normal(shape)).astype(dt)


def positive_values(rng, shape, dt) -> np.ndarray:
    """Away from zero and positive: the domain of log, sqrt, rsqrt, a divisor, a variance."""
    if dt == np.bool_:
        return normal(rng, shape, dt)
    if np.issubdtype(dt, np.integer):
        return np.asarray(rng.integers(1, 9, size=shape)).astype(dt)
    return np.abs(np.asarray(rng.standard_normal(shape)).astype(dt)) + dt.type(0.5)


def ints(lo: int, hi: int) -> Sampler:
    """Integers in [lo, hi) (in the operand's dtype): indices, or few values so that ties occur."""
    return lambda rng, shape, dt: np.asarray(rng.integers(lo, hi, size=shape)).astype(dt)


def uniform(lo: float, hi: float) -> Sampler:
    return lambda rng, shape, dt: np.asarray(rng.uniform(lo, hi, size=shape)).astype(dt)


# -- a case -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpCase:
    """One valid instance of a graph op: a one-op module and how to draw its inputs."""

    op: str
    types: tuple[TensorType, ...]
    attrs: dict = field(default_factory=dict)
    samplers: tuple[Sampler | None, ...] = ()  # per operand; None or missing: `normal`
    rtol: float = ELEMWISE_RTOL
    tuple_arity: int | None = None
    build: Callable[[], ModuleOp] | None = field(default=None, compare=False)  # ops one_op_module cannot make

    def module(self) -> ModuleOp:
        if self.build is not None:
            return self.build()
        return one_op_module(self.op, list(self.types), self.tuple_arity, **self.attrs)

    def inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {}
        for k, t in enumerate(self.types):
            dt = np_dtype(t.element_type)
            sampler = (self.samplers[k] if k < len(self.samplers) else None) or normal
            out[f"a{k}"] = np.asarray(sampler(rng, tuple(t.get_shape()), dt)).astype(dt)
        return out

    def describe(self) -> str:
        """The case as Relay would print the call: op(Tensor[(3, 7), float32], ...) attrs."""
        args = ", ".join(graph.type_str(t) for t in self.types)
        attrs = "".join(f", {k}={v!r}" for k, v in self.attrs.items())
        return f"{self.op}({args}{attrs})"


def dtypes_of(module: ModuleOp) -> set[str]:
    """Every element type a module's values have (tuple fields included), by graph dtype name."""
    found: set[str] = set()

    def add(t: Attribute) -> None:
        if isinstance(t, TensorType):
            found.add(graph.dtype_name(t.element_type))
        elif isinstance(t, TupleType):
            for x in t.types.data:
                add(x)

    for op in module.walk():
        for v in (*op.operands, *op.results):
            add(v.type)
        for region in op.regions:
            for block in region.blocks:
                for a in block.args:
                    add(a.type)
    return found


def rtol_for(rtol: float, dtypes: set[str]) -> float:
    return max([rtol] + [DTYPE_RTOL.get(d, 0.0) for d in dtypes])


# -- drawing shapes and attributes ------------------------------------------------------------


def _dim(rng, choices: Sequence[int] = DIMS) -> int:
    return int(rng.choice(choices))


def _shape(rng, lo: int = 0, hi: int = 4, choices: Sequence[int] = DIMS) -> list[int]:
    return [_dim(rng, choices) for _ in range(int(rng.integers(lo, hi + 1)))]


def _axis(rng, rank: int) -> int:
    return int(rng.integers(-rank, rank))


def _broadcast_pair(rng) -> tuple[list[int], list[int]]:
    """Two shapes that broadcast together: suffixes of one shape, some dims set to 1."""
    out = _shape(rng, 1, 4)

    def sub() -> list[int]:
        k = int(rng.integers(0, len(out) + 1))
        return [d if rng.random() < 0.6 else 1 for d in out[len(out) - k :]]

    return sub(), sub()


Builder = Callable[[str, np.random.Generator], OpCase]


def _unary(sampler: Sampler | None = None, dtype: Attribute = f32, **attrs) -> Builder:
    return lambda op, rng: OpCase(op, (tensor(_shape(rng), dtype),), dict(attrs), (sampler,))


def _binary(dtype: Attribute = f32, sampler: Sampler | None = None) -> Builder:
    def build(op, rng):
        a, b = _broadcast_pair(rng)
        return OpCase(op, (tensor(a, dtype), tensor(b, dtype)), samplers=(sampler, sampler))

    return build


def _leaky_relu(op, rng):
    return OpCase(op, (tensor(_shape(rng)),), {"alpha": float(rng.uniform(0.01, 0.5))})


def _clip(op, rng):
    lo = float(rng.uniform(-1, 0))
    return OpCase(op, (tensor(_shape(rng)),), {"a_min": lo, "a_max": lo + float(rng.uniform(0.1, 2))})


def _cast(op, rng):
    return OpCase(op, (tensor(_shape(rng)),), {"dtype": "int32"}, (uniform(-9, 9),))


def _where(op, rng):
    a, b = _broadcast_pair(rng)
    return OpCase(op, (tensor(a, i1), tensor(b), tensor(a)))


def _full_like(op, rng):
    return OpCase(op, (tensor(_shape(rng)), tensor([])))


def _fill(op, rng):
    return OpCase(op, (), {"shape": _shape(rng, 1, 3), "dtype": "int32"})


def _full(op, rng):
    return OpCase(op, (tensor([]),), {"shape": _shape(rng, 1, 3), "dtype": "float32"})


def _arange(op, rng):
    """Integer and fractional steps, either direction, lengths 1 to 40."""
    step = float(rng.choice([1.0, 2.0, -1.0, 0.5, -0.25, 3.0]))
    start = float(rng.integers(-8, 8))
    n = int(rng.integers(1, 41))
    dtype = "float32" if not step.is_integer() or rng.random() < 0.5 else "int32"
    return OpCase(op, (), {"start": start, "stop": start + step * n, "step": step, "dtype": dtype})


def _topk(op, rng):
    """values or indices (ret_type "both" is a tuple no single kernel computes), largest or
    smallest, k from 1 to the whole axis (0: the whole axis); random floats, so no ties."""
    shape = _shape(rng, 1, 3, (1, 5, 13, 33))
    axis = _axis(rng, len(shape))
    k = int(rng.integers(0, shape[axis] + 1))
    attrs = {
        "k": k,
        "axis": axis,
        "ret_type": str(rng.choice(["values", "indices"])),
        "is_ascend": bool(rng.random() < 0.5),
    }
    return OpCase(op, (tensor(shape),), attrs)


def _dropout(op, rng):
    return OpCase(op, (tensor(_shape(rng, 1)),), {"rate": 0.25})


def _constant_module(shape: list[int], value: np.ndarray) -> ModuleOp:
    """@main(a0) = add(a0, constant): a constant alone would be folded into nothing to run."""
    block = Block(arg_types=[tensor(shape)])
    block.args[0].name_hint = "a0"
    const = graph.ConstantOp.from_array(value, f32)
    add = graph.make_op("add", [block.args[0], const.results[0]])
    block.add_ops([const, add, func.ReturnOp(add.results[0])])
    m = ModuleOp([func.FuncOp("main", ([tensor(shape)], [add.results[0].type]), Region(block))])
    m.verify()
    return m


def _constant(op, rng):
    shape = _shape(rng, 1, 3)
    value = np.asarray(rng.standard_normal(shape), np.float32)
    return OpCase(op, (tensor(shape),), build=lambda: _constant_module(shape, value))


def _tuple(op, rng):
    return OpCase(op, (tensor(_shape(rng)), tensor(_shape(rng), i32)))


def _tuple_get_item(op, rng):
    return OpCase(op, (tensor(_shape(rng)), tensor(_shape(rng))), {"index": 1}, tuple_arity=2)


# contractions


def _dense(op, rng):
    batch, n, k, m = _shape(rng, 0, 1), _dim(rng), _dim(rng, (1, 5, 19)), _dim(rng)
    return OpCase(op, (tensor([*batch, n, k]), tensor([m, k])), rtol=REDUCE_RTOL)


def _dense_pack(op, rng):
    n, k, bn, blocks = _dim(rng), _dim(rng, (1, 5, 19)), int(rng.choice([4, 8, 16])), _dim(rng, (1, 3))
    return OpCase(op, (tensor([n, k]), tensor([blocks, k, bn])), rtol=REDUCE_RTOL)


def _matmul(op, rng):
    m, k, n = _dim(rng), _dim(rng, (1, 5, 19)), _dim(rng)
    ta, tb = bool(rng.integers(2)), bool(rng.integers(2))
    a, b = ([k, m] if ta else [m, k]), ([n, k] if tb else [k, n])
    return OpCase(op, (tensor(a), tensor(b)), {"transpose_a": ta, "transpose_b": tb}, rtol=REDUCE_RTOL)


def _batch_matmul(op, rng):
    b, m, k, n = _dim(rng, (1, 3)), _dim(rng), _dim(rng, (1, 5, 19)), _dim(rng)
    ta, tb = bool(rng.integers(2)), bool(rng.integers(2))
    bb = int(rng.choice([1, b]))
    a, y = ([b, k, m] if ta else [b, m, k]), ([bb, n, k] if tb else [bb, k, n])
    return OpCase(op, (tensor(a), tensor(y)), {"transpose_a": ta, "transpose_b": tb}, rtol=REDUCE_RTOL)


def _batch_matmul_pack(op, rng):
    b, m, k, bn, blocks = (
        _dim(rng, (1, 3)),
        _dim(rng),
        _dim(rng, (1, 5, 19)),
        int(rng.choice([4, 8])),
        _dim(rng, (1, 3)),
    )
    return OpCase(op, (tensor([b, m, k]), tensor([b, blocks, k, bn])), rtol=REDUCE_RTOL)


def _conv2d(op, rng):
    groups = int(rng.choice([1, 3]))
    c = groups * int(rng.choice([1, 2]))
    depthwise = bool(rng.integers(2))
    o, groups = (c, c) if depthwise else (groups * int(rng.choice([1, 2])), groups)
    kh, kw = int(rng.choice([1, 3])), int(rng.choice([1, 2, 3]))
    h, w = _dim(rng, (5, 7, 8)), _dim(rng, (4, 7, 9))
    attrs = {
        "strides": [int(rng.choice([1, 2])), int(rng.choice([1, 3]))],
        "padding": [[0, 0], [1, 1], [1, 0, 2, 1]][int(rng.integers(3))],
        "dilation": [int(rng.choice([1, 2])), 1],
        "groups": groups,
    }
    if rng.integers(2):
        types = (tensor([1, c, h, w]), tensor([o, c // groups, kh, kw]))
    else:
        types = (tensor([1, h, w, c]), tensor([kh, kw, c // groups, o]))
        attrs.update(data_layout="NHWC", kernel_layout="HWIO")
    return OpCase(op, types, attrs, rtol=REDUCE_RTOL)


def _conv2d_transpose(op, rng):
    groups = int(rng.choice([1, 2]))
    c, o, k, s = 2 * groups, int(rng.choice([1, 3])), int(rng.choice([1, 2, 3])), int(rng.choice([1, 2, 3]))
    out_pad = min(int(rng.integers(2)), s - 1)
    pad = int(rng.integers(2))
    return OpCase(
        op,
        (tensor([1, c, 5, 4]), tensor([c, o, k, k])),
        {"strides": [s, s], "padding": [pad, pad], "output_padding": [out_pad, out_pad], "groups": groups},
        rtol=REDUCE_RTOL,
    )


def _winograd_input(op, rng):
    m, c = int(rng.choice([2, 4])), int(rng.choice([1, 4, 16]))
    h, w, pad = (
        _dim(rng, (3, 5, 8)),
        _dim(rng, (4, 7, 9)),
        [[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 2, 1]][int(rng.integers(3))],
    )
    return OpCase(op, (tensor([1, h, w, c]),), {"tile_size": m, "padding": pad}, rtol=REDUCE_RTOL)


def _winograd_weight(op, rng):
    m, c, k = int(rng.choice([2, 4])), _dim(rng, (1, 4, 16)), _dim(rng, (1, 5, 16))
    return OpCase(op, (tensor([3, 3, c, k]),), {"tile_size": m}, rtol=REDUCE_RTOL)


def _winograd_output(op, rng):
    m, k = int(rng.choice([2, 4])), _dim(rng, (1, 4, 16))
    oh, ow = _dim(rng, (1, 4, 7)), _dim(rng, (2, 5, 8))
    tiles = -(-oh // m) * -(-ow // m)
    return OpCase(op, (tensor([(m + 2) ** 2, tiles, k]),), {"tile_size": m, "output_size": [oh, ow]}, rtol=REDUCE_RTOL)


# nn


def _per_axis(op, rng):
    """bias_add, prelu: a vector along one axis."""
    shape = _shape(rng, 1, 4)
    axis = _axis(rng, len(shape))
    return OpCase(op, (tensor(shape), tensor([shape[axis]])), {"axis": axis})


def _softmax(op, rng):
    shape = _shape(rng, 1, 3, (1, 5, 13, 97))
    return OpCase(op, (tensor(shape),), {"axis": _axis(rng, len(shape))}, rtol=REDUCE_RTOL)


def _layer_norm(op, rng):
    shape = _shape(rng, 1, 3, (1, 5, 13, 97))
    axis = _axis(rng, len(shape))
    n = shape[axis]
    return OpCase(
        op,
        (tensor(shape), tensor([n]), tensor([n])),
        {"axis": axis, "epsilon": 1e-5, "center": bool(rng.integers(2)), "scale": bool(rng.integers(2))},
        rtol=REDUCE_RTOL,
    )


def _batch_norm(op, rng):
    shape = [[2, 3], [1, 3, 5, 5], [1, 7, 3]][int(rng.integers(3))]
    c = shape[1]
    return OpCase(
        op,
        (tensor(shape), *[tensor([c])] * 4),
        {"epsilon": 1e-3},
        (None, None, None, None, positive_values),
        rtol=REDUCE_RTOL,
    )


def _lrn(op, rng):
    return OpCase(
        op,
        (tensor([1, _dim(rng), 4, 3]),),
        {"size": int(rng.choice([1, 3, 5])), "alpha": 1e-3, "beta": 0.75, "bias": 1.5},
        rtol=REDUCE_RTOL,
    )


def _pool(op, rng):
    k = [int(rng.choice([1, 2, 3])), int(rng.choice([2, 3]))]
    layout = ["NCHW", "NHWC"][int(rng.integers(2))]
    attrs = {
        "pool_size": k,
        "strides": [int(rng.choice([1, 2])), int(rng.choice([1, 2, 3]))],
        "padding": [min(int(rng.integers(2)), k[0] // 2), min(int(rng.integers(2)), k[1] // 2)],
        "dilation": [int(rng.choice([1, 2])), 1],
        "ceil_mode": bool(rng.integers(2)),
        "layout": layout,
    }
    if op == "nn.avg_pool2d":
        attrs["count_include_pad"] = bool(rng.integers(2))
    shape = [1, 3, 7, 8] if layout == "NCHW" else [1, 7, 8, 3]
    return OpCase(op, (tensor(shape),), attrs, rtol=REDUCE_RTOL)


def _global_pool(op, rng):
    layout = ["NCHW", "NHWC"][int(rng.integers(2))]
    return OpCase(op, (tensor([1, _dim(rng), 5, 7]),), {"layout": layout}, rtol=REDUCE_RTOL)


def _adaptive_avg_pool(op, rng):
    return OpCase(
        op,
        (tensor([1, 2, _dim(rng, (4, 7, 9)), _dim(rng, (5, 8))]),),
        {"output_size": [int(rng.choice([1, 2, 3])), int(rng.choice([1, 3, 5]))]},
        rtol=REDUCE_RTOL,
    )


def _pad(op, rng):
    shape = _shape(rng, 1, 3, (2, 3, 5))
    mode = ["constant", "edge", "reflect"][int(rng.integers(3))]
    limit = 1 if mode == "reflect" else 3
    pad_width = [[int(rng.integers(0, limit + 1)), int(rng.integers(0, limit + 1))] for _ in shape]
    return OpCase(op, (tensor(shape),), {"pad_width": pad_width, "pad_value": 0.5, "pad_mode": mode})


def _batch_flatten(op, rng):
    return OpCase(op, (tensor(_shape(rng, 1, 4)),))


def _resize2d(op, rng):
    layout = ["NCHW", "NHWC"][int(rng.integers(2))]
    shape = [1, 2, 4, 6] if layout == "NCHW" else [1, 4, 6, 2]
    return OpCase(
        op,
        (tensor(shape),),
        {
            "size": [_dim(rng, (1, 3, 8, 13)), _dim(rng, (2, 5, 16))],
            "layout": layout,
            "method": ["nearest_neighbor", "linear"][int(rng.integers(2))],
            "coordinate_transformation_mode": str(
                rng.choice(["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"])
            ),
        },
        rtol=REDUCE_RTOL,
    )


# reductions


def _reduce(sampler: Sampler | None = None, **extra) -> Builder:
    def build(op, rng):
        shape = _shape(rng, 1, 4, (1, 2, 5, 13))
        axis = None
        if rng.integers(3):
            picked = rng.permutation(len(shape))[: int(rng.integers(1, len(shape) + 1))]
            axis = sorted(int(a) - len(shape) * int(rng.integers(2)) for a in picked)  # some negative
        attrs = {"axis": axis, "keepdims": bool(rng.integers(2)), "exclude": bool(rng.integers(2)), **extra}
        return OpCase(op, (tensor(shape),), attrs, (sampler,), rtol=REDUCE_RTOL)

    return build


def _variance(op, rng):
    case = _reduce()(op, rng)
    return OpCase(op, case.types, {**case.attrs, "unbiased": bool(rng.integers(2))}, rtol=REDUCE_RTOL)


# shape


def _reshape(op, rng):
    shape = _shape(rng, 1, 4)
    n = int(np.prod(shape))
    a = int(rng.choice([d for d in range(1, n + 1) if n % d == 0]))
    options = [[a, -1], [-1], [a, n // a, 1]] + ([[0, -1]] if n % shape[0] == 0 else [])
    return OpCase(op, (tensor(shape),), {"newshape": options[int(rng.integers(len(options)))]})


def _transpose(op, rng):
    shape = _shape(rng)
    axes = [int(a) for a in rng.permutation(len(shape))] if rng.integers(3) else None
    return OpCase(op, (tensor(shape),), {"axes": axes})


def _squeeze(op, rng):
    shape = _shape(rng, 1, 4, (1, 3))
    ones = [d for d, s in enumerate(shape) if s == 1]
    return OpCase(op, (tensor(shape),), {"axis": ones if rng.integers(2) else None})


def _expand_dims(op, rng):
    shape = _shape(rng, 0, 3)
    return OpCase(
        op,
        (tensor(shape),),
        {"axis": int(rng.integers(-len(shape) - 1, len(shape) + 1)), "num_newaxis": int(rng.integers(0, 3))},
    )


def _concatenate(op, rng):
    base = _shape(rng, 1, 3)
    axis = int(rng.integers(len(base)))
    types = []
    for _ in range(int(rng.integers(1, 4))):
        s = list(base)
        s[axis] = _dim(rng)
        types.append(tensor(s))
    return OpCase(op, tuple(types), {"axis": axis}, tuple_arity=len(types))


def _stack(op, rng):
    base = _shape(rng, 1, 3)
    n = int(rng.integers(1, 4))
    return OpCase(op, (tensor(base),) * n, {"axis": int(rng.integers(-len(base) - 1, len(base) + 1))}, tuple_arity=n)


def _split(op, rng):
    shape = _shape(rng, 1, 3, (4, 6, 12))
    axis = int(rng.integers(len(shape)))
    n = shape[axis]
    ios = [2, [1, n - 1], [0, 2, 3]][int(rng.integers(3))]
    return OpCase(op, (tensor(shape),), {"indices_or_sections": ios, "axis": axis})


def _strided_slice(op, rng):
    shape = _shape(rng, 1, 3, (3, 7, 13))
    begin, end, strides = [], [], []
    for d in shape:
        s = int(rng.choice([1, 2, 3, -1, -2]))
        while True:  # a non-empty slice on every axis
            b, e = int(rng.integers(-d, d)), int(rng.integers(-d - 1, d + 3))
            if len(range(*slice(b, e, s).indices(d))):
                break
        begin.append(b), end.append(e), strides.append(s)
    return OpCase(op, (tensor(shape),), {"begin": begin, "end": end, "strides": strides})


def _take(op, rng):
    shape = _shape(rng, 1, 3, (3, 5))
    axis = int(rng.integers(len(shape))) if rng.integers(2) else None
    mode = ["clip", "wrap"][int(rng.integers(2))]
    return OpCase(
        op, (tensor(shape), tensor(_shape(rng, 0, 2, (1, 4)), i64)), {"axis": axis, "mode": mode}, (None, ints(-6, 9))
    )  # out of range both ways: what the modes are for


def _gather(op, rng):
    shape = _shape(rng, 1, 3, (3, 5))
    axis = int(rng.integers(len(shape)))
    ishape = [int(rng.integers(1, d + 1)) for d in shape]
    return OpCase(op, (tensor(shape), tensor(ishape, i32)), {"axis": axis}, (None, ints(0, shape[axis])))


def _tile(op, rng):
    return OpCase(
        op, (tensor(_shape(rng, 0, 3)),), {"reps": [int(r) for r in rng.integers(1, 4, int(rng.integers(0, 4)))]}
    )


def _broadcast_to(op, rng):
    out = _shape(rng, 1, 4)
    k = int(rng.integers(0, len(out) + 1))
    src = [d if rng.random() < 0.5 else 1 for d in out[len(out) - k :]]
    return OpCase(op, (tensor(src),), {"shape": out})


_COMPARE = _binary(sampler=ints(1, 4))  # few distinct values, so equal and less_equal see ties
_LOGICAL = _binary(i1)

# relay name -> builder(op, rng); test_backend_conformance checks that every graph op has one
CASES: dict[str, Builder] = {
    "constant": _constant,
    **{
        op: _unary()
        for op in [
            "nn.relu",
            "negative",
            "abs",
            "exp",
            "tanh",
            "sigmoid",
            "erf",
            "floor",
            "ceil",
            "round",
            "zeros_like",
            "ones_like",
        ]
    },
    **{op: _unary(positive_values) for op in ["log", "sqrt", "rsqrt"]},
    "nn.leaky_relu": _leaky_relu,
    "logical_not": _unary(dtype=i1),
    "clip": _clip,
    "cast": _cast,
    "nn.dropout": _dropout,
    **{op: _binary() for op in ["add", "subtract", "multiply", "maximum", "minimum"]},
    **{op: _binary(sampler=positive_values) for op in ["divide", "power"]},
    **{op: _COMPARE for op in ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]},
    "logical_and": _LOGICAL,
    "logical_or": _LOGICAL,
    "where": _where,
    "nn.dense": _dense,
    "nn.contrib_dense_pack": _dense_pack,
    "nn.matmul": _matmul,
    "nn.batch_matmul": _batch_matmul,
    "nn.contrib_batch_matmul_pack": _batch_matmul_pack,
    "nn.conv2d": _conv2d,
    "nn.conv2d_transpose": _conv2d_transpose,
    "nn.contrib_winograd_input_transform": _winograd_input,
    "nn.contrib_winograd_weight_transform": _winograd_weight,
    "nn.contrib_winograd_output_transform": _winograd_output,
    "nn.bias_add": _per_axis,
    "nn.prelu": _per_axis,
    "nn.softmax": _softmax,
    "nn.log_softmax": _softmax,
    "nn.layer_norm": _layer_norm,
    "nn.batch_norm": _batch_norm,
    "nn.lrn": _lrn,
    "nn.max_pool2d": _pool,
    "nn.avg_pool2d": _pool,
    "nn.global_avg_pool2d": _global_pool,
    "nn.global_max_pool2d": _global_pool,
    "nn.adaptive_avg_pool2d": _adaptive_avg_pool,
    "nn.pad": _pad,
    "nn.batch_flatten": _batch_flatten,
    "image.resize2d": _resize2d,
    **{op: _reduce() for op in ["sum", "mean", "max", "min", "argmax", "argmin"]},
    "prod": _reduce(uniform(0.8, 1.25)),  # factors near 1: a product of normals underflows into denormals
    "variance": _variance,
    "reshape": _reshape,
    "transpose": _transpose,
    "squeeze": _squeeze,
    "expand_dims": _expand_dims,
    "concatenate": _concatenate,
    "stack": _stack,
    "split": _split,
    "strided_slice": _strided_slice,
    "take": _take,
    "gather": _gather,
    "tile": _tile,
    "broadcast_to": _broadcast_to,
    "zeros": _fill,
    "ones": _fill,
    "full": _full,
    "full_like": _full_like,
    "arange": _arange,
    "topk": _topk,
    "tuple": _tuple,
    "tuple_get_item": _tuple_get_item,
}


def case_for(op: str, rng: np.random.Generator) -> OpCase:
    """A random valid instance of graph op `op` (its Relay name)."""
    return CASES[op](op, rng)


# -- dtypes -----------------------------------------------------------------------------------


def _dtype_case(name: str) -> Builder:
    """`maximum` on two tensors of dtype `name`: defined on every dtype, bool included."""
    dt = graph.DTYPES[name]
    return lambda op, rng: OpCase("maximum", (tensor([_dim(rng), _dim(rng)], dt),) * 2)


def _cast_case(name: str) -> Builder:
    sampler = uniform(-9, 9) if name != "bool" else None
    return lambda op, rng: OpCase("cast", (tensor([_dim(rng), _dim(rng)]),), {"dtype": name}, (sampler,))


# float math that backends lower per type (intrinsics, math libraries, vector versions of both)
FLOAT_MATH = ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "floor", "ceil", "round")
FLOAT_DTYPES = tuple(n for n, t in graph.DTYPES.items() if graph.is_float(t))


def _float_math_case(name: str, op: str, last: int) -> Builder:
    """`op` on dtype `name`; a last dimension of 16 takes the default schedule's vector loop,
    13 the scalar one."""
    dt = graph.DTYPES[name]
    sampler = positive_values if op in ("log", "sqrt", "rsqrt") else None
    return lambda _, rng: OpCase(op, (tensor([_dim(rng, (1, 3, 7)), last], dt),), samplers=(sampler,))


# "<dtype>", "cast-to-<dtype>", "<float dtype>:<op>[:odd]" -> builder: each graph dtype through
# arithmetic and through a conversion, each float dtype through each math function
DTYPE_CASES: dict[str, Builder] = {
    **{name: _dtype_case(name) for name in graph.DTYPES},
    **{f"cast-to-{name}": _cast_case(name) for name in graph.DTYPES},
    **{
        f"{name}:{op}{suffix}": _float_math_case(name, op, last)
        for name in FLOAT_DTYPES
        for op in FLOAT_MATH
        for suffix, last in (("", 16), (":odd", 13))
    },
}
