"""Recurrent layers (RNN, GRU, LSTM), unrolled over their static sequence length."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from xdsl.ir import SSAValue

from lathe.errors import LatheError
from lathe.frontends.onnx.converters.activations import elu, hard_sigmoid, softplus
from lathe.frontends.onnx.converters.common import reshape
from lathe.frontends.onnx.importer import Node, value_dtype, value_shape
from lathe.frontends.onnx.registry import converts

_ACTIVATIONS_WITH_ALPHA = {"LeakyRelu", "ThresholdedRelu", "Elu", "Affine", "ScaledTanh", "HardSigmoid"}
_ACTIVATIONS_WITH_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}
_ACTIVATION_DEFAULTS = {
    "LeakyRelu": (0.01, None),
    "ThresholdedRelu": (1.0, None),
    "Elu": (1.0, None),
    "HardSigmoid": (0.2, 0.5),
    "Affine": (1.0, 0.0),
    "ScaledTanh": (1.0, 1.0),
}


def _activation(n: Node, name: str, alpha, beta) -> Callable[[SSAValue], SSAValue]:
    """An RNN gate activation by its ONNX name, as a function of a value."""
    da, db = _ACTIVATION_DEFAULTS.get(name, (None, None))
    alpha = da if alpha is None else alpha
    beta = db if beta is None else beta
    simple = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "nn.relu"}
    if name in simple:
        return lambda v: n.emit(simple[name], v)
    if name == "LeakyRelu":
        return lambda v: n.emit("nn.leaky_relu", v, alpha=float(alpha))
    if name == "ThresholdedRelu":
        return lambda v: n.emit("where", n.emit("greater", v, n.scalar(alpha, v)), v, n.scalar(0.0, v))
    if name == "Elu":
        return lambda v: elu(n, v, float(alpha))
    if name == "HardSigmoid":
        return lambda v: hard_sigmoid(n, v, float(alpha), float(beta))
    if name == "Affine":
        return lambda v: n.emit("add", n.emit("multiply", v, n.scalar(alpha, v)), n.scalar(beta, v))
    if name == "ScaledTanh":
        return lambda v: n.emit(
            "multiply", n.emit("tanh", n.emit("multiply", v, n.scalar(beta, v))), n.scalar(alpha, v)
        )
    if name == "Softsign":
        return lambda v: n.emit("divide", v, n.emit("add", n.emit("abs", v), n.scalar(1.0, v)))
    if name == "Softplus":
        return lambda v: softplus(n, v)
    raise n.unsupported(f"the activation {name!r}")


class _Recurrent:
    """What LSTM, GRU and RNN share: layouts, directions, weights per direction, unrolling, outputs.

    The sequence length is static, so each step becomes its own ops: the input
    projections of all steps are one nn.dense, and each step adds the
    recurrent nn.dense and applies the gates with strided_slice and
    elementwise ops.
    """

    def __init__(self, n: Node, gates: int, default_activations: list[str]) -> None:
        self.n = n
        self.gates = gates
        direction = n.attr("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise n.unsupported(f"direction={direction!r}")
        self.directions = ["forward", "reverse"] if direction == "bidirectional" else [direction]
        self.layout = n.attr("layout", 0)
        x = n.x(0)
        if self.layout:
            x = n.emit("transpose", x, axes=[1, 0, 2])
        self.seq, self.batch, self.input_size = value_shape(x)
        self.x = x
        r = n.x(2)
        self.hidden = n.attr("hidden_size", value_shape(r)[-1])
        self.clip = n.attr("clip")
        self._check_sequence_lens()
        names = n.attr("activations", default_activations * len(self.directions))
        alphas = list(n.attr("activation_alpha", []))
        betas = list(n.attr("activation_beta", []))
        per_dir = len(default_activations)
        if len(names) != per_dir * len(self.directions):
            raise LatheError(f"{n.where}: {len(names)} activations, expected {per_dir * len(self.directions)}")
        self.activations = []
        for name in names:
            alpha = alphas.pop(0) if name in _ACTIVATIONS_WITH_ALPHA and alphas else None
            beta = betas.pop(0) if name in _ACTIVATIONS_WITH_BETA and betas else None
            self.activations.append(_activation(n, name, alpha, beta))
        self.per_dir = per_dir

    def _check_sequence_lens(self) -> None:
        n = self.n
        if not n.has(4):
            return
        lens = n.const(4, "sequence_lens")
        if np.any(lens != self.seq):
            raise n.unsupported(f"sequence_lens {lens.tolist()} shorter than the sequence ({self.seq})")

    def acts(self, d: int) -> list[Callable[[SSAValue], SSAValue]]:
        return self.activations[d * self.per_dir : (d + 1) * self.per_dir]

    def direction_slice(self, v: SSAValue, d: int, axis: int = 0) -> SSAValue:
        """v[d] along `axis` (the num_directions axis), with that axis removed."""
        s = value_shape(v)
        one = self.n.emit("strided_slice", v, begin=[d], end=[d + 1], axes=[axis])
        return reshape(self.n, one, s[:axis] + s[axis + 1 :])

    def rows(self, v: SSAValue, k: int, count: int = 1) -> SSAValue:
        """Gate block(s) k..k+count of a (.., G·H) value, along its last axis."""
        h = self.hidden
        return self.n.emit("strided_slice", v, begin=[k * h], end=[(k + count) * h], axes=[len(value_shape(v)) - 1])

    def weights(self, d: int) -> tuple[SSAValue, SSAValue, SSAValue | None, SSAValue | None]:
        """W (G·H, I), R (G·H, H), and the input and recurrent biases (G·H) of direction d."""
        n = self.n
        w = self.direction_slice(n.x(1), d)
        r = self.direction_slice(n.x(2), d)
        wb = rb = None
        if n.has(3):
            b = self.direction_slice(n.x(3), d)
            gh = self.gates * self.hidden
            wb = n.emit("strided_slice", b, begin=[0], end=[gh])
            rb = n.emit("strided_slice", b, begin=[gh], end=[2 * gh])
        return w, r, wb, rb

    def initial(self, i: int, d: int) -> SSAValue:
        """initial_h (i=5) or initial_c (i=6) of direction d, zeros when absent."""
        n = self.n
        if not n.has(i):
            return n.emit("zeros", shape=[self.batch, self.hidden], dtype=value_dtype(self.x))
        return self.direction_slice(n.x(i), d, axis=1 if self.layout else 0)

    def input_projection(self, w: SSAValue, bias: SSAValue | None) -> SSAValue:
        """X·Wᵀ (+ bias) for all steps at once: (seq, batch, G·H)."""
        n = self.n
        flat = reshape(n, self.x, [self.seq * self.batch, self.input_size])
        y = n.emit("nn.dense", flat, w)
        if bias is not None:
            y = n.emit("add", y, bias)
        return reshape(n, y, [self.seq, self.batch, self.gates * self.hidden])

    def rows_of_weight(self, w: SSAValue, k: int, count: int) -> SSAValue:
        """Rows k·H..(k+count)·H of a (G·H, ·) weight."""
        h = self.hidden
        return self.n.emit("strided_slice", w, begin=[k * h], end=[(k + count) * h], axes=[0])

    def step_input(self, xw: SSAValue, t: int) -> SSAValue:
        one = self.n.emit("strided_slice", xw, begin=[t], end=[t + 1], axes=[0])
        return reshape(self.n, one, [self.batch, self.gates * self.hidden])

    def clipped(self, v: SSAValue) -> SSAValue:
        return v if self.clip is None else self.n.emit("clip", v, a_min=-float(self.clip), a_max=float(self.clip))

    def order(self, d: int) -> list[int]:
        return list(range(self.seq)) if self.directions[d] == "forward" else list(range(self.seq))[::-1]

    def outputs(self, hs: list[list[SSAValue]], finals: list[list[SSAValue]]) -> list[SSAValue]:
        """Y (seq, dirs, batch, H) from the per-step states; Y_h (and Y_c) (dirs, batch, H); then the layout."""
        n = self.n
        h = self.hidden
        per_dir = []
        for states in hs:
            steps = [reshape(n, s, [1, 1, self.batch, h]) for s in states]
            per_dir.append(steps[0] if len(steps) == 1 else n.emit("concatenate", n.emit("tuple", *steps), axis=0))
        y = per_dir[0] if len(per_dir) == 1 else n.emit("concatenate", n.emit("tuple", *per_dir), axis=1)
        outs = [y]
        for last in finals:
            parts = [reshape(n, v, [1, self.batch, h]) for v in last]
            outs.append(parts[0] if len(parts) == 1 else n.emit("concatenate", n.emit("tuple", *parts), axis=0))
        if self.layout:
            outs = [n.emit("transpose", outs[0], axes=[2, 0, 1, 3])] + [
                n.emit("transpose", v, axes=[1, 0, 2]) for v in outs[1:]
            ]
        return outs


@converts("RNN")
def _rnn(n: Node):
    """H = f(X·Wᵀ + H·Rᵀ + Wb + Rb)."""
    rec = _Recurrent(n, 1, ["Tanh"])
    hs, finals = [], []
    for d in range(len(rec.directions)):
        (f,) = rec.acts(d)
        w, r, wb, rb = rec.weights(d)
        bias = n.emit("add", wb, rb) if wb is not None else None
        xw = rec.input_projection(w, bias)
        h = rec.initial(5, d)
        states: list[SSAValue | None] = [None] * rec.seq
        for t in rec.order(d):
            h = f(rec.clipped(n.emit("add", rec.step_input(xw, t), n.emit("nn.dense", h, r))))
            states[t] = h
        hs.append(states)
        finals.append(h)
    return rec.outputs(hs, [finals])


@converts("GRU")
def _gru(n: Node):
    """z = f(..z), r = f(..r), ĥ = g(X·Whᵀ + (r ⊙ H)·Rhᵀ + Rbh + Wbh), or with linear_before_reset
    g(X·Whᵀ + r ⊙ (H·Rhᵀ + Rbh) + Wbh); H = (1 − z) ⊙ ĥ + z ⊙ H. Gate order z, r, h."""
    rec = _Recurrent(n, 3, ["Sigmoid", "Tanh"])
    before_reset = bool(n.attr("linear_before_reset", 0))
    hs, finals = [], []
    for d in range(len(rec.directions)):
        f, g = rec.acts(d)
        w, r, wb, rb = rec.weights(d)
        xw = rec.input_projection(w, wb)
        r_zr, r_h = rec.rows_of_weight(r, 0, 2), rec.rows_of_weight(r, 2, 1)
        rb_zr = rec.rows(rb, 0, 2) if rb is not None else None
        rb_h = rec.rows(rb, 2) if rb is not None else None
        h = rec.initial(5, d)
        states: list[SSAValue | None] = [None] * rec.seq
        for t in rec.order(d):
            xt = rec.step_input(xw, t)
            hzr = n.emit("nn.dense", h, r_zr)
            if rb_zr is not None:
                hzr = n.emit("add", hzr, rb_zr)
            zr = n.emit("add", rec.rows(xt, 0, 2), hzr)
            z = f(rec.clipped(rec.rows(zr, 0)))
            reset = f(rec.clipped(rec.rows(zr, 1)))
            if before_reset:
                hh = n.emit("nn.dense", h, r_h)
                if rb_h is not None:
                    hh = n.emit("add", hh, rb_h)
                pre = n.emit("add", rec.rows(xt, 2), n.emit("multiply", reset, hh))
            else:
                hh = n.emit("nn.dense", n.emit("multiply", reset, h), r_h)
                if rb_h is not None:
                    hh = n.emit("add", hh, rb_h)
                pre = n.emit("add", rec.rows(xt, 2), hh)
            cand = g(rec.clipped(pre))
            one_minus_z = n.emit("subtract", n.scalar(1.0, z), z)
            h = n.emit("add", n.emit("multiply", one_minus_z, cand), n.emit("multiply", z, h))
            states[t] = h
        hs.append(states)
        finals.append(h)
    return rec.outputs(hs, [finals])


@converts("LSTM")
def _lstm(n: Node):
    """Gates i, o, f, c (in that order in W, R, B; peepholes P in order i, o, f):
    i = f(..i + Pi ⊙ C), f = f(..f + Pf ⊙ C) (or 1 − i with input_forget), c̃ = g(..c),
    C' = f ⊙ C + i ⊙ c̃, o = f(..o + Po ⊙ C'), H = o ⊙ h(C')."""
    rec = _Recurrent(n, 4, ["Sigmoid", "Tanh", "Tanh"])
    coupled = bool(n.attr("input_forget", 0))
    hs, hfinals, cfinals = [], [], []
    for d in range(len(rec.directions)):
        f, g, act_h = rec.acts(d)
        w, r, wb, rb = rec.weights(d)
        bias = n.emit("add", wb, rb) if wb is not None else None
        xw = rec.input_projection(w, bias)
        peep = None
        if n.has(7):
            p = rec.direction_slice(n.x(7), d)
            peep = [rec.rows(p, k) for k in range(3)]  # i, o, f
        h, c = rec.initial(5, d), rec.initial(6, d)
        states: list[SSAValue | None] = [None] * rec.seq
        for t in rec.order(d):
            gates = n.emit("add", rec.step_input(xw, t), n.emit("nn.dense", h, r))
            pre_i, pre_o, pre_f, pre_c = (rec.rows(gates, k) for k in range(4))
            if peep is not None:
                pre_i = n.emit("add", pre_i, n.emit("multiply", peep[0], c))
                pre_f = n.emit("add", pre_f, n.emit("multiply", peep[2], c))
            i = f(rec.clipped(pre_i))
            forget = n.emit("subtract", n.scalar(1.0, i), i) if coupled else f(rec.clipped(pre_f))
            c = n.emit("add", n.emit("multiply", forget, c), n.emit("multiply", i, g(rec.clipped(pre_c))))
            if peep is not None:
                pre_o = n.emit("add", pre_o, n.emit("multiply", peep[1], c))
            o = f(rec.clipped(pre_o))
            h = n.emit("multiply", o, act_h(c))
            states[t] = h
        hs.append(states)
        hfinals.append(h)
        cfinals.append(c)
    return rec.outputs(hs, [hfinals, cfinals])
