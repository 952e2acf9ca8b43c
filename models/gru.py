"""Bidirectional GRU frame classifier (an acoustic-model shape: 80 filterbank features in,
per-frame class scores out), built the way torch.nn.GRU exports.

Features [B, T, F] -> Transpose to time-major -> per layer: Slice the layer's
initial state out of h0 [layers * dirs, B, H], ONNX GRU op (bidirectional,
linear_before_reset=1 as PyTorch computes it), Transpose + Reshape
[T, dirs, B, H] -> [T, B, dirs * H] -> Transpose back -> MatMul + Add to
class logits.  The final states of all layers are Concat'ed into h_n, so
the model has two outputs, like torch.nn.GRU.

    python -m models.gru -o /tmp
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

SMALL = dict(features=8, hidden=8, seq_len=6, num_classes=5)


def gru(g: GraphBuilder, x: str, h0: str, input_size: int, hidden: int, dirs: int, name: str) -> tuple[str, str]:
    """One GRU layer: x [T, B, input], h0 [dirs, B, H] -> ([T, B, dirs, H], h_n [dirs, B, H]).

    Weights uniform(+-1/sqrt(H)) like torch; ONNX layout W [dirs, 3H, in],
    R [dirs, 3H, H], B [dirs, 6H], gate order z, r, h."""
    k = 1 / math.sqrt(hidden)
    with g.scope(name):
        w = g.uniform("W", (dirs, 3 * hidden, input_size), -k, k)
        r = g.uniform("R", (dirs, 3 * hidden, hidden), -k, k)
        b = g.uniform("B", (dirs, 6 * hidden), -k, k)
        y, h_n = g.op(
            "GRU",
            [x, w, r, b, "", h0],
            name="GRU",
            outputs=2,
            hidden_size=hidden,
            direction="bidirectional" if dirs == 2 else "forward",
            linear_before_reset=1,
        )
        return g.transpose(y, [0, 2, 1, 3]), h_n  # Y [T, dirs, B, H] -> [T, B, dirs, H]


def graph(
    g: GraphBuilder,
    *,
    batch: int,
    seq_len: int,
    features: int,
    hidden: int,
    layers: int,
    bidirectional: bool,
    num_classes: int,
):
    dirs = 2 if bidirectional else 1
    x = g.input("features", [batch, seq_len, features])
    h0 = g.input("h0", [layers * dirs, batch, hidden], sample="uniform:-1:1")
    x = g.transpose(x, [1, 0, 2])  # [T, B, F]
    size, finals = features, []
    for i in range(layers):
        with g.scope(f"rnn.l{i}"):
            h = g.op(
                "Slice",
                [
                    h0,
                    g.const([i * dirs], np.int64, "starts"),
                    g.const([(i + 1) * dirs], np.int64, "ends"),
                    g.const([0], np.int64, "axes"),
                ],
            )
        y, h_n = gru(g, x, h, size, hidden, dirs, f"rnn.l{i}")
        x, size = g.reshape(y, [seq_len, batch, dirs * hidden]), dirs * hidden
        finals.append(h_n)
    x = g.transpose(x, [1, 0, 2])  # [B, T, dirs*H]
    g.output(g.linear(x, size, num_classes, name="classifier"), "logits")
    g.output(finals[0] if layers == 1 else g.op("Concat", finals, axis=0), "h_n")


def build(
    batch: int = 1,
    seq_len: int = 100,
    features: int = 80,
    hidden: int = 256,
    layers: int = 2,
    bidirectional: bool = True,
    num_classes: int = 32,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Inputs features [batch, seq_len, features] and h0 [layers*dirs, batch, hidden];
    outputs logits [batch, seq_len, num_classes] and h_n [layers*dirs, batch, hidden]."""
    return build_model(
        graph,
        "gru",
        seed=seed,
        opset=opset,
        doc=f"{layers}-layer {'bi' if bidirectional else 'uni'}directional GRU, hidden {hidden}, "
        f"seeded random weights (seed {seed})",
        batch=batch,
        seq_len=seq_len,
        features=features,
        hidden=hidden,
        layers=layers,
        bidirectional=bidirectional,
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, "gru", SMALL, argv)


if __name__ == "__main__":
    main()
