"""BERT with a `?` sequence length, compiled once and run at several lengths, against ONNX Runtime.

    python benchmarks/bert_dynamic.py [--small] [--lengths 8,17,64,128,256,384] [--static] [--threads N]

The zoo's BERT (models/bert.py) is built for one length and made dynamic as an exporter with
dynamic axes writes it: the inputs' and outputs' sequence axis is `dim_param: "seq"`, the
Reshapes to heads say -1 for it, and the position ids are a Slice of arange(max_position) up
to the input's length (Shape -> Gather -> Unsqueeze -> Slice, which Lathe imports as
graph.shape_of and a graph.dyn strided_slice). Lathe imports that model once and compiles it
once (`lathe.compile` picks the VM); each new length compiles the primitive regions for it
(timed apart as "first run"), then runs. Every length is checked against ONNX Runtime on the
same dynamic model (random ids, a padded mask) and timed beside it: `run()` against
`InferenceSession.run` in default session options, warmed up >= 1 s, alternating in blocks,
medians and the ratio printed. With --static, the graph executor on a model built for that
length is timed too (what the VM's specialisation should match).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEMPLATE_SEQ = 7  # the length the model is built for, a number no other shape constant has


def dynamic_bert(**config):
    """The zoo's BERT with its sequence axis made `?` (see the module docstring)."""
    import onnx
    from onnx import helper, numpy_helper

    from lathe.models import bert

    m = bert.build(seq_len=TEMPLATE_SEQ, **config)
    g = m.graph
    for vi in [*g.input, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].dim_value == TEMPLATE_SEQ:
            dims[1].dim_param = "seq"
    constants = {nd.output[0]: nd for nd in g.node if nd.op_type == "Constant"}
    for nd in g.node:
        if nd.op_type == "Reshape":  # the heads' reshapes: -1 for the sequence axis
            value = constants[nd.input[1]].attribute[0]
            shape = numpy_helper.to_array(value.t)
            if TEMPLATE_SEQ in shape.tolist():
                value.t.CopyFrom(numpy_helper.from_array(np.where(shape == TEMPLATE_SEQ, -1, shape), value.t.name))
    positions = constants["embeddings.position_ids"]
    every = np.arange(config.get("max_position", 512), dtype=np.int64)[None, :]
    positions.attribute[0].t.CopyFrom(numpy_helper.from_array(every, "position_ids.all"))
    positions.output[0] = "position_ids.all"
    for nd in g.node:
        for k, name in enumerate(nd.input):
            if name == "embeddings.position_ids":
                nd.input[k] = "position_ids.dynamic"
    g.initializer.extend(
        [
            numpy_helper.from_array(np.array([1], np.int64), "seq_axis"),
            numpy_helper.from_array(np.array([0], np.int64), "zero_start"),
            numpy_helper.from_array(np.array(1, np.int64), "seq_index"),
        ]
    )
    at = list(g.node).index(positions) + 1
    for k, nd in enumerate(
        [
            helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
            helper.make_node("Gather", ["ids_shape", "seq_index"], ["seq_len"], axis=0),
            helper.make_node("Unsqueeze", ["seq_len", "zero_start"], ["seq_end"]),
            helper.make_node(
                "Slice", ["position_ids.all", "zero_start", "seq_end", "seq_axis"], ["position_ids.dynamic"]
            ),
        ]
    ):
        g.node.insert(at + k, nd)
    onnx.checker.check_model(m)
    return m


def inputs_for(seq: int, vocab: int, rng) -> dict[str, np.ndarray]:
    mask = np.ones((1, seq), np.int64)
    mask[:, max(1, seq - seq // 4) :] = 0  # a padded tail
    return {
        "input_ids": rng.integers(0, vocab, (1, seq)).astype(np.int64),
        "attention_mask": mask,
        "token_type_ids": (np.arange(seq)[None, :] >= seq // 2).astype(np.int64),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the zoo's small BERT (2 layers, hidden 64)")
    ap.add_argument("--lengths", default="8,17,64,128,256,384")
    ap.add_argument("--static", action="store_true", help="also time the graph executor per length")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args(argv)

    from common import ort_session

    import lathe
    from lathe.frontends.onnx import from_onnx
    from lathe.models import bert
    from lathe.testing.timing import fmt, interleaved_medians

    config = dict(bert.SMALL) if args.small else {}
    config.pop("seq_len", None)
    lengths = [int(s) for s in args.lengths.split(",")]
    max_position = config.get("max_position", 512)
    lengths = [n for n in lengths if n <= max_position]
    vocab = config.get("vocab_size", 30522)
    model = dynamic_bert(**config)
    sess = ort_session(model, args.threads or 0)  # 0: ONNX Runtime's own default thread count

    t0 = time.perf_counter()
    module, params = from_onnx(model)
    cm = lathe.compile(module, params=params, num_threads=args.threads)
    print(
        f"BERT {'small' if args.small else 'base'}, seq ?: imported and compiled once in {time.perf_counter() - t0:.1f} s "
        f"({type(cm).__name__}); threads {args.threads or os.cpu_count()}"
    )
    print(
        f"{'seq':>5} {'first run':>10} {'max err':>9} {'lathe (vm)':>12} {'onnxruntime':>12} {'ratio':>6}"
        + (f" {'graph exec':>12} {'ratio':>6} {'compile':>8}" if args.static else "")
    )
    rng = np.random.default_rng(0)
    worst = 0.0
    for n in lengths:
        feeds = inputs_for(n, vocab, rng)
        pool = getattr(cm, "pool_stats", None)  # the VM's memory pool (absent if it runs on the graph executor)
        before = (pool.fresh_bytes, pool.reused_bytes) if pool else (0, 0)
        t0 = time.perf_counter()
        got = cm.run(**feeds)
        first = time.perf_counter() - t0
        ref = sess.run(None, feeds)
        err = max(float(np.max(np.abs(g - r)) / max(1.0, float(np.max(np.abs(r))))) for g, r in zip(got, ref))
        worst = max(worst, err)
        contenders = {"lathe": lambda f=feeds: cm.run(**f), "ort": lambda f=feeds: sess.run(None, f)}
        extra = ""
        if args.static:
            t1 = time.perf_counter()
            static_model = bert.build(seq_len=n, **config)
            sm, sp = from_onnx(static_model)
            scm = lathe.compile(sm, params=sp, num_threads=args.threads)
            compile_s = time.perf_counter() - t1
            contenders["graph"] = lambda f=feeds, c=scm: c.run(**f)
        med = interleaved_medians(contenders, repeat=args.repeat)
        if args.static:
            extra = f" {fmt(med['graph'])} {med['graph'] / med['ort']:6.2f} {compile_s:7.1f}s"
        if pool:  # what this length's runs (first, warm-up, timed) took from the pool, in MiB
            fresh, reused = pool.fresh_bytes - before[0], pool.reused_bytes - before[1]
            extra += f"  pool: {fresh / 2**20:.2f} MiB fresh, {reused / 2**20:.1f} MiB reused"
        print(
            f"{n:5d} {first:9.1f}s {err:9.1e} {fmt(med['lathe'])} {fmt(med['ort'])} "
            f"{med['lathe'] / med['ort']:6.2f}{extra}",
            flush=True,
        )
    print(f"regions compiled: {cm.compiles}; worst relative error {worst:.1e}")
    if getattr(cm, "pool_stats", None):
        print(f"memory pool: {cm.pool_stats}")
    return 0 if worst < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
