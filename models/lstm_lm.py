"""LSTM word language model (the PyTorch word_language_model example, "medium" size).

Gather embedding -> Transpose to time-major -> stacked ONNX LSTM ops (one
per layer, forward, no initial state: zeros) -> Squeeze of the direction
axis between layers -> Transpose back -> MatMul + Add to vocabulary logits.
The LSTM op carries the whole recurrence (gates i, o, f, c; sigmoid / tanh),
so an importer has to unroll or loop it.

    python -m models.lstm_lm -o /tmp
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

SMALL = dict(vocab_size=50, embed=16, hidden=16, seq_len=6)


def lstm(g: GraphBuilder, x: str, input_size: int, hidden: int, name: str) -> str:
    """One forward LSTM layer: [T, B, input] -> [T, B, hidden].

    Weights are uniform(+-1/sqrt(hidden)) like torch.nn.LSTM, in ONNX layout:
    W [1, 4H, input], R [1, 4H, H], B [1, 8H] (Wb then Rb), gate order i, o, f, c."""
    k = 1 / math.sqrt(hidden)
    with g.scope(name):
        w = g.uniform("W", (1, 4 * hidden, input_size), -k, k)
        r = g.uniform("R", (1, 4 * hidden, hidden), -k, k)
        b = g.uniform("B", (1, 8 * hidden), -k, k)
        y = g.op("LSTM", [x, w, r, b], name="LSTM", hidden_size=hidden)  # Y: [T, 1, B, H]
        return g.squeeze(y, [1])


def graph(g: GraphBuilder, *, batch: int, seq_len: int, vocab_size: int, embed: int, hidden: int, layers: int):
    ids = g.input("input_ids", [batch, seq_len], np.int64, f"int:{vocab_size}")
    x = g.op("Gather", [g.normal("encoder.weight", (vocab_size, embed), 1.0), ids])  # [B, T, E]
    x = g.transpose(x, [1, 0, 2])  # [T, B, E]
    size = embed
    for i in range(layers):
        x, size = lstm(g, x, size, hidden, f"rnn.l{i}"), hidden
    x = g.transpose(x, [1, 0, 2])  # [B, T, H]
    g.output(g.linear(x, hidden, vocab_size, name="decoder"), "logits")


def build(
    batch: int = 1,
    seq_len: int = 35,
    vocab_size: int = 10000,
    embed: int = 650,
    hidden: int = 650,
    layers: int = 2,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Input input_ids int64 [batch, seq_len]; output logits [batch, seq_len, vocab_size]."""
    return build_model(
        graph,
        "lstm_lm",
        seed=seed,
        opset=opset,
        doc=f"{layers}-layer LSTM language model, hidden {hidden}, seeded random weights (seed {seed})",
        batch=batch,
        seq_len=seq_len,
        vocab_size=vocab_size,
        embed=embed,
        hidden=hidden,
        layers=layers,
    )


def main(argv=None):
    return cli(build, "lstm_lm", SMALL, argv)


if __name__ == "__main__":
    main()
