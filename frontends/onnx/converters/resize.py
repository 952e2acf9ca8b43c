"""Upsample and Resize, onto image.resize2d over two axes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.ir import SSAValue

from lathe.dialects import graph
from lathe.errors import LatheError
from lathe.frontends.onnx.converters.common import reshape, to_2d_spatial
from lathe.frontends.onnx.importer import Node, value_shape
from lathe.frontends.onnx.registry import converts


def _resize(n: Node, x: SSAValue, sizes: list[int], method: str, coord: str, rounding: str):
    """image.resize2d on the two scaled axes: NCHW (axes 2, 3) or NHWC (1, 2); rank 3 as (N, C, 1, W)."""
    xs = value_shape(x)
    if len(sizes) != len(xs):
        raise LatheError(f"{n.where}: {len(sizes)} output sizes for rank-{len(xs)} data")
    if sizes == xs:
        return x
    changed = [d for d in range(len(xs)) if sizes[d] != xs[d]]
    if len(xs) == 3 and changed == [2]:
        y = _resize(n, to_2d_spatial(n, x), [xs[0], xs[1], 1, sizes[2]], method, coord, rounding)
        return reshape(n, y, sizes)
    if len(xs) != 4:
        raise n.unsupported(f"resizing rank-{len(xs)} data")
    if set(changed) <= {2, 3}:
        layout, size = "NCHW", sizes[2:]
    elif set(changed) <= {1, 2}:
        layout, size = "NHWC", sizes[1:3]
    else:
        raise n.unsupported(f"resizing axes {changed} (two of the last three axes of 4-D data are)")
    if method == "nearest_neighbor":
        return n.emit(
            graph.Resize2dOp,
            x,
            size=size,
            layout=layout,
            method=method,
            coordinate_transformation_mode=coord,
            rounding_method=rounding,
        )
    return n.emit(graph.Resize2dOp, x, size=size, layout=layout, method=method, coordinate_transformation_mode=coord)


def _sizes_from_scales(n: Node, xs: list[int], scales: Sequence[float]) -> list[int]:
    """floor(size · scale), refusing scales whose coordinate mapping resize2d cannot express.

    resize2d maps coordinates with in/out; ONNX maps them with 1/scale. The
    two agree only when size · scale is a whole number.
    """
    if len(scales) != len(xs):
        raise LatheError(f"{n.where}: {len(scales)} scales for rank-{len(xs)} data")
    out = []
    for d, s in zip(xs, scales):
        exact = d * float(s)
        size = math.floor(exact + 1e-9)
        if abs(exact - round(exact)) > 1e-6 * max(1.0, exact):
            raise n.unsupported(f"scale {float(s):g} on an axis of size {d} (a fractional output size {exact:g})")
        out.append(size)
    return out


_RESIZE_MODES = {"nearest": "nearest_neighbor", "linear": "linear", "bilinear": "linear"}


def _resize_method(n: Node) -> str:
    mode = n.attr("mode", "nearest")
    if mode not in _RESIZE_MODES:
        raise n.unsupported(f"mode={mode!r}")
    return _RESIZE_MODES[mode]


@converts("Upsample", makes=graph.Resize2dOp)
def _upsample_v7(n: Node):
    """Upsample (until opset 10): asymmetric coordinates, nearest rounds down."""
    xs = n.shape(0)
    if n.opset >= 9 and not n.known(1):
        return _resize_at_run_time(n, _resize_method(n), "asymmetric", "floor", None, ("scales", 1))
    scales = n.attr("scales") if n.opset < 9 else [float(s) for s in n.const(1, "scales").reshape(-1)]
    return _resize(n, n.x(0), _sizes_from_scales(n, xs, scales), _resize_method(n), "asymmetric", "floor")


@converts("Resize", since=10, makes=graph.Resize2dOp)
def _resize_v10(n: Node):
    """Resize-10 is Upsample with scales as an input."""
    xs = n.shape(0)
    if not n.known(1):
        return _resize_at_run_time(n, _resize_method(n), "asymmetric", "floor", None, ("scales", 1))
    scales = [float(s) for s in n.const(1, "scales").reshape(-1)]
    return _resize(n, n.x(0), _sizes_from_scales(n, xs, scales), _resize_method(n), "asymmetric", "floor")


def _resize_at_run_time(n: Node, method: str, coord: str, rounding: str, axes: list[int] | None, given):
    """Scales or sizes known only at run time: a `graph.dyn` of resize2d on NCHW's H and W, whose
    sizes the VM reads from the values (the `size_hw` and `scales_hw` forms, which refuse values
    that resize N or C, or a fractional size). `given` is ("scales" or "sizes", input index)."""
    x = n.x(0)
    xs = value_shape(x)
    if len(xs) != 4:
        raise n.unsupported(f"resizing rank-{len(xs)} data by {given[0]} known only at run time (4-D NCHW is)")
    kind, i = given
    v = n.x(i)
    if axes is not None:
        if sorted(axes) != [2, 3]:
            raise n.unsupported(
                f"resizing axes {axes} by {kind} known only at run time (axes 2 and 3, NCHW's H, W, are)"
            )
        if axes != [2, 3]:
            v = n.emit(graph.TakeOp, v, n.constant(np.asarray([axes.index(2), axes.index(3)], np.int64), "hw"), axis=0)
    elif n.length(i, kind) != 4:
        raise LatheError(f"{n.where}: {n.length(i, kind)} {kind} for rank-4 data")
    policy = n.attr("keep_aspect_ratio_policy", "stretch")
    if kind == "sizes" and policy != "stretch":  # one scale for every listed axis, from the sizes
        if policy not in ("not_larger", "not_smaller"):
            raise n.unsupported(f"keep_aspect_ratio_policy={policy!r}")
        shape = n.constant(np.asarray(xs[2:] if axes is not None else xs, np.float64), "shape")
        if graph.is_dynamic(x.type):
            shape = n.emit("cast", _shape_of(n, x, axes is not None), dtype="float64")
        ratio = n.emit("divide", n.emit("cast", v, dtype="float64"), shape)
        scale = n.emit("min" if policy == "not_larger" else "max", ratio, axis=[0])
        v, kind = n.emit("broadcast_to", scale, shape=value_shape(ratio)), "scales"
    attrs = {"layout": "NCHW", "method": method, "coordinate_transformation_mode": coord}
    if method == "nearest_neighbor":
        attrs["rounding_method"] = rounding
    out = graph.tensor([xs[0], xs[1], DYNAMIC_INDEX, DYNAMIC_INDEX], x.type.element_type)
    form = "size_hw" if kind == "sizes" else "scales_hw"
    return n.dyn("image.resize2d", [x], [("size", form, v)], out, **attrs)


def _shape_of(n: Node, x: SSAValue, hw: bool) -> SSAValue:
    op = graph.ShapeOfOp.build(x)
    n.imp.add(op)
    if not hw:
        return op.result
    return n.emit("strided_slice", op.result, begin=[2], end=[4])


_NEAREST_MODES = {
    "round_prefer_floor": "round_prefer_floor",
    "round_prefer_ceil": "round_prefer_ceil",
    "floor": "floor",
    "ceil": "ceil",
}


@converts("Resize", since=11, makes=graph.Resize2dOp)
def _resize_v11(n: Node):
    """roi, scales and sizes inputs; coordinate_transformation_mode, nearest_mode; axes and the
    keep_aspect_ratio_policy from opset 18."""
    xs = n.shape(0)
    method = _resize_method(n)
    coord = n.attr("coordinate_transformation_mode", "half_pixel")
    if coord not in graph.RESIZE_COORDS:
        raise n.unsupported(f"coordinate_transformation_mode={coord!r}")
    nearest = n.attr("nearest_mode", "round_prefer_floor")
    if nearest not in _NEAREST_MODES:
        raise n.unsupported(f"nearest_mode={nearest!r}")
    if n.attr("antialias", 0) and method == "linear":
        raise n.unsupported("antialias=1")
    rank = len(xs)
    axes = [graph.normalize_axis("Resize", a, rank) for a in n.attr("axes", list(range(rank)))]
    listed = axes if "axes" in n.attrs else None
    if n.has(3) and not n.known(3):
        return _resize_at_run_time(n, method, coord, _NEAREST_MODES[nearest], listed, ("sizes", 3))
    sizes_known = n.has(3) and n.const(3, "sizes").size
    if n.has(2) and not n.known(2) and not sizes_known:
        return _resize_at_run_time(n, method, coord, _NEAREST_MODES[nearest], listed, ("scales", 2))
    scales = n.const(2, "scales") if n.has(2) else None
    sizes = n.const(3, "sizes") if n.has(3) else None
    if sizes is not None and sizes.size:
        out = _sizes_with_policy(n, [xs[a] for a in axes], [int(s) for s in sizes.reshape(-1)])
    elif scales is not None and scales.size:
        out = _sizes_from_scales(n, [xs[a] for a in axes], [float(s) for s in scales.reshape(-1)])
    else:
        raise LatheError(f"{n.where}: one of scales and sizes is required")
    full = list(xs)
    for a, s in zip(axes, out):
        full[a] = s
    return _resize(n, n.x(0), full, method, coord, _NEAREST_MODES[nearest])


def _sizes_with_policy(n: Node, xs: list[int], sizes: list[int]) -> list[int]:
    policy = n.attr("keep_aspect_ratio_policy", "stretch")
    if policy == "stretch":
        return sizes
    if policy not in ("not_larger", "not_smaller"):
        raise n.unsupported(f"keep_aspect_ratio_policy={policy!r}")
    ratios = [s / d for s, d in zip(sizes, xs)]
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    return _sizes_from_scales(n, xs, [scale] * len(xs))
