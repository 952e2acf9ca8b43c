"""Layers that several zoo models share, written as ONNX op compositions the
way PyTorch's exporter emits them (so the importer sees realistic graphs)."""

from __future__ import annotations

import math

import numpy as np

from .builder import GraphBuilder


def conv_bn_act(
    g: GraphBuilder,
    x: str,
    cin: int,
    cout: int,
    kernel,
    stride=1,
    pad=0,
    group: int = 1,
    act: str | None = "relu",
    eps: float = 1e-5,
    name: str = "conv",
) -> str:
    """Conv (no bias) -> BatchNormalization -> activation: the CNN workhorse.

    `act` is "relu", "relu6" (Clip 0..6, as MobileNet exports it) or None."""
    with g.scope(name):
        y = g.batch_norm(g.conv(x, cin, cout, kernel, stride, pad, group), cout, eps)
        if act == "relu":
            y = g.op("Relu", [y])
        elif act == "relu6":
            y = g.clip(y, 0.0, 6.0)
        elif act is not None:
            raise ValueError(f"unknown activation {act!r}")
    return y


def layer_norm(g: GraphBuilder, x: str, dim: int, eps: float, form: str = "auto", name: str = "LayerNorm") -> str:
    """LayerNorm over the last axis.

    form "fused" is the opset-17 LayerNormalization op; "decomposed" is what
    exporters emit for older opsets (ReduceMean, Sub, Pow, ReduceMean, Add,
    Sqrt, Div, Mul, Add) and what an importer must pattern-match or lower
    faithfully; "auto" picks fused where the opset has it."""
    if form == "auto":
        form = "fused" if g.opset >= 17 else "decomposed"
    with g.scope(name):
        gamma = g.uniform("weight", (dim,), 0.8, 1.2)
        beta = g.normal("bias", (dim,), 0.05)
        if form == "fused":
            if g.opset < 17:
                raise ValueError("LayerNormalization needs opset >= 17; use the decomposed form")
            return g.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=eps)
        if form != "decomposed":
            raise ValueError(f"unknown layer-norm form {form!r}")
        d = g.op("Sub", [x, g.reduce_mean(x, [-1])])
        var = g.reduce_mean(g.op("Pow", [d, g.const(2.0, name="two")]), [-1])
        y = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [var, g.const(eps, name="eps")])])])
        return g.op("Add", [g.op("Mul", [y, gamma]), beta])


def gelu(g: GraphBuilder, x: str) -> str:
    """Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)): the Erf composition that
    BERT exports, valid at every opset (the Gelu op only arrives in 20)."""
    e = g.op("Erf", [g.op("Div", [x, g.const(math.sqrt(2.0), name="sqrt2")])])
    y = g.op("Mul", [x, g.op("Add", [e, g.const(1.0, name="one")])])
    return g.op("Mul", [y, g.const(0.5, name="half")])


def _heads(g: GraphBuilder, x: str, batch: int, length: int, heads: int, dh: int, perm) -> str:
    """[batch, length, heads * dh] -> [batch, length, heads, dh], then `perm`."""
    return g.transpose(g.reshape(x, [batch, length, heads, dh]), perm)


def attention(
    g: GraphBuilder,
    query: str,
    memory: str,
    d_model: int,
    heads: int,
    batch: int,
    q_len: int,
    kv_len: int,
    mask: str | None = None,
    name: str = "attention",
    names: tuple[str, str, str, str] = ("query", "key", "value", "output"),
) -> str:
    """Multi-head scaled dot-product attention, as BERT / nn.Transformer export it.

    Q, K, V projections (MatMul + Add), Reshape to heads and Transpose (K
    straight to [b, h, dh, s] so scores are a plain MatMul), scale by
    1/sqrt(dh) with Div, add `mask` (broadcast to [b, h, q, kv]; large
    negative where attention is forbidden), Softmax, MatMul with V, merge
    heads and project.  `memory` is `query` for self-attention; `names`
    are the four projections' weight names."""
    if d_model % heads:
        raise ValueError(f"d_model {d_model} is not divisible by {heads} heads")
    dh = d_model // heads
    qn, kn, vn, on = names
    with g.scope(name):
        q = _heads(g, g.linear(query, d_model, d_model, name=qn), batch, q_len, heads, dh, [0, 2, 1, 3])
        k = _heads(g, g.linear(memory, d_model, d_model, name=kn), batch, kv_len, heads, dh, [0, 2, 3, 1])
        v = _heads(g, g.linear(memory, d_model, d_model, name=vn), batch, kv_len, heads, dh, [0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k]), g.const(math.sqrt(dh), name="scale")])
        if mask is not None:
            scores = g.op("Add", [scores, mask])
        probs = g.op("Softmax", [scores], axis=-1)
        context = g.transpose(g.op("MatMul", [probs, v]), [0, 2, 1, 3])
        context = g.reshape(context, [batch, q_len, d_model])
        return g.linear(context, d_model, d_model, name=on)


def causal_mask(g: GraphBuilder, length: int) -> str:
    """[length, length] additive mask: 0 on and below the diagonal, -1e9 above.

    A large finite value rather than -inf, so no implementation can form
    -inf - (-inf) = NaN; exp(-1e9 + O(1)) is 0 in float32 all the same."""
    mask = np.triu(np.full((length, length), -1e9, dtype=np.float32), k=1)
    return g.const(mask, name="causal_mask")


def hard_swish(g: GraphBuilder, x: str) -> str:
    """x * relu6(x + 3) / 6 as PyTorch exports nn.Hardswish: the HardSwish op (opset 14+), or
    x * HardSigmoid(x) before it."""
    if g.opset >= 14:
        return g.op("HardSwish", [x])
    return g.op("Mul", [x, g.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)])


def silu(g: GraphBuilder, x: str) -> str:
    """nn.SiLU as exported: x * Sigmoid(x)."""
    return g.op("Mul", [x, g.op("Sigmoid", [x])])


def activation(g: GraphBuilder, x: str, act: str | None) -> str:
    """The activations of the mobile CNNs by name: relu, relu6, hardswish, silu, or None."""
    if act is None:
        return x
    if act == "relu":
        return g.op("Relu", [x])
    if act == "relu6":
        return g.clip(x, 0.0, 6.0)
    if act == "hardswish":
        return hard_swish(g, x)
    if act == "silu":
        return silu(g, x)
    raise ValueError(f"unknown activation {act!r}")


def conv_bn(
    g: GraphBuilder, x: str, cin: int, cout: int, kernel: int, stride: int = 1, group: int = 1, act=None, name="conv"
) -> str:
    """Conv (no bias, 'same' padding for odd kernels) -> BatchNormalization -> activation."""
    with g.scope(name):
        y = g.batch_norm(g.conv(x, cin, cout, kernel, stride, (kernel - 1) // 2, group), cout)
        return activation(g, y, act)


def squeeze_excite(g: GraphBuilder, x: str, channels: int, squeeze: int, inner: str, gate: str, name="se") -> str:
    """torchvision's SqueezeExcitation: global average pool, 1x1 conv (bias) to `squeeze`
    channels, `inner` activation, 1x1 conv back, `gate` ("hardsigmoid" or "sigmoid"), scale x."""
    with g.scope(name):
        s = g.op("GlobalAveragePool", [x])
        s = activation(g, g.conv(s, channels, squeeze, 1, bias=True, name="fc1"), inner)
        s = g.conv(s, squeeze, channels, 1, bias=True, gain=1.0, name="fc2")
        if gate == "hardsigmoid":
            s = g.op("HardSigmoid", [s], alpha=1.0 / 6.0, beta=0.5)
        else:
            s = g.op("Sigmoid", [s])
        return g.op("Mul", [x, s])


def upsample_nearest(g: GraphBuilder, x: str, scale: int = 2) -> str:
    """nn.Upsample(scale_factor=scale, mode="nearest") on NCHW as torch exports it from opset 11:
    Resize with an empty roi constant, scales (1, 1, scale, scale), asymmetric coordinates, floor."""
    roi = g.const(np.zeros(0), name="roi")
    scales = g.const([1.0, 1.0, float(scale), float(scale)], name="scales")
    return g.op(
        "Resize",
        [x, roi, scales],
        coordinate_transformation_mode="asymmetric",
        cubic_coeff_a=-0.75,
        mode="nearest",
        nearest_mode="floor",
    )
