import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from lathe.testing.compare import max_relative_error

os.environ.setdefault("LATHE_NUM_THREADS", "2")
# A kernel cache of the session's own, always: not the user's ~/.cache/lathe, nor a LATHE_CACHE_DIR
# they set for their own work (tests write thousands of kernels). Subprocesses inherit it.
TEST_CACHE_DIR = tempfile.mkdtemp(prefix="lathe-test-cache-")
os.environ["LATHE_CACHE_DIR"] = TEST_CACHE_DIR


def _host_lanes() -> int:
    from lathe.backends.registry import resolve_target

    return resolve_target("llvm")[1].vector_lanes


# f32 lanes of this machine's vectors (16 with AVX-512, 8 with AVX2): the knob values a test
# compiles and runs here must be ones the host's templates allow.
HOST_LANES = _host_lanes()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(TEST_CACHE_DIR, ignore_errors=True)


@pytest.fixture
def direct_convolutions(monkeypatch):
    """The direct conv2d template on every layer: winograd-conv's rule takes none (for tests of
    the direct template's choices on 3x3 stride-1 layers the rule would give to Winograd)."""
    import lathe.passes.winograd as winograd

    monkeypatch.setattr(winograd, "WINOGRAD_MIN_OUTPUT", 1 << 30)


@pytest.fixture
def rng(request):
    """Fresh random inputs each run; the seed is printed when a test fails."""
    seed = secrets.randbits(32)
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: {seed}")
    return np.random.default_rng(seed)


def max_rel_err(got, ref) -> float:
    assert np.shape(got) == np.shape(ref), (np.shape(got), np.shape(ref))
    return max_relative_error(got, ref)


BIN = Path(sys.executable).parent  # the venv's console scripts (lathe, lathe-opt)

# nested results holding a kernel output twice, an input and a constant
TUPLES = """def @main(%x: Tensor[(4, 8), float32], %y: Tensor[(4, 8), float32]) {
  %0 = add(%x, %y);
  %1 = multiply(%x, %y);
  %2 = (%0, %1);
  %3 = %2.1;
  (%2, exp(%3), %x, %3, ones(shape=[3], dtype="float32"))
}"""


def lathe_cli(*args, env=None):
    return subprocess.run([str(BIN / "lathe"), *map(str, args)], capture_output=True, text=True, env=env, check=False)


def assert_matches(got, ref, rtol=2e-5):
    assert type(got) is type(ref)
    if isinstance(ref, tuple):
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            assert_matches(g, r, rtol)
        return
    assert (got.shape, got.dtype) == (ref.shape, ref.dtype)
    np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * max(1.0, float(np.abs(ref).max())))


# the graph passes up to and around alter-op-layout, as -O3 runs them (tests of layout rewrites)
LAYOUT_PIPELINE = (
    "simplify-inference,expand-split,fold-constant,alter-op-layout,fold-constant,canonicalize,"
    "eliminate-common-subexpr,dead-code-elimination"
)


def graph_ops_after_layout(src: str, params: dict) -> list:
    """The graph ops of a Relay program with `params` bound, after LAYOUT_PIPELINE."""
    from lathe.dialects import graph, make_context
    from lathe.passes.fold_constant import bind_params
    from lathe.pipelines import build_pipeline
    from lathe.textual_ir.parser import parse_relay

    m = bind_params(parse_relay(src), params)
    build_pipeline(LAYOUT_PIPELINE).apply(make_context(), m)
    return [op for op in m.walk() if isinstance(op, graph.GraphOp)]


def assert_compiles_as_interpreted(src: str, params: dict, inputs: dict, tol: float = 2e-5) -> None:
    """The compiled program agrees with the reference interpreter on these inputs."""
    import lathe
    from lathe.textual_ir.parser import parse_relay

    module = parse_relay(src)
    ref = lathe.interpret(module, params=params, **inputs)
    got = lathe.compile(module, params=params, num_threads=2).run(**inputs)
    assert max_rel_err(got, ref) < tol


def assert_like_onnxruntime(model, module, params, feeds_list, rtol=1e-5, atol=1e-6, exact=False):
    """Each feed through the interpreter and through one compiled module gives onnxruntime's
    outputs, their shapes and dtypes included. Returns the compiled module."""
    import onnxruntime as ort

    import lathe

    compiled = lathe.compile(module, params=params)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        ref = session.run(None, feeds)
        for got in (lathe.interpret(module, params=params, **feeds), compiled.run(**feeds)):
            got = list(got) if isinstance(got, tuple) else [got]
            assert len(got) == len(ref)
            for g, r in zip(got, ref):
                assert g.shape == r.shape and g.dtype == r.dtype, (g.shape, r.shape, g.dtype, r.dtype)
                if exact:
                    np.testing.assert_array_equal(g, r)
                else:
                    np.testing.assert_allclose(g, r, rtol=rtol, atol=atol)
    return compiled


# A small dense + bias + relu model the tuner's tests tune, check and replay.
DENSE_BIAS_RELU = """def @main(%x: Tensor[(16, 64), float32], %w: Tensor[(48, 64), float32], %b: Tensor[(48), float32]) {
  %0 = nn.dense(%x, %w);
  %1 = nn.bias_add(%0, %b);
  nn.relu(%1)
}"""


@pytest.fixture
def dense(rng):
    from lathe.api import parse_source

    module = parse_source(DENSE_BIAS_RELU, "dense.lathe")
    params = {
        "w": rng.standard_normal((48, 64)).astype(np.float32),
        "b": rng.standard_normal(48).astype(np.float32),
    }
    return module, params


def attention_source(heads: int, q_len: int, kv_len: int, dim: int, scaled: bool) -> str:
    """softmax(Q K^T) over heads, with BERT's scale and mask where `scaled` (the attention tests' program)."""
    scores = "nn.batch_matmul(%q, %k)"
    mask = ""
    if scaled:
        scores = f"add(divide({scores}, 8f), %mask)"
        mask = f", %mask: Tensor[(1, 1, {kv_len}), float32]"
    return (
        f"def @main(%q: Tensor[({heads}, {q_len}, {dim}), float32], %k: Tensor[({heads}, {kv_len}, {dim}), float32]{mask}) {{"
        f" nn.softmax({scores}, axis=-1) }}"
    )


def attention_inputs(rng, heads: int, q_len: int, kv_len: int, dim: int, scaled: bool) -> dict[str, np.ndarray]:
    inputs = {
        "q": rng.standard_normal((heads, q_len, dim)).astype(np.float32),
        "k": rng.standard_normal((heads, kv_len, dim)).astype(np.float32),
    }
    if scaled:  # BERT's padding mask: -10000 on the last quarter of the keys
        mask = np.zeros((1, 1, kv_len), np.float32)
        mask[..., kv_len - kv_len // 4 :] = -10000.0
        inputs["mask"] = mask
    return inputs


def with_kernel_config(module, config: str, kernel_part: str):
    """`module` lowered to kernels at -O3 with schedule `config` set on its one kernel whose
    name contains `kernel_part` (what `lathe tune` records do, for one knob setting)."""
    from xdsl.dialects import func
    from xdsl.dialects.builtin import StringAttr

    from lathe.dialects import make_context
    from lathe.dialects.functions import is_kernel
    from lathe.lowering.schedule_builder import CONFIG_ATTR
    from lathe.pipelines import GRAPH_PIPELINES, build_pipeline

    m = module.clone()
    build_pipeline(GRAPH_PIPELINES[3]).apply(make_context(), m)
    (kernel,) = [f for f in m.ops if isinstance(f, func.FuncOp) and is_kernel(f) and kernel_part in f.sym_name.data]
    kernel.attributes[CONFIG_ATTR] = StringAttr(config)
    return m
