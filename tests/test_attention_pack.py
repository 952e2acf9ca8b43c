"""K's packing inside the attention kernel: with ATTENTION_PACK_MIN_HEADS heads or more, fuse-ops
puts the reshapes and transposes that pack the scores' batch_matmul weight (K, a run-time value)
into the attention kernel, whose threads take whole heads and pack each head's K into a local
buffer at the head loop (dense_template.pack_weight_at), in tiles the backend transposes in
registers. Checked against the reference interpreter and ONNX Runtime on fresh inputs at query
lengths that leave partial row tasks, key lengths of one, three and eight vectors, head dims
whose depth no 16 divides, the row epilogue's knobs, and BERT's form of K (a dense with bias,
split into heads), whose bias stays in the dense's kernel."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import (
    HOST_LANES,
    assert_like_onnxruntime,
    attention_inputs,
    attention_source,
    max_rel_err,
    with_kernel_config,
)

import lathe
from lathe.backends.llvm.codegen import module_to_llvm_ir
from lathe.dialects import make_context
from lathe.passes.fuse_ops import ATTENTION_PACK_MIN_HEADS
from lathe.pipelines import GRAPH_PIPELINES, build_pipeline, pipeline_for
from lathe.textual_ir.parser import parse_relay


def _kernels(src: str) -> dict[str, list[str]]:
    """Each kernel after the -O3 graph pipeline, with the graph ops fused into it."""
    from xdsl.dialects import func

    from lathe.dialects.functions import is_kernel

    m = parse_relay(src)
    build_pipeline(GRAPH_PIPELINES[3]).apply(make_context(), m)
    return {
        f.sym_name.data: [o.name for o in f.body.block.ops if o.name.startswith("graph.")]
        for f in m.ops
        if isinstance(f, func.FuncOp) and is_kernel(f)
    }


def _agrees(src: str, inputs: dict, threads: int = 2, config: str | None = None) -> None:
    module = parse_relay(src)
    ref = lathe.interpret(module, **inputs)
    if config is not None:
        module = with_kernel_config(module, config, "softmax")
    got = lathe.compile(module, num_threads=threads).run(**inputs)
    assert got.shape == ref.shape
    assert max_rel_err(got, ref) < 2e-5
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("heads", [ATTENTION_PACK_MIN_HEADS - 1, ATTENTION_PACK_MIN_HEADS, 12])
def test_the_packing_joins_the_kernel_from_enough_heads(heads):
    """From ATTENTION_PACK_MIN_HEADS heads the run is one kernel holding K's reshape and
    transpose; with fewer, the packing stays a kernel of its own (whole heads per thread would
    leave threads idle), and the attention kernel is as before."""
    kernels = _kernels(attention_source(heads, 128, 128, 64, True))
    (attention,) = [ops for ops in kernels.values() if "graph.nn.softmax" in ops]
    if heads >= ATTENTION_PACK_MIN_HEADS:
        assert list(kernels.values()) == [attention]
        assert attention[:3] == ["graph.reshape", "graph.transpose", "graph.nn.contrib_batch_matmul_pack"]
    else:
        assert len(kernels) == 2
        assert attention[0] == "graph.nn.contrib_batch_matmul_pack"
        assert "graph.transpose" not in attention


def test_a_constant_weight_has_no_packing_to_join():
    """A batch_matmul against a weight bound at compile time: the packed weight is a constant,
    the kernel reads it as before."""
    src = (
        "def @main(%q: Tensor[(12, 16, 64), float32], %k: Tensor[(12, 32, 64), float32]) {"
        " nn.softmax(nn.batch_matmul(%q, %k), axis=-1) }"
    )
    rng = np.random.default_rng(5)
    k = rng.standard_normal((12, 32, 64)).astype(np.float32)
    q = rng.standard_normal((12, 16, 64)).astype(np.float32)
    module = parse_relay(src)
    ref = lathe.interpret(module, q=q, k=k)
    got = lathe.compile(module, params={"k": k}, num_threads=2).run(q=q)
    assert max_rel_err(got, ref) < 2e-5


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "heads, q_len, kv_len, dim",
    [
        (8, 1, 16, 64),
        (8, 17, 48, 32),
        (12, 5, 32, 80),
        (12, 63, 128, 64),
        (12, 128, 128, 64),
        (12, 129, 48, 80),
        (16, 33, 64, 40),
        (24, 40, 32, 64),
    ],
)
@pytest.mark.parametrize("scaled", [False, True])
def test_packed_in_kernel_agrees(heads, q_len, kv_len, dim, scaled, threads, rng):
    """Partial row tasks (1, 5, 17, 33, 63, 129 queries), keys of one to eight vectors (packs of
    16 and 32 columns), depths 32 to 80 (40: pack tiles of 10 k, which the register transpose
    does not take, so the vector loop packs), one and two threads."""
    src = attention_source(heads, q_len, kv_len, dim, scaled)
    assert len(_kernels(src)) == 1
    _agrees(src, attention_inputs(rng, heads, q_len, kv_len, dim, scaled), threads)


def test_an_untransposed_weight_is_packed_by_rows(rng):
    """batch_matmul(q, k, transpose_b=False), k [heads, k, n]: its packing moves whole rows
    of bn columns (no transpose), in the kernel too."""
    src = (
        "def @main(%q: Tensor[(12, 17, 64), float32], %k: Tensor[(12, 64, 96), float32]) {"
        " nn.softmax(nn.batch_matmul(%q, %k, transpose_b=False), axis=-1) }"
    )
    (attention,) = _kernels(src).values()
    assert "graph.transpose" in attention and "graph.nn.contrib_batch_matmul_pack" in attention
    inputs = {
        "q": rng.standard_normal((12, 17, 64)).astype(np.float32),
        "k": rng.standard_normal((12, 64, 96)).astype(np.float32),
    }
    _agrees(src, inputs)


@pytest.mark.parametrize(
    "config",
    [
        "tile_i=8,cache_i=1,group_rows=1",
        "tile_i=4,cache_i=2,group_rows=4",
        "tile_i=2,tile_j=16,cache_i=4,group_rows=2",
        f"tile_i=8,tile_j={4 * HOST_LANES},cache_i=2,group_rows=2",
    ],
)
def test_row_epilogue_knobs_agree_with_the_pack_inside(config, rng):
    """The row epilogue's register tiles and row tasks inside a head task: tasks of 8, 4x2, 2x4
    and 8x2 rows over 17 queries (a partial last task), register tiles 16 wide and four vectors wide."""
    src = attention_source(12, 17, 128, 64, True)
    _agrees(src, attention_inputs(rng, 12, 17, 128, 64, True), 2, f"dense_pack:{config}")


def test_rows_with_nan_and_infinities(rng):
    """A NaN in one head's K makes every row of that head NaN, as in the interpreter; the
    other heads, one with a key masked to -inf, are as the interpreter's."""
    src = attention_source(12, 16, 32, 64, True)
    inputs = attention_inputs(rng, 12, 16, 32, 64, True)
    inputs["k"][3, 5, 7] = np.nan
    inputs["mask"][..., 0] = -np.inf
    module = parse_relay(src)
    ref = lathe.interpret(module, **inputs)
    got = lathe.compile(module, num_threads=2).run(**inputs)
    assert np.isnan(got[3]).all() and np.isnan(ref[3]).all()
    keep = np.arange(12) != 3
    assert max_rel_err(got[keep], ref[keep]) < 2e-5


def test_the_pack_is_a_register_transpose():
    """The pack's tiles are whole-vector row loads, a shuffle network and whole-vector stores
    (backends/llvm/tile_transpose.py), not strided lanes left to LLVM's loop vectorizer."""
    module = parse_relay(attention_source(12, 128, 128, 64, False))
    build_pipeline(pipeline_for(3, module)).apply(make_context(), module)
    ir = module_to_llvm_ir(module, vector_bits=512)
    assert re.search(r"shufflevector <16 x float> %\S+, <16 x float> %", ir)  # two inputs: not a splat
    assert "llvm.loop.vectorize" not in ir and "gather" not in ir


def _bert_scores(seq: int, heads: int = 12, dim: int = 64):
    """BERT's scores as the ONNX exporter writes them: K = x Wk + bk split into heads
    ([1, s, h, d] -> [1, h, d, s] by Transpose), Q likewise, Q K^T / 8 + mask, Softmax."""
    from onnx import TensorProto, helper, numpy_helper

    hidden = heads * dim
    rng = np.random.default_rng(seq)
    w = {n: (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32) for n in ("wq", "wk")}
    b = {n: rng.standard_normal(hidden).astype(np.float32) for n in ("bq", "bk")}
    nodes = []
    for x, wn, bn, perm in (("q", "wq", "bq", [0, 2, 1, 3]), ("k", "wk", "bk", [0, 2, 3, 1])):
        nodes += [
            helper.make_node("MatMul", ["x", wn], [f"{x}m"]),
            helper.make_node("Add", [f"{x}m", bn], [f"{x}b"]),
            helper.make_node("Reshape", [f"{x}b", "heads"], [f"{x}r"]),
            helper.make_node("Transpose", [f"{x}r"], [f"{x}t"], perm=perm),
        ]
    nodes += [
        helper.make_node("MatMul", ["qt", "kt"], ["s"]),
        helper.make_node("Div", ["s", "scale"], ["sd"]),
        helper.make_node("Add", ["sd", "mask"], ["sm"]),
        helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
    ]
    inits = [numpy_helper.from_array(v, n) for n, v in {**w, **b}.items()] + [
        numpy_helper.from_array(np.array([1, seq, heads, dim], np.int64), "heads"),
        numpy_helper.from_array(np.float32(np.sqrt(dim)), "scale"),
    ]
    graph = helper.make_graph(
        nodes,
        "bert_scores",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, hidden]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 1, seq]),
        ],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, heads, seq, seq])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("seq", [32, 128])
def test_bert_scores_agree_with_onnxruntime(seq, rng):
    """K's dense keeps its bias (arithmetic stays in the dense's epilogue); the head split,
    the transpose to K^T and the packing join the attention kernel; the results are ONNX
    Runtime's and the interpreter's."""
    from xdsl.dialects import func

    from lathe.dialects.functions import is_kernel
    from lathe.passes.fold_constant import bind_params

    model = _bert_scores(seq)
    module, params = lathe.from_onnx(model)
    m = bind_params(module.clone(), params)
    build_pipeline(GRAPH_PIPELINES[3]).apply(make_context(), m)
    kernels = [
        [o.name for o in f.body.block.ops if o.name.startswith("graph.")]
        for f in m.ops
        if isinstance(f, func.FuncOp) and is_kernel(f)
    ]
    (attention,) = [ops for ops in kernels if "graph.nn.softmax" in ops]
    assert "graph.transpose" in attention and attention.count("graph.add") == 1  # the mask's add alone
    assert sum("graph.add" in ops and "graph.nn.contrib_dense_pack" in ops for ops in kernels) == 2  # Q's, K's bias
    feeds = []
    for _ in range(2):
        mask = np.zeros((1, 1, 1, seq), np.float32)
        mask[..., seq - seq // 4 :] = -10000.0
        feeds.append({"x": rng.standard_normal((1, seq, 768)).astype(np.float32), "mask": mask})
    assert_like_onnxruntime(model, module, params, feeds, rtol=2e-5, atol=1e-6)
