"""Attention's scores and their softmax as one kernel (fuse-ops' attention rule, the
dense_pack template's row epilogue): the same results as the reference interpreter on fresh
inputs, at sequence lengths whose rows no register tile divides, with and without the scale
and mask between them, and the cases the rule must leave alone."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err, with_kernel_config

import lathe
from lathe.dialects import make_context
from lathe.pipelines import GRAPH_PIPELINES, build_pipeline
from lathe.textual_ir.parser import parse_relay


def _kernel_funcs(src: str) -> list:
    from xdsl.dialects import func

    from lathe.dialects.functions import is_kernel

    m = parse_relay(src)
    build_pipeline(GRAPH_PIPELINES[3]).apply(make_context(), m)
    return [f for f in m.ops if isinstance(f, func.FuncOp) and is_kernel(f)]


def _kernels(src: str) -> dict[str, list[str]]:
    """Each kernel of the program after the -O3 graph pipeline, with the graph ops fused into it."""
    return {
        f.sym_name.data: [o.name for o in f.body.block.ops if o.name.startswith("graph.")] for f in _kernel_funcs(src)
    }


def _copies(src: str) -> list[int]:
    """The element counts of the kernels that only reshape (a copy each)."""
    return [
        int(np.prod(f.function_type.outputs.data[0].get_shape()))
        for f in _kernel_funcs(src)
        if [o.name for o in f.body.block.ops if o.name.startswith("graph.")] == ["graph.reshape"]
    ]


def _attention(q_len: int, kv_len: int, scaled: bool, heads: int = 3) -> str:
    scores = "nn.batch_matmul(%q, %k)"
    if scaled:
        scores = f"add(divide({scores}, 8f), %mask)"
    mask = f", %mask: Tensor[(1, 1, {kv_len}), float32]" if scaled else ""
    return (
        f"def @main(%q: Tensor[({heads}, {q_len}, 64), float32], %k: Tensor[({heads}, {kv_len}, 64), float32]{mask}) {{"
        f" nn.softmax({scores}, axis=-1) }}"
    )


def _inputs(rng, q_len: int, kv_len: int, scaled: bool, heads: int = 3) -> dict[str, np.ndarray]:
    inputs = {
        "q": rng.standard_normal((heads, q_len, 64)).astype(np.float32),
        "k": rng.standard_normal((heads, kv_len, 64)).astype(np.float32),
    }
    if scaled:  # BERT's additive mask: 0 for a token, -10000 for padding at the end
        mask = np.zeros((1, 1, kv_len), np.float32)
        mask[..., kv_len - kv_len // 4 :] = -10000.0
        inputs["mask"] = mask
    return inputs


def _check(src: str, inputs: dict, **compile_options) -> None:
    module = parse_relay(src)
    ref = lathe.interpret(module, **inputs)
    got = lathe.compile(module, num_threads=2, **compile_options).run(**inputs)
    assert got.shape == ref.shape
    assert max_rel_err(got, ref) < 2e-5
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("seq", [1, 5, 17, 63, 129])
def test_attention_rows_agree_at_odd_lengths(seq, scaled, rng):
    """seq queries against 32 keys (a packed batch_matmul, so fused): rows of 1, 5, 17, 63
    and 129 leave a partial task of rows at the end."""
    _check(_attention(seq, 32, scaled), _inputs(rng, seq, 32, scaled))


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("seq", [1, 5, 17, 63, 129])
def test_self_attention_agrees_at_odd_lengths(seq, scaled, rng):
    """Self-attention (keys = queries in number): lengths no vector divides are not packed,
    hence not fused, and must agree as before."""
    _check(_attention(seq, seq, scaled), _inputs(rng, seq, seq, scaled))


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("seq", [16, 64, 128, 384])
def test_packed_self_attention_is_one_kernel_and_agrees(seq, scaled, rng):
    kernels = _kernels(_attention(seq, seq, scaled))
    fused = [ops for ops in kernels.values() if "graph.nn.softmax" in ops]
    assert len(fused) == 1 and "graph.nn.contrib_batch_matmul_pack" in fused[0]
    if scaled:
        assert {"graph.divide", "graph.add"} <= set(fused[0])
    _check(_attention(seq, seq, scaled), _inputs(rng, seq, seq, scaled))


@pytest.mark.parametrize("config", ["dense_pack:tile_i=4,cache_i=2", "dense_pack:tile_i=2,tile_j=16,cache_i=4"])
def test_row_epilogue_knobs_agree(config, rng):
    """Other register tiles and tasks of several row tiles (the tuner's space), 17 rows."""
    src = _attention(17, 64, True)
    module = parse_relay(src)
    inputs = _inputs(rng, 17, 64, True)
    ref = lathe.interpret(module, **inputs)
    got = lathe.compile(with_kernel_config(module, config, "softmax"), num_threads=2).run(**inputs)
    assert max_rel_err(got, ref) < 2e-5


def test_softmax_over_another_axis_is_not_fused(rng):
    src = (
        "def @main(%q: Tensor[(3, 32, 64), float32], %k: Tensor[(3, 32, 64), float32]) {"
        " nn.softmax(nn.batch_matmul(%q, %k), axis=1) }"
    )
    assert not any("graph.nn.softmax" in ops and len(ops) > 1 for ops in _kernels(src).values())
    _check_axis1(src, rng)


def _check_axis1(src: str, rng) -> None:
    module = parse_relay(src)
    inputs = _inputs(rng, 32, 32, False)
    ref = lathe.interpret(module, **inputs)
    got = lathe.compile(module, num_threads=2).run(**inputs)
    assert max_rel_err(got, ref) < 2e-5


def test_scores_that_are_also_returned_are_not_fused(rng):
    """The scores escape (returned beside the probabilities): the softmax stays a kernel of its own."""
    src = (
        "def @main(%q: Tensor[(3, 32, 64), float32], %k: Tensor[(3, 32, 64), float32]) {"
        " %0 = nn.batch_matmul(%q, %k); (%0, nn.softmax(%0, axis=-1)) }"
    )
    kernels = _kernels(src)
    assert ["graph.nn.softmax"] in kernels.values()
    module = parse_relay(src)
    inputs = _inputs(rng, 32, 32, False)
    ref = lathe.interpret(module, **inputs)
    got = lathe.compile(module, num_threads=2).run(**inputs)
    for g, r in zip(got, ref):
        assert max_rel_err(g, r) < 2e-5


def _onnx_style_attention(seq: int, heads: int = 3) -> str:
    """Attention as ONNX exports it: scores reshaped to [1, heads, q, k] for the scale, the
    [1, 1, 1, k] mask and the softmax, then back to [heads, q, k] for the product with V."""
    return (
        f"def @main(%q: Tensor[({heads}, {seq}, 64), float32], %k: Tensor[({heads}, {seq}, 64), float32],"
        f" %v: Tensor[({heads}, {seq}, 64), float32], %mask: Tensor[(1, 1, 1, {seq}), float32]) {{"
        f" %0 = reshape(nn.batch_matmul(%q, %k), newshape=[1, {heads}, {seq}, {seq}]);"
        " %1 = nn.softmax(add(divide(%0, 8f), %mask), axis=-1);"
        f" nn.batch_matmul(reshape(%1, newshape=[{heads}, {seq}, {seq}]), %v, transpose_b=False) }}"
    )


@pytest.mark.parametrize("seq", [5, 17, 32, 64, 128])
def test_onnx_style_attention_agrees(seq, rng):
    """sink-leading-reshapes takes the reshapes out from between the scores and their softmax
    (where a vector divides the length, the scores, scale, mask and softmax are then one
    kernel); either way the results are the interpreter's."""
    src = _onnx_style_attention(seq)
    inputs = _inputs(rng, seq, seq, True)
    inputs["v"] = rng.standard_normal((3, seq, 64)).astype(np.float32)
    inputs["mask"] = inputs["mask"].reshape(1, 1, 1, seq)
    if seq % 16 == 0:
        fused = [ops for ops in _kernels(src).values() if "graph.nn.softmax" in ops]
        assert fused == [
            ["graph.nn.contrib_batch_matmul_pack", "graph.constant", "graph.divide", "graph.add", "graph.nn.softmax"]
        ]
    assert max(_copies(src), default=0) <= seq  # the mask's, not the scores' (3 x seq x seq)
    module = parse_relay(src)
    ref = lathe.interpret(module, **inputs)
    got = lathe.compile(module, num_threads=2).run(**inputs)
    assert max_rel_err(got, ref) < 2e-5


@pytest.mark.parametrize("rows", [1, 7, 16])
def test_dense_between_reshapes_takes_its_gelu(rows, rng):
    """ONNX's MatMul on [1, rows, 8] (a dense between two reshapes) with bias and GELU: the
    epilogue sinks above the reshape back and fuses into the dense's kernel."""
    src = (
        f"def @main(%x: Tensor[(1, {rows}, 8), float32], %w: Tensor[(32, 8), float32], %b: Tensor[(32), float32]) {{"
        f" %0 = reshape(nn.dense(reshape(%x, newshape=[{rows}, 8]), %w), newshape=[1, {rows}, 32]);"
        " %1 = add(%0, %b);"
        " multiply(multiply(%1, 0.5f), add(erf(divide(%1, 1.41421f)), 1f)) }"
    )
    assert any("graph.nn.contrib_dense_pack" in ops and "graph.erf" in ops for ops in _kernels(src).values())
    inputs = {"x": rng.standard_normal((1, rows, 8)).astype(np.float32)}
    params = {"w": rng.standard_normal((32, 8)).astype(np.float32), "b": rng.standard_normal(32).astype(np.float32)}
    module = parse_relay(src)
    ref = lathe.interpret(module, params=params, **inputs)
    got = lathe.compile(module, params=params, num_threads=2).run(**inputs)
    assert max_rel_err(got, ref) < 2e-5
