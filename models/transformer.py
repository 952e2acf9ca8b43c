"""Transformer encoder-decoder for translation (Vaswani et al.; torch.nn.Transformer, post-LN).

Source and target token embeddings (Gather) scaled by sqrt(d_model) plus a
constant sinusoidal positional encoding.  Encoder layers: self-attention,
Add + LayerNorm, ReLU feed-forward, Add + LayerNorm; then a final LayerNorm.
Decoder layers: masked self-attention (additive causal-mask constant),
cross-attention over the encoder output, feed-forward, each followed by
Add + LayerNorm; final LayerNorm.  Output projection to the target vocabulary
and LogSoftmax.  This is teacher-forced decoding of a whole target prefix -
one forward pass, the graph a compiler sees for training or scoring.

    python -m models.transformer -o /tmp
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from .blocks import attention, causal_mask, layer_norm
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

SMALL = dict(
    d_model=32, heads=2, ff=64, encoder_layers=1, decoder_layers=1, src_len=8, tgt_len=8, src_vocab=50, tgt_vocab=60
)

EPS = 1e-5


def positional_encoding(length: int, d_model: int) -> np.ndarray:
    """The paper's sin/cos table, [1, length, d_model]."""
    pos = np.arange(length)[:, None]
    freq = np.exp(np.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = np.zeros((length, d_model))
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq[: d_model // 2])
    return pe[None].astype(np.float32)


def embed(g: GraphBuilder, ids: str, vocab: int, length: int, d_model: int, name: str) -> str:
    """Embedding * sqrt(d_model) + PE; the table has std 1/sqrt(d_model) so the sum is O(1)."""
    with g.scope(name):
        x = g.op("Gather", [g.normal("weight", (vocab, d_model), 1 / math.sqrt(d_model)), ids])
        x = g.op("Mul", [x, g.const(math.sqrt(d_model), name="scale")])
        return g.op("Add", [x, g.const(positional_encoding(length, d_model), name="positional_encoding")])


def feed_forward(g: GraphBuilder, x: str, d_model: int, ff: int) -> str:
    h = g.op("Relu", [g.linear(x, d_model, ff, math.sqrt(2), name="linear1")])
    return g.linear(h, ff, d_model, name="linear2")


def add_norm(g: GraphBuilder, x: str, y: str, d_model: int, layernorm: str, name: str) -> str:
    return layer_norm(g, g.op("Add", [x, y]), d_model, EPS, layernorm, name=name)


def graph(
    g: GraphBuilder,
    *,
    batch: int,
    src_len: int,
    tgt_len: int,
    src_vocab: int,
    tgt_vocab: int,
    d_model: int,
    heads: int,
    ff: int,
    encoder_layers: int,
    decoder_layers: int,
    layernorm: str,
):
    src = g.input("src", [batch, src_len], np.int64, f"int:{src_vocab}")
    tgt = g.input("tgt", [batch, tgt_len], np.int64, f"int:{tgt_vocab}")
    attn = dict(d_model=d_model, heads=heads, batch=batch)

    x = embed(g, src, src_vocab, src_len, d_model, "src_embedding")
    for i in range(encoder_layers):
        with g.scope(f"encoder.layers.{i}"):
            x = add_norm(
                g,
                x,
                attention(g, x, x, q_len=src_len, kv_len=src_len, name="self_attn", **attn),
                d_model,
                layernorm,
                "norm1",
            )
            x = add_norm(g, x, feed_forward(g, x, d_model, ff), d_model, layernorm, "norm2")
    memory = layer_norm(g, x, d_model, EPS, layernorm, name="encoder.norm")

    mask = causal_mask(g, tgt_len)
    y = embed(g, tgt, tgt_vocab, tgt_len, d_model, "tgt_embedding")
    for i in range(decoder_layers):
        with g.scope(f"decoder.layers.{i}"):
            a = attention(g, y, y, q_len=tgt_len, kv_len=tgt_len, mask=mask, name="self_attn", **attn)
            y = add_norm(g, y, a, d_model, layernorm, "norm1")
            a = attention(g, y, memory, q_len=tgt_len, kv_len=src_len, name="multihead_attn", **attn)
            y = add_norm(g, y, a, d_model, layernorm, "norm2")
            y = add_norm(g, y, feed_forward(g, y, d_model, ff), d_model, layernorm, "norm3")
    y = layer_norm(g, y, d_model, EPS, layernorm, name="decoder.norm")
    logits = g.linear(y, d_model, tgt_vocab, name="generator")
    g.output(g.op("LogSoftmax", [logits], axis=-1), "log_probs")


def build(
    batch: int = 1,
    src_len: int = 32,
    tgt_len: int = 32,
    src_vocab: int = 8000,
    tgt_vocab: int = 8000,
    d_model: int = 256,
    heads: int = 4,
    ff: int = 1024,
    encoder_layers: int = 2,
    decoder_layers: int = 2,
    layernorm: str = "auto",
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Inputs src [batch, src_len] and tgt [batch, tgt_len] (int64 token ids); output log_probs."""
    if d_model % 2:
        raise ValueError("d_model must be even (sin/cos positional encoding)")
    return build_model(
        graph,
        "transformer",
        seed=seed,
        opset=opset,
        doc=f"Transformer {encoder_layers}+{decoder_layers} layers, d_model {d_model}, "
        f"seeded random weights (seed {seed})",
        batch=batch,
        src_len=src_len,
        tgt_len=tgt_len,
        src_vocab=src_vocab,
        tgt_vocab=tgt_vocab,
        d_model=d_model,
        heads=heads,
        ff=ff,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        layernorm=layernorm,
    )


def main(argv=None):
    return cli(build, "transformer", SMALL, argv)


if __name__ == "__main__":
    main()
