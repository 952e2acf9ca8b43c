"""V's packing inside attention's P.V kernel: fuse-ops puts the reshapes and transposes that split
a run-time V into heads and pack it into the batch_matmul's kernel where its weight has
GEMM_PACK_MIN_PANELS panels over all heads (`_gemm_packing`, the rule of a 2-D GEMM's run-time
weight); the dense_pack template then runs threads over (head, panel) and packs each task's
panels at that loop (dense_template.pack_weight_at). Checked against the reference interpreter
on fresh inputs: 1, 2, 8 and 12 heads (too few panels: the pack kernel stays), query and key
lengths no 16 divides, one and two threads, with the rule off (fuse-ops{batch_pack=false}),
the template's knobs, an epilogue, and BERT's attention from ONNX against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HOST_LANES, assert_like_onnxruntime, max_rel_err, with_kernel_config

import lathe
from lathe.dialects import make_context
from lathe.errors import LatheError
from lathe.passes.fuse_ops import GEMM_PACK_MIN_PANELS
from lathe.pipelines import GRAPH_PIPELINES, build_pipeline, pipeline_for
from lathe.textual_ir.parser import parse_relay

OFF = pipeline_for(3).replace(",fuse-ops,", ",fuse-ops{batch_pack=false},")


def _pv_source(heads: int, q_len: int, kv_len: int, dim: int, epilogue: str = "") -> str:
    """probs [h, q, s] . V, V as BERT makes it: [1, s, h x d] split into heads by reshape and
    transpose (batch_matmul's [b, k, n] form, packed without a transpose of its own)."""
    v = (
        f"reshape(transpose(reshape(%v, newshape=[1, {kv_len}, {heads}, {dim}]), axes=[0, 2, 1, 3]),"
        f" newshape=[{heads}, {kv_len}, {dim}])"
    )
    body = f"nn.batch_matmul(%p, {v}, transpose_b=False)"
    if epilogue:
        body = f"{epilogue}({body})"
    return (
        f"def @main(%p: Tensor[({heads}, {q_len}, {kv_len}), float32],"
        f" %v: Tensor[(1, {kv_len}, {heads * dim}), float32]) {{ {body} }}"
    )


def _pv_inputs(rng, heads: int, q_len: int, kv_len: int, dim: int) -> dict[str, np.ndarray]:
    p = rng.random((heads, q_len, kv_len)).astype(np.float32)
    return {
        "p": p / p.sum(axis=-1, keepdims=True),
        "v": rng.standard_normal((1, kv_len, heads * dim)).astype(np.float32),
    }


def _kernels(module) -> list[list[str]]:
    """Each kernel after the -O3 graph pipeline: the graph ops fused into it."""
    from xdsl.dialects import func

    from lathe.dialects.functions import is_kernel

    m = module.clone()
    build_pipeline(GRAPH_PIPELINES[3]).apply(make_context(), m)
    return [
        [o.name for o in f.body.block.ops if o.name.startswith("graph.")]
        for f in m.ops
        if isinstance(f, func.FuncOp) and is_kernel(f)
    ]


def _agrees(module, inputs, ref, threads: int = 2, pipeline: str | None = None) -> None:
    got = lathe.compile(module, num_threads=threads, pipeline=pipeline).run(**inputs)
    assert max_rel_err(got, ref) < 1e-5


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "heads, q_len, kv_len, dim",
    [
        (1, 33, 48, 64),  # 2 panels: too few, the pack kernel stays
        (2, 17, 128, 64),  # 4 panels: too few
        (8, 1, 128, 64),  # one query (a GEMV per head), 16 panels
        (8, 19, 40, 32),  # one panel a head (32 columns), depth 40 (pack tiles of 10 k)
        (12, 128, 128, 64),  # BERT-base at seq 128
        (12, 77, 77, 64),
        (12, 9, 200, 80),  # 80 columns: panels of 16
    ],
)
def test_pv_agrees_with_and_without_the_rule(heads, q_len, kv_len, dim, threads, rng):
    """The kernel holds V's whole split and packing exactly where its weight has
    GEMM_PACK_MIN_PANELS panels; with the rule and without it (the pack a kernel of its own)
    the result is the interpreter's."""
    module = parse_relay(_pv_source(heads, q_len, kv_len, dim))
    bn = 16 if dim % 32 else 32
    joined = heads * (dim // bn) >= GEMM_PACK_MIN_PANELS
    kernels = _kernels(module)
    if joined:
        (kernel,) = kernels  # (one panel a head: the packing's transpose is a reshape)
        assert kernel[-1] == "graph.nn.contrib_batch_matmul_pack" and "graph.transpose" in kernel
    else:
        assert len(kernels) == 2
    inputs = _pv_inputs(rng, heads, q_len, kv_len, dim)
    ref = lathe.interpret(module, **inputs)
    _agrees(module, inputs, ref, threads)
    _agrees(module, inputs, ref, threads, OFF)
    fresh = _pv_inputs(rng, heads, q_len, kv_len, dim)  # nothing kept from the first run
    _agrees(module, fresh, lathe.interpret(module, **fresh), threads)


def test_the_option_keeps_the_pack_kernel():
    """fuse-ops{batch_pack=false} (what Lathe did before) keeps V's packing a kernel of its own."""
    assert pipeline_for(3) != OFF
    cm = lathe.compile(parse_relay(_pv_source(12, 16, 64, 64)), num_threads=2, pipeline=OFF)
    assert "@fused_reshape_transpose_reshape_transpose_0" in str(cm.loop_module)


def test_a_weight_shared_by_the_batch_keeps_its_pack_kernel(rng):
    """One V for all 12 batch entries would be packed once per entry in the kernel: its
    packing stays a kernel of its own."""
    src = (
        "def @main(%p: Tensor[(12, 20, 64), float32], %v: Tensor[(1, 64, 128), float32]) {"
        " nn.batch_matmul(%p, %v, transpose_b=False) }"
    )
    module = parse_relay(src)
    assert len(_kernels(module)) == 2
    inputs = {
        "p": rng.standard_normal((12, 20, 64)).astype(np.float32),
        "v": rng.standard_normal((1, 64, 128)).astype(np.float32),
    }
    _agrees(module, inputs, lathe.interpret(module, **inputs))


def test_an_epilogue_joins_too(rng):
    """An elementwise op after the product joins the same kernel, applied to the register tiles."""
    module = parse_relay(_pv_source(12, 21, 64, 64, "nn.relu"))
    (kernel,) = _kernels(module)
    assert kernel[-2:] == ["graph.nn.contrib_batch_matmul_pack", "graph.nn.relu"]
    inputs = _pv_inputs(rng, 12, 21, 64, 64)
    inputs["v"] -= 0.5  # some outputs negative
    _agrees(module, inputs, lathe.interpret(module, **inputs))


@pytest.mark.parametrize(
    "config",
    [
        "dense_pack:tile_i=5,tile_j=16",
        "dense_pack:cache_i=2,cache_j=2,unroll_k=4",
        "dense_pack:tile_k=32,unroll_k=2",
        f"dense_pack:tile_i=10,tile_j={3 * HOST_LANES},cache_i=4",
    ],
)
def test_the_knobs_replay(config, rng):
    """The template's knobs with the packing inside, 40 queries of 96-wide heads (3 panels of
    32): register tiles of 5 and 10 rows, 16 columns and three vectors, tasks of two panels (a partial
    last task in each head), k split."""
    module = parse_relay(_pv_source(8, 40, 96, 96))
    inputs = _pv_inputs(rng, 8, 40, 96, 96)
    _agrees(with_kernel_config(module, config, "batch_matmul"), inputs, lathe.interpret(module, **inputs))


@pytest.mark.parametrize("knob", ["order=ij", "parallel=fused", "block_k=32"])
def test_the_structure_is_fixed(knob):
    """The (head, panel) loop stays the outermost, parallel one and k is not blocked, as for a
    2-D GEMM that packs its weight: other values are refused."""
    module = parse_relay(_pv_source(12, 32, 64, 64))
    with pytest.raises(LatheError, match=knob.split("=")[0]):
        lathe.compile(with_kernel_config(module, f"dense_pack:{knob}", "batch_matmul"), num_threads=2)


def test_bert_attention_like_onnxruntime(rng):
    """BERT's self-attention as the ONNX exporter writes it (Q, K, V denses with bias, split into
    heads, scale, mask, softmax, P.V, merge): P.V's kernel holds V's split and packing (after
    V's bias, which stays in its dense), and the model agrees with ONNX Runtime."""
    from onnx import TensorProto, helper, numpy_helper

    heads, dim, seq = 12, 64, 40
    hidden = heads * dim
    w = {n: (rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)).astype(np.float32) for n in ("wq", "wk", "wv")}
    b = {n: rng.standard_normal(hidden).astype(np.float32) for n in ("bq", "bk", "bv")}
    nodes = []
    for x, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        nodes += [
            helper.make_node("MatMul", ["x", f"w{x}"], [f"{x}m"]),
            helper.make_node("Add", [f"{x}m", f"b{x}"], [f"{x}b"]),
            helper.make_node("Reshape", [f"{x}b", "heads"], [f"{x}r"]),
            helper.make_node("Transpose", [f"{x}r"], [f"{x}t"], perm=perm),
        ]
    nodes += [
        helper.make_node("MatMul", ["qt", "kt"], ["s"]),
        helper.make_node("Div", ["s", "scale"], ["sd"]),
        helper.make_node("Add", ["sd", "mask"], ["sm"]),
        helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "vt"], ["c"]),
        helper.make_node("Transpose", ["c"], ["ct"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ct", "merged"], ["y"]),
    ]
    inits = [numpy_helper.from_array(a, n) for n, a in {**w, **b}.items()] + [
        numpy_helper.from_array(np.array([1, seq, heads, dim], np.int64), "heads"),
        numpy_helper.from_array(np.array([1, seq, hidden], np.int64), "merged"),
        numpy_helper.from_array(np.array(np.sqrt(dim), np.float32), "scale"),
    ]
    graph = helper.make_graph(
        nodes,
        "bert_attention",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, hidden]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 1, seq]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    from lathe.passes.fold_constant import bind_params

    module, params = lathe.from_onnx(model)
    pv = [k for k in _kernels(bind_params(module.clone(), params)) if "graph.nn.contrib_batch_matmul_pack" in k]
    assert ["graph.reshape", "graph.transpose"] * 2 + ["graph.nn.contrib_batch_matmul_pack"] in pv
    mask = np.zeros((1, 1, 1, seq), np.float32)
    mask[..., seq - seq // 4 :] = -10000.0
    feeds = {"x": rng.standard_normal((1, seq, hidden)).astype(np.float32), "mask": mask}
    assert_like_onnxruntime(model, module, params, [feeds], rtol=1e-4, atol=1e-5)
