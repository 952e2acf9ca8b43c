"""BERT-base encoder (HuggingFace BertModel: 12 layers, hidden 768, 12 heads, seq 128).

Embeddings: Gather of word, position (constant position ids) and token-type
tables, summed, LayerNorm (eps 1e-12).  The attention mask (int64, 1 =
attend) becomes the additive (1 - mask) * -10000 over [b, 1, 1, s].  Each
layer: self-attention (blocks.attention), dense + residual + LayerNorm,
intermediate dense + GELU (Erf form), output dense + residual + LayerNorm.
Pooler: first token, dense, Tanh.  Outputs last_hidden_state and
pooler_output.

LayerNorm is the opset-17 LayerNormalization op by default, or the
ReduceMean/Sub/Pow/Sqrt/Div composition older exporters produce
(`--layernorm decomposed`, automatic below opset 17).

Weights are LeCun-normal (std 1/sqrt(fan_in)) rather than BERT's 0.02, so
attention and feed-forward branches contribute O(1) next to the residual
instead of vanishing; embeddings are unit normal.

    python -m models.bert -o /tmp/bert.onnx
"""

from __future__ import annotations

import numpy as np
import onnx

from .blocks import attention, gelu, layer_norm
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

SMALL = dict(layers=2, hidden=64, heads=4, intermediate=128, seq_len=16, vocab_size=100, max_position=32)

EPS = 1e-12


def embeddings(
    g: GraphBuilder,
    input_ids: str,
    token_type_ids: str,
    *,
    seq_len: int,
    vocab_size: int,
    hidden: int,
    max_position: int,
    type_vocab: int,
    layernorm: str,
) -> str:
    with g.scope("embeddings"):
        words = g.op("Gather", [g.normal("word_embeddings.weight", (vocab_size, hidden), 1.0), input_ids])
        positions = g.const(np.arange(seq_len)[None, :], np.int64, "position_ids")
        pos = g.op("Gather", [g.normal("position_embeddings.weight", (max_position, hidden), 1.0), positions])
        types = g.op("Gather", [g.normal("token_type_embeddings.weight", (type_vocab, hidden), 1.0), token_type_ids])
        x = g.op("Add", [g.op("Add", [words, types]), pos])
        return layer_norm(g, x, hidden, EPS, layernorm)


def extended_mask(g: GraphBuilder, attention_mask: str) -> str:
    """int64 [b, s] (1 = token, 0 = padding) -> float [b, 1, 1, s]: 0 or -10000."""
    m = g.op("Cast", [g.unsqueeze(attention_mask, [1, 2])], to=onnx.TensorProto.FLOAT)
    return g.op("Mul", [g.op("Sub", [g.const(1.0, name="one"), m]), g.const(-10000.0, name="mask_value")])


def encoder_layer(
    g: GraphBuilder,
    x: str,
    mask: str | None,
    *,
    batch: int,
    seq_len: int,
    hidden: int,
    heads: int,
    intermediate: int,
    layernorm: str,
) -> str:
    a = attention(
        g,
        x,
        x,
        hidden,
        heads,
        batch,
        seq_len,
        seq_len,
        mask,
        name="attention",
        names=("self.query", "self.key", "self.value", "output.dense"),
    )
    x = layer_norm(g, g.op("Add", [a, x]), hidden, EPS, layernorm, name="attention.output.LayerNorm")
    h = gelu(g, g.linear(x, hidden, intermediate, name="intermediate.dense"))
    y = g.linear(h, intermediate, hidden, name="output.dense")
    return layer_norm(g, g.op("Add", [y, x]), hidden, EPS, layernorm, name="output.LayerNorm")


def graph(
    g: GraphBuilder,
    *,
    batch: int,
    seq_len: int,
    vocab_size: int,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    max_position: int,
    type_vocab: int,
    layernorm: str,
    with_mask: bool,
):
    input_ids = g.input("input_ids", [batch, seq_len], np.int64, f"int:{vocab_size}")
    mask = g.input("attention_mask", [batch, seq_len], np.int64, "mask") if with_mask else None
    token_type_ids = g.input("token_type_ids", [batch, seq_len], np.int64, f"int:{type_vocab}")
    x = embeddings(
        g,
        input_ids,
        token_type_ids,
        seq_len=seq_len,
        vocab_size=vocab_size,
        hidden=hidden,
        max_position=max_position,
        type_vocab=type_vocab,
        layernorm=layernorm,
    )
    mask = extended_mask(g, mask) if mask else None
    for i in range(layers):
        with g.scope(f"encoder.layer.{i}"):
            x = encoder_layer(
                g,
                x,
                mask,
                batch=batch,
                seq_len=seq_len,
                hidden=hidden,
                heads=heads,
                intermediate=intermediate,
                layernorm=layernorm,
            )
    x = g.output(x, "last_hidden_state")
    with g.scope("pooler"):
        first = g.op("Gather", [x, g.const(0, np.int64, "first_token")], axis=1)  # [b, hidden]
        pooled = g.op("Tanh", [g.gemm(first, hidden, hidden, name="dense")])
    g.output(pooled, "pooler_output")


def build(
    batch: int = 1,
    seq_len: int = 128,
    vocab_size: int = 30522,
    hidden: int = 768,
    layers: int = 12,
    heads: int = 12,
    intermediate: int = 3072,
    max_position: int = 512,
    type_vocab: int = 2,
    layernorm: str = "auto",
    with_mask: bool = True,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Inputs input_ids, attention_mask (unless with_mask=False), token_type_ids: int64 [batch, seq_len]."""
    if seq_len > max_position:
        raise ValueError(f"seq_len {seq_len} exceeds max_position {max_position}")
    return build_model(
        graph,
        "bert",
        seed=seed,
        opset=opset,
        doc=f"BERT ({layers} layers, hidden {hidden}), seeded random weights (seed {seed})",
        batch=batch,
        seq_len=seq_len,
        vocab_size=vocab_size,
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        max_position=max_position,
        type_vocab=type_vocab,
        layernorm=layernorm,
        with_mask=with_mask,
    )


def main(argv=None):
    return cli(build, "bert", SMALL, argv)


if __name__ == "__main__":
    main()
