"""The OpenCL backend (a plug-in, reached only through the registry) on PoCL: models and random
ops against the reference interpreter, its OpenCL C, its errors; skipped without pyopencl/PoCL."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import lathe
from lathe.api import parse_source
from lathe.backends.registry import resolve_target
from lathe.errors import LatheError
from lathe.testing.op_cases import worst_rel_err

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND, TARGET = resolve_target("opencl")
RUNS = BACKEND.capabilities(TARGET).runs_here
needs_opencl = pytest.mark.skipif(not RUNS, reason=f"no OpenCL device: {BACKEND.status()}")


def _check(source: str, rng: np.random.Generator, rtol: float = 1e-5) -> lathe.CompiledModule:
    module = parse_source(source, "case.lathe")
    fn = next(iter(module.ops))
    inputs = {a.name_hint: rng.standard_normal(a.type.get_shape()).astype(np.float32) for a in fn.body.block.args}
    ref = lathe.interpret(module, **inputs)
    compiled = lathe.compile(module, target="opencl")
    err = worst_rel_err(compiled.run(**inputs), ref)
    assert err <= rtol, f"max relative error {err:.2e}"
    return compiled


def test_status_and_target_options_without_a_device():
    assert isinstance(BACKEND.status(), str)
    with pytest.raises(LatheError, match="unknown option '-mcpu'"):
        BACKEND.parse_target("opencl", {"-mcpu": "x"})
    with pytest.raises(LatheError, match="device index"):
        BACKEND.parse_target("opencl", {"-device": "gpu"})
    options = BACKEND.graph_pass_options(TARGET)
    assert options["apply-default-schedule"]["gpu"] is True
    assert options["alter-op-layout"] == {"vector_lanes": 1}


def test_source_binds_every_kernel_to_work_groups():
    """Rendering needs no device: bound loops become group/local ids, buffers (base, offset) pairs."""
    module = parse_source(
        "def @main(%x: Tensor[(5, 300), float32]) { nn.softmax(%x) }",
        "softmax.lathe",
    )
    from lathe.pipelines import pipeline_for, with_pass_options

    pipeline = with_pass_options(pipeline_for(3, module), BACKEND.graph_pass_options(TARGET))
    source = BACKEND.render(lathe.lower(module, pipeline=pipeline), TARGET)
    assert "get_group_id(0)" in source and "get_local_id(0)" in source
    assert "__global float *restrict a0 = (__global float *)((__global char *)a0_ + a0_o);" in source
    # softmax's three stages (max, sum of exp, quotient) are three launches of one Lathe kernel
    assert source.count("__kernel void lathe_k0_") == 3


@needs_opencl
def test_mlp_cli_check_agrees_with_the_interpreter():
    out = subprocess.run(
        [sys.executable, "-m", "lathe.tools.lathe_cli", "run", "examples/mlp.lathe", "--target", "opencl", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "check: max relative error" in out.stdout and ": OK" in out.stdout


@needs_opencl
def test_random_shape_ops(rng):
    """The op families the GPU templates serve, on fresh random shapes (odd sizes included)."""
    n, m, k = (int(x) for x in rng.integers(1, 70, size=3))
    c, h = int(rng.integers(1, 9)), int(rng.integers(5, 17))
    cases = [
        f"def @main(%x: Tensor[({n}, {m}), float32]) {{ nn.softmax(%x) }}",
        f"def @main(%x: Tensor[({n}, {m}), float32], %g: Tensor[({m}), float32], %b: Tensor[({m}), float32]) "
        f"{{ nn.layer_norm(%x, %g, %b) }}",
        f"def @main(%x: Tensor[({n}, {m}), float32]) {{ mean(%x, axis=[1]) }}",
        f"def @main(%x: Tensor[({n}, {k}), float32], %w: Tensor[({m}, {k}), float32]) {{ nn.relu(nn.dense(%x, %w)) }}",
        f"def @main(%x: Tensor[(2, {n}, {k}), float32], %y: Tensor[(2, {m}, {k}), float32]) {{ nn.batch_matmul(%x, %y) }}",
        f"def @main(%x: Tensor[(1, {c}, {h}, {h}), float32], %w: Tensor[(4, {c}, 3, 3), float32]) "
        f"{{ nn.conv2d(%x, %w, padding=[1, 1, 1, 1]) }}",
        f"def @main(%x: Tensor[(1, {c}, {h}, {h}), float32], %w: Tensor[({c}, 1, 3, 3), float32]) "
        f"{{ nn.conv2d(%x, %w, padding=[1, 1, 1, 1], groups={c}) }}",
        f"def @main(%x: Tensor[(1, {c}, {h}, {h}), float32]) {{ nn.max_pool2d(%x, pool_size=[3, 3], strides=[2, 2]) }}",
        f"def @main(%x: Tensor[(1, {c}, {h}, {h}), float32]) {{ nn.global_avg_pool2d(%x) }}",
    ]
    for source in cases:
        _check(source, rng, rtol=1e-4)


@needs_opencl
def test_small_zoo_models_pass_lathe_run_check_through_the_cli(rng):
    """Issue 16's bar as a user meets it, on two small zoo models (convolutions, pooling and batch
    norm; embeddings and recurrent cells): benchmarks/zoo_check.py writes each as ONNX, imports it
    with `lathe import` and runs `lathe run --target opencl --check` on fresh random inputs.
    The same command on all ten models: docs/backends.md, "Devices"."""
    seed = str(int(rng.integers(2**31)))
    script = os.path.join(ROOT, "benchmarks", "zoo_check.py")
    out = subprocess.run(
        [sys.executable, script, "--target", "opencl", "--models", "resnet18,lstm_lm", "--seed", seed],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:3] for line in out.stdout.splitlines()[2:4]}
    assert set(rows) == {"resnet18", "lstm_lm"} and all(status == "ok" for status, _ in rows.values()), out.stdout
    assert all(float(err) <= 1e-4 for _, err in rows.values())
    assert "2 of 2 agree with the interpreter" in out.stdout


@needs_opencl
def test_outputs_do_not_alias_between_runs_and_out_is_written():
    rng = np.random.default_rng(3)
    compiled = _check("def @main(%x: Tensor[(3, 7), float32]) { nn.relu(%x) }", rng)
    a, b = rng.standard_normal((2, 3, 7)).astype(np.float32)
    first = compiled.run(a)
    second = compiled.run(b)
    np.testing.assert_array_equal(first, np.maximum(a, 0))
    np.testing.assert_array_equal(second, np.maximum(b, 0))
    out = np.empty((3, 7), np.float32)
    assert compiled.run(a, out=out) is out
    np.testing.assert_array_equal(out, np.maximum(a, 0))


# nn.matmul then nn.batch_matmul, compiled and run in turn, as the full conformance suite meets them
_MATMUL_THEN_BATCH_MATMUL = """
import sys
import numpy as np
import lathe
from lathe.api import parse_source
from lathe.testing.op_cases import worst_rel_err

CASES = [
    "def @main(%a: Tensor[(19, 16), float32], %b: Tensor[(19, 13), float32]) "
    "{ nn.matmul(%a, %b, transpose_a=True, transpose_b=False) }",
    "def @main(%a: Tensor[(1, 13, 5), float32], %b: Tensor[(1, 16, 5), float32]) "
    "{ nn.batch_matmul(%a, %b, transpose_a=False, transpose_b=True) }",
]
rng = np.random.default_rng(int(sys.argv[1]))
worst = 0.0
for _ in range(3):
    for source in CASES:
        module = parse_source(source, "case.lathe")
        fn = next(iter(module.ops))
        shapes = {a.name_hint: a.type.get_shape() for a in fn.body.block.args}
        inputs = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
        compiled = lathe.compile(module, target="opencl")
        for _ in range(3):
            worst = max(worst, worst_rel_err(compiled.run(**inputs), lathe.interpret(module, **inputs)))
print(f"worst relative error {worst!r}")
"""


@needs_opencl
def test_one_block_stage_with_barriers_leaves_the_heap_intact(rng):
    """A one-block stage with barriers (this batch_matmul's 13 x 16 output is one 32 x 32 tile)
    used to be launched as two blocks, the second idle behind a block-uniform `if`; PoCL 3.0
    miscompiled the barriers inside it and the thread guard after them, writing past the output
    and corrupting the host's heap (docs/backends.md, OpenCL). Now a blockIdx loop of one
    iteration (cleanup-loops keeps it): glibc's heap checks (MALLOC_CHECK_=3) and PoCL compiling
    afresh (no kernel cache) must see a clean exit, the results agree with the interpreter."""
    env = dict(os.environ, MALLOC_CHECK_="3", POCL_KERNEL_CACHE="0")
    seed = str(int(rng.integers(2**31)))
    code = _MATMUL_THEN_BATCH_MATMUL
    out = subprocess.run(
        [sys.executable, "-c", code, seed], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, f"exit {out.returncode}: " + out.stderr[-3000:]
    assert float(out.stdout.split("worst relative error ")[1]) <= 1e-5, out.stdout


def test_bound_loop_inside_an_unbound_loop_is_a_located_error():
    text = """
func.func private @k(%a: memref<4x8xf32>) attributes {lathe.kernel} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %z = arith.constant 0.0 : f32
  scf.for %i = %c0 to %c4 step %c1 {
    scf.for %j = %c0 to %c8 step %c1 {
      memref.store %z, %a[%i, %j] : memref<4x8xf32>
    } {loop.annotation = #loop.annotation<bind = "threadIdx.x">}
  }
  func.return
}
"""
    from xdsl.parser import Parser

    from lathe.dialects import make_context

    module = Parser(make_context(), text).parse_module()
    with pytest.raises(LatheError, match="@k, a loop bound to threadIdx.x is inside an unbound loop"):
        BACKEND.render(module, TARGET)


# every op family the GPU templates and gpu_generic serve, and each dtype kind the backend claims
SUBSET_OPS = [
    "exp", "tanh", "erf", "cast", "add", "where", "nn.dense", "nn.contrib_dense_pack", "nn.batch_matmul",
    "nn.conv2d", "nn.conv2d_transpose", "nn.softmax", "nn.log_softmax", "nn.layer_norm", "nn.batch_norm",
    "nn.max_pool2d", "nn.avg_pool2d", "nn.global_avg_pool2d", "image.resize2d", "sum", "mean", "argmax",
    "transpose", "concatenate", "strided_slice", "take", "float64", "int8", "int64", "bool", "cast-to-int8",
    "float64:erf",
]  # fmt: skip


@needs_opencl
def test_conformance_suite_passes(rng):
    """`lathe backends --check opencl` in a fresh process (the suite forks; PoCL must start in
    the child): a subset of ops on shapes drawn from a fresh seed, and every schedule primitive.
    LATHE_CONFORMANCE=full runs all of it (about 70 s on PoCL)."""
    ops = None if os.environ.get("LATHE_CONFORMANCE") == "full" else SUBSET_OPS
    seed = int(rng.integers(2**31))
    code = (
        "import sys; from lathe.testing.backends import check_backend; "
        f"r = check_backend('opencl', ops={ops!r}, models=False, seed={seed}); sys.exit(0 if r.ok else 1)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " 0 failed" in out.stdout
