"""Activation functions: one graph op where Relay has it, otherwise their definition in elementwise ops."""

from __future__ import annotations

import math

from xdsl.ir import SSAValue

from lathe.dialects import graph
from lathe.frontends.onnx.converters.common import reshape
from lathe.frontends.onnx.importer import Node, value_shape
from lathe.frontends.onnx.registry import converts


@converts("LeakyRelu", makes=graph.LeakyReluOp)
def _leaky_relu(n: Node):
    return n.emit(graph.LeakyReluOp, n.x(0), alpha=float(n.attr("alpha", 0.01)))


@converts("PRelu", makes=graph.PReluOp)
def _prelu(n: Node):
    """nn.prelu when the slope is one value per channel (axis 1); otherwise where(x < 0, x·slope, x)."""
    x, slope = n.x(0), n.x(1)
    xs, ss = value_shape(x), value_shape(slope)
    aligned = [1] * (len(xs) - len(ss)) + ss
    if (
        len(xs) >= 2
        and len(aligned) == len(xs)
        and [d for k, d in enumerate(aligned) if k != 1] == [1] * (len(xs) - 1)
        and aligned[1] == xs[1]
    ):
        return n.emit(graph.PReluOp, x, reshape(n, slope, [xs[1]]), axis=1)
    neg = n.emit("less", x, n.scalar(0, x))
    return n.emit("where", neg, n.emit("multiply", x, slope), x)


def elu(n: Node, x: SSAValue, alpha: float) -> SSAValue:
    """alpha·(exp(x) − 1) below zero, x above."""
    below = n.emit("multiply", n.emit("subtract", n.emit("exp", x), n.scalar(1.0, x)), n.scalar(alpha, x))
    return n.emit("where", n.emit("less", x, n.scalar(0.0, x)), below, x)


@converts("Elu")
def _elu_op(n: Node):
    return elu(n, n.x(0), float(n.attr("alpha", 1.0)))


@converts("Selu")
def _selu(n: Node):
    """gamma·x above zero, gamma·alpha·(exp(x) − 1) at or below it."""
    x = n.x(0)
    alpha = float(n.attr("alpha", 1.67326319217681884765625))
    gamma = float(n.attr("gamma", 1.05070102214813232421875))
    below = n.emit("multiply", n.emit("subtract", n.emit("exp", x), n.scalar(1.0, x)), n.scalar(alpha, x))
    y = n.emit("where", n.emit("greater", x, n.scalar(0.0, x)), x, below)
    return n.emit("multiply", y, n.scalar(gamma, x))


def hard_sigmoid(n: Node, x: SSAValue, alpha: float, beta: float) -> SSAValue:
    y = n.emit("add", n.emit("multiply", x, n.scalar(alpha, x)), n.scalar(beta, x))
    return n.emit("clip", y, a_min=0.0, a_max=1.0)


@converts("HardSigmoid")
def _hard_sigmoid_op(n: Node):
    return hard_sigmoid(n, n.x(0), float(n.attr("alpha", 0.2)), float(n.attr("beta", 0.5)))


@converts("HardSwish")
def _hard_swish(n: Node):
    x = n.x(0)
    return n.emit("multiply", x, hard_sigmoid(n, x, 1.0 / 6.0, 0.5))


def softplus(n: Node, x: SSAValue) -> SSAValue:
    """log(1 + exp(x)) written as max(x, 0) + log(1 + exp(−|x|)), which does not overflow."""
    tail = n.emit("log", n.emit("add", n.emit("exp", n.emit("negative", n.emit("abs", x))), n.scalar(1.0, x)))
    return n.emit("add", n.emit("nn.relu", x), tail)


@converts("Softplus")
def _softplus_op(n: Node):
    return softplus(n, n.x(0))


@converts("Softsign")
def _softsign(n: Node):
    x = n.x(0)
    return n.emit("divide", x, n.emit("add", n.emit("abs", x), n.scalar(1.0, x)))


@converts("ThresholdedRelu")
def _thresholded_relu(n: Node):
    x = n.x(0)
    above = n.emit("greater", x, n.scalar(float(n.attr("alpha", 1.0)), x))
    return n.emit("where", above, x, n.scalar(0.0, x))


@converts("Gelu", since=20)
def _gelu(n: Node):
    """0.5·x·(1 + erf(x/√2)), or with approximate="tanh": 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    x = n.x(0)
    approx = n.attr("approximate", "none")
    if approx == "tanh":
        cube = n.emit("multiply", n.emit("multiply", x, x), x)
        inner = n.emit("add", x, n.emit("multiply", cube, n.scalar(0.044715, x)))
        t = n.emit("tanh", n.emit("multiply", inner, n.scalar(math.sqrt(2.0 / math.pi), x)))
    elif approx == "none":
        t = n.emit("erf", n.emit("multiply", x, n.scalar(1.0 / math.sqrt(2.0), x)))
    else:
        raise n.unsupported(f"approximate={approx!r}")
    half_x = n.emit("multiply", x, n.scalar(0.5, x))
    return n.emit("multiply", half_x, n.emit("add", t, n.scalar(1.0, x)))


@converts("Celu", since=12)
def _celu(n: Node):
    """max(0, x) + min(0, alpha·(exp(x / alpha) − 1))."""
    x = n.x(0)
    alpha = float(n.attr("alpha", 1.0))
    em1 = n.emit("subtract", n.emit("exp", n.emit("divide", x, n.scalar(alpha, x))), n.scalar(1.0, x))
    low = n.emit("minimum", n.emit("multiply", em1, n.scalar(alpha, x)), n.scalar(0.0, x))
    return n.emit("add", n.emit("nn.relu", x), low)


@converts("Shrink", since=9)
def _shrink(n: Node):
    """x + bias below −lambd, x − bias above lambd, 0 between."""
    x = n.x(0)
    lambd, bias = float(n.attr("lambd", 0.5)), float(n.attr("bias", 0.0))
    low = n.emit("where", n.emit("less", x, n.scalar(-lambd, x)), n.emit("add", x, n.scalar(bias, x)), n.scalar(0, x))
    return n.emit("where", n.emit("greater", x, n.scalar(lambd, x)), n.emit("subtract", x, n.scalar(bias, x)), low)


@converts("Mish", since=18)
def _mish(n: Node):
    x = n.x(0)
    return n.emit("multiply", x, n.emit("tanh", softplus(n, x)))
