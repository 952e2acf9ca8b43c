"""Recurrent layers (RNN, GRU, LSTM): each cell is one step function, applied over time either
unrolled (one copy per time step of the static sequence) or as a graph.while whose body is one
step (`from_onnx(..., recurrent="loop")`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from xdsl.dialects.builtin import DYNAMIC_INDEX
from xdsl.ir import Block, SSAValue

from lathe.dialects import graph
from lathe.errors import LatheError
from lathe.frontends.onnx.converters.activations import elu, hard_sigmoid, softplus
from lathe.frontends.onnx.converters.common import dynamic_prod, reshape
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


Step = Callable[[SSAValue, list[SSAValue], Any], list[SSAValue]]
"""One time step of a cell: (its input projection X_t·Wᵀ + bias, the carried H (and C), the
recurrent weights) → the next carried values."""


class _Recurrent:
    """What LSTM, GRU and RNN share: layouts, directions, weights per direction, the recurrence
    over time (unrolled or a loop), outputs.

    The input projections of all steps are one nn.dense before the recurrence; each step adds
    the recurrent nn.dense and applies the gates with strided_slice and elementwise ops.
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
        self.lens = self._sequence_lens()
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

    def _sequence_lens(self) -> SSAValue | None:
        """Each batch entry's length as an int64 (batch, 1) column, None when every entry is
        known to run the whole sequence."""
        n = self.n
        if not n.has(4):
            return None
        if n.known(4) and np.all(n.const(4, "sequence_lens") == self.seq):
            return None
        lens = n.x(4)
        if value_dtype(lens) != "int64":
            lens = n.emit("cast", lens, dtype="int64")
        return n.emit("expand_dims", lens, axis=1)

    def masked(self, step: Step, xt: SSAValue, t: SSAValue, carried: list[SSAValue], wts) -> list[SSAValue]:
        """One step that, with sequence_lens, moves only the batch entries still inside their
        sequence (t < length; the others carry their values on, so Y_h is the state at an
        entry's last step, and in reverse the state stays initial until its last step is
        reached); then H for Y, 0 past an entry's length, as ONNX says."""
        new = step(xt, carried, wts)
        if self.lens is None:
            return [*new, new[0]]
        n = self.n
        inside = n.emit("less", t, self.lens)
        kept = [n.emit("where", inside, v, old) for v, old in zip(new, carried)]
        return [*kept, n.emit("where", inside, new[0], n.scalar(0.0, new[0]))]

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

    def weight(self, i: int, d: int) -> SSAValue:
        """W (i=1, (G·H, I)) or R (i=2, (G·H, H)) of direction d."""
        return self.direction_slice(self.n.x(i), d)

    def biases(self, d: int) -> tuple[SSAValue | None, SSAValue | None]:
        """The input and recurrent biases (G·H) of direction d (None without B)."""
        n = self.n
        if not n.has(3):
            return None, None
        b = self.direction_slice(n.x(3), d)
        gh = self.gates * self.hidden
        return n.emit("strided_slice", b, begin=[0], end=[gh]), n.emit("strided_slice", b, begin=[gh], end=[2 * gh])

    def initial(self, i: int, d: int) -> SSAValue:
        """initial_h (i=5) or initial_c (i=6) of direction d, zeros when absent."""
        n = self.n
        if not n.has(i):
            return n.emit("zeros", shape=[self.batch, self.hidden], dtype=value_dtype(self.x))
        return self.direction_slice(n.x(i), d, axis=1 if self.layout else 0)

    def input_projection(self, w: SSAValue, bias: SSAValue | None) -> SSAValue:
        """X·Wᵀ (+ bias) for all steps at once: (seq, batch, G·H)."""
        n = self.n
        flat = reshape(n, self.x, [dynamic_prod([self.seq, self.batch]), self.input_size])
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

    def recur(
        self, d: int, xw: SSAValue, init: list[SSAValue], weights: Callable[[], Any], step: Step
    ) -> tuple[SSAValue, list[SSAValue]]:
        """`step` over the sequence in direction d from `init`: (Y of this direction, (seq, 1,
        batch, H) from the carried H of each step, in time order; the last carried values).
        `weights()` makes what each step reads of R, B and P: once here when unrolled, and inside
        the loop's body when looped, so that the body reads the weights themselves, which the VM
        gives its compiler as constants (packed, sliced at compile time)."""
        if self.n.imp.recurrent == "loop":
            return self._loop(d, xw, init, weights, step)
        n = self.n
        if self.seq == DYNAMIC_INDEX:
            raise n.unsupported(
                "unrolling a sequence whose length is known only at run time (from_onnx(..., recurrent='loop') loops)"
            )
        states: list[SSAValue | None] = [None] * self.seq
        carried = init
        wts = weights()
        for t in self.order(d):
            *carried, states[t] = self.masked(step, self.step_input(xw, t), n.scalar(t, "int64"), carried, wts)
        steps = [reshape(n, s, [1, 1, self.batch, self.hidden]) for s in states if s is not None]
        y = steps[0] if len(steps) == 1 else n.emit("concatenate", n.emit("tuple", *steps), axis=0)
        return y, carried

    def _loop(
        self, d: int, xw: SSAValue, init: list[SSAValue], weights: Callable[[], Any], step: Step
    ) -> tuple[SSAValue, list[SSAValue]]:
        """The recurrence as a graph.while over (t, the carried values) whose body is one step,
        reading X_t·Wᵀ at t (seq − 1 − t in reverse) and scanning H, whose stacked `?` axis is sliced
        back to the static sequence length (so the graph after the loop stays static)."""
        n = self.n
        zero = n.scalar(0, "int64")
        if self.seq == DYNAMIC_INDEX:  # a layer after a looped one: its length is known at run time
            shape = graph.ShapeOfOp.build(xw)
            n.imp.add(shape)
            seq = n.emit("take", shape.result, n.scalar(0, "int64"), axis=0)
        else:
            seq = n.scalar(self.seq, "int64")
        types = [zero.type, *(v.type for v in init)]
        body = Block(arg_types=types)
        saved = n.imp.scope
        n.imp.scope = body
        try:
            t = body.args[0]
            if self.directions[d] == "reverse":
                t = n.emit("subtract", n.emit("subtract", seq, n.scalar(1, "int64")), t)
            *carried, y = self.masked(step, n.emit("take", xw, t, axis=0), t, list(body.args[1:]), weights())
            nxt = n.emit("add", body.args[0], n.scalar(1, "int64"))
        finally:
            n.imp.scope = saved
        body.add_op(graph.YieldOp.create(operands=[nxt, *carried, y]))
        check = Block(arg_types=types)
        below = graph.make_op("less", [check.args[0], seq])
        check.add_op(below)
        check.add_op(graph.YieldOp.create(operands=[below.results[0]]))
        loop = graph.WhileOp.build([zero, *init], check, body)
        loop.location = n.location
        n.imp.add(loop)
        hs = loop.outs[-1]  # (?, batch, H) in step order
        if self.seq != DYNAMIC_INDEX:  # the while stacks on a `?` axis; the length is the sequence's
            hs = n.emit("strided_slice", hs, begin=[0], end=[self.seq], axes=[0])
        if self.directions[d] == "reverse":
            hs = n.emit("strided_slice", hs, begin=[-1], end=[-(2**62)], strides=[-1], axes=[0])
        return n.emit("expand_dims", hs, axis=1), list(loop.outs[1 : 1 + len(init)])

    def clipped(self, v: SSAValue) -> SSAValue:
        return v if self.clip is None else self.n.emit("clip", v, a_min=-float(self.clip), a_max=float(self.clip))

    def order(self, d: int) -> list[int]:
        return list(range(self.seq)) if self.directions[d] == "forward" else list(range(self.seq))[::-1]

    def outputs(self, ys: list[SSAValue], finals: list[list[SSAValue]]) -> list[SSAValue]:
        """Y (seq, dirs, batch, H) from each direction's; Y_h (and Y_c) (dirs, batch, H); then the layout."""
        n = self.n
        h = self.hidden
        y = ys[0] if len(ys) == 1 else n.emit("concatenate", n.emit("tuple", *ys), axis=1)
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
    ys, finals = [], []
    for d in range(len(rec.directions)):
        (f,) = rec.acts(d)
        wb, rb = rec.biases(d)
        bias = n.emit("add", wb, rb) if wb is not None else None
        xw = rec.input_projection(rec.weight(1, d), bias)

        def step(xt: SSAValue, carried: list[SSAValue], r: SSAValue, f=f) -> list[SSAValue]:
            (h,) = carried
            return [f(rec.clipped(n.emit("add", xt, n.emit("nn.dense", h, r))))]

        y, (h,) = rec.recur(d, xw, [rec.initial(5, d)], lambda d=d: rec.weight(2, d), step)
        ys.append(y)
        finals.append(h)
    return rec.outputs(ys, [finals])


@converts("GRU")
def _gru(n: Node):
    """z = f(..z), r = f(..r), ĥ = g(X·Whᵀ + (r ⊙ H)·Rhᵀ + Rbh + Wbh), or with linear_before_reset
    g(X·Whᵀ + r ⊙ (H·Rhᵀ + Rbh) + Wbh); H = (1 − z) ⊙ ĥ + z ⊙ H. Gate order z, r, h."""
    rec = _Recurrent(n, 3, ["Sigmoid", "Tanh"])
    before_reset = bool(n.attr("linear_before_reset", 0))
    ys, finals = [], []
    for d in range(len(rec.directions)):
        f, g = rec.acts(d)
        xw = rec.input_projection(rec.weight(1, d), rec.biases(d)[0])

        def recurrent(d=d):
            """R's z, r rows and h rows, and Rb's (None without B)."""
            r, rb = rec.weight(2, d), rec.biases(d)[1]
            r_zr, r_h = rec.rows_of_weight(r, 0, 2), rec.rows_of_weight(r, 2, 1)
            if rb is None:
                return r_zr, r_h, None, None
            return r_zr, r_h, rec.rows(rb, 0, 2), rec.rows(rb, 2)

        def step(xt: SSAValue, carried: list[SSAValue], wts, f=f, g=g) -> list[SSAValue]:
            (h,) = carried
            r_zr, r_h, rb_zr, rb_h = wts
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
            return [n.emit("add", n.emit("multiply", one_minus_z, cand), n.emit("multiply", z, h))]

        y, (h,) = rec.recur(d, xw, [rec.initial(5, d)], recurrent, step)
        ys.append(y)
        finals.append(h)
    return rec.outputs(ys, [finals])


@converts("LSTM")
def _lstm(n: Node):
    """Gates i, o, f, c (in that order in W, R, B; peepholes P in order i, o, f):
    i = f(..i + Pi ⊙ C), f = f(..f + Pf ⊙ C) (or 1 − i with input_forget), c̃ = g(..c),
    C' = f ⊙ C + i ⊙ c̃, o = f(..o + Po ⊙ C'), H = o ⊙ h(C')."""
    rec = _Recurrent(n, 4, ["Sigmoid", "Tanh", "Tanh"])
    coupled = bool(n.attr("input_forget", 0))
    ys, hfinals, cfinals = [], [], []
    for d in range(len(rec.directions)):
        f, g, act_h = rec.acts(d)
        wb, rb = rec.biases(d)
        bias = n.emit("add", wb, rb) if wb is not None else None
        xw = rec.input_projection(rec.weight(1, d), bias)

        def recurrent(d=d):
            """R, and the peepholes i, o, f (None without P)."""
            r = rec.weight(2, d)
            if not n.has(7):
                return r, None
            p = rec.direction_slice(n.x(7), d)
            return r, [rec.rows(p, k) for k in range(3)]

        def step(xt: SSAValue, carried: list[SSAValue], wts, f=f, g=g, act_h=act_h) -> list[SSAValue]:
            h, c = carried
            r, peep = wts
            gates = n.emit("add", xt, n.emit("nn.dense", h, r))
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
            return [n.emit("multiply", o, act_h(c)), c]

        y, (h, c) = rec.recur(d, xw, [rec.initial(5, d), rec.initial(6, d)], recurrent, step)
        ys.append(y)
        hfinals.append(h)
        cfinals.append(c)
    return rec.outputs(ys, [hfinals, cfinals])
