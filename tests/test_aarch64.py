"""AArch64 through the LLVM backend, run under qemu-user on an x86 host (docs/backends.md, "ARM
under emulation"): the artifact links with the cross compiler and its C example runs, `lathe run
--target 'llvm -mtriple=aarch64-linux-gnu' --check` and `lathe.compile(..., emulate=True)` agree
with the interpreter on fresh random inputs, a batch of runs shares one emulator process, the
conformance suite passes on a representative subset, and NEON code keeps its register tile in
the 32 vector registers. Without qemu-user and a cross compiler, the emulated tests skip (saying
what to install) and the CLI says the same in a LatheError."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import lathe
from lathe.api import parse_source
from lathe.backends.interface import EmulatedRun
from lathe.backends.llvm.emulation import QemuEmulator, missing_tools, packages
from lathe.backends.llvm.target import same_machine
from lathe.backends.registry import resolve_target
from lathe.errors import LatheError
from lathe.runtime import artifact
from lathe.testing.backends import check_backend

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp.lathe"
MLP_PARAMS = ROOT / "examples" / "mlp.params.npz"
TRIPLE = "aarch64-linux-gnu"
ARM = f"llvm -mtriple={TRIPLE}"
ON_ARM = os.uname().machine in ("aarch64", "arm64")
MISSING = missing_tools(TRIPLE)
emulated = pytest.mark.skipif(
    ON_ARM or MISSING is not None, reason="this machine is aarch64" if ON_ARM else str(MISSING)
)
from conftest import TUPLES, assert_matches, lathe_cli  # noqa: E402

# -- the CLI ------------------------------------------------------------------------------------


@emulated
def test_lathe_run_checks_the_mlp_under_emulation_and_says_so(tmp_path):
    x = np.random.default_rng(7).standard_normal((1, 784)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    r = lathe_cli(
        "run", MLP, "--params", MLP_PARAMS, "--inputs", tmp_path / "in.npz", "--target", ARM, "--check",
        "--output", tmp_path / "y.npz",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "runs emulated (qemu-aarch64 -L " in r.stderr and "not its speed" in r.stderr
    assert re.search(r"check: max relative error \S+ against the reference interpreter .*: OK", r.stdout)
    module = lathe.load(MLP)
    ref = lathe.interpret(module, params=lathe.load_params(MLP_PARAMS), x=x)
    assert_matches(np.load(tmp_path / "y.npz")["output"], ref)


def test_timing_an_emulated_run_is_refused_before_compiling():
    for flag in ("--bench=3", "--profile"):
        r = lathe_cli("run", MLP, "--target", ARM, flag)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "does not run natively on this machine" in r.stderr and "say nothing" in r.stderr


def test_without_qemu_and_a_cross_compiler_the_cli_names_the_packages(tmp_path):
    if ON_ARM:
        pytest.skip("aarch64 runs natively here")
    env = {**os.environ, "PATH": str(tmp_path)}  # neither qemu-aarch64 nor aarch64-linux-gnu-gcc on it
    r = lathe_cli("run", MLP, "--target", ARM, "--check", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "qemu-aarch64" in r.stderr and "aarch64-linux-gnu-gcc" in r.stderr
    assert "apt-get install " + " ".join(packages("aarch64")) in r.stderr
    assert packages("aarch64") == ("qemu-user", "gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross")


# -- the Python API -----------------------------------------------------------------------------


def test_a_foreign_triple_needs_emulate_and_the_error_says_how():
    if ON_ARM:
        pytest.skip("aarch64 runs natively here")
    module = parse_source("def @main(%a: Tensor[(4), float32]) { negative(%a) }", "neg.lathe")
    with pytest.raises(LatheError, match="cannot JIT") as e:
        lathe.compile(module, target=ARM)
    assert "emulate=True" in e.value.note and "lathe run --target" in e.value.note


@emulated
def test_compile_with_emulate_runs_nested_results_and_out(rng):
    module = parse_source(TUPLES, "tuples.lathe")
    cm = lathe.compile(module, target=ARM, emulate=True)
    assert cm.emulated and cm.input_names == ["x", "y"]
    x, y = (rng.standard_normal((4, 8)).astype(np.float32) for _ in range(2))
    ref = lathe.interpret(module, x=x, y=y)
    assert_matches(cm.run(x, y), ref)
    assert_matches(cm.run(y=y, x=x.astype(np.float16)), lathe.interpret(module, x=x.astype(np.float16), y=y))
    out = (
        (np.empty((4, 8), np.float32), np.empty((4, 8), np.float32)),
        *(np.empty(s, np.float32) for s in [(4, 8), (4, 8), (4, 8), (3,)]),
    )
    assert cm.run(x, y, out=out) is not None
    assert_matches(out, ref)
    with pytest.raises(LatheError, match=r"input 'x' has shape \(4, 7\)"):
        cm.run(np.zeros((4, 7), np.float32), y)
    with pytest.raises(LatheError, match="timings under emulation"):
        cm.benchmark(3)
    with pytest.raises(LatheError, match="timings under emulation"):
        cm.profile(x, y)


@emulated
def test_one_emulator_process_runs_a_batch_of_models(rng):
    """Two models, three runs, one qemu process: the runner opens each library in turn."""
    dense = parse_source(
        "def @main(%x: Tensor[(5, 19), float32], %w: Tensor[(24, 19), float32]) { nn.relu(nn.dense(%x, %w)) }",
        "dense.lathe",
    )
    ints = parse_source("def @main(%a: Tensor[(3, 7), int64]) { sum(multiply(%a, %a), axis=[1]) }", "ints.lathe")
    a = lathe.compile(dense, target=ARM, emulate=True).executor
    b = lathe.compile(ints, target=ARM, emulate=True).executor
    x, w = rng.standard_normal((5, 19)).astype(np.float32), rng.standard_normal((24, 19)).astype(np.float32)
    n = rng.integers(-1000, 1000, (3, 7))
    jobs = [a.job(x, w), b.job(n), a.job(x * 2, w)]
    assert all(isinstance(j, EmulatedRun) for j in jobs)
    got = a.emulator.run(jobs, num_threads=2)
    assert_matches(got[0][0], lathe.interpret(dense, x=x, w=w))
    np.testing.assert_array_equal(got[1][0], (n * n).sum(axis=1))
    assert_matches(got[2][0], lathe.interpret(dense, x=x * 2, w=w))


@emulated
def test_a_failing_emulated_run_is_a_lathe_error(tmp_path):
    emulator = QemuEmulator(TRIPLE)
    (tmp_path / "model.so").write_bytes(b"not a library")
    with pytest.raises(LatheError, match="the emulated run failed") as e:
        emulator.run([EmulatedRun(str(tmp_path / "model.so"), str(tmp_path / "w.bin"), [], [])])
    assert "cannot open" in e.value.note


def test_the_hosts_triple_without_its_vendor_runs_natively(rng):
    """On an ARM host `-mtriple=aarch64-linux-gnu` is the host (LLVM says aarch64-unknown-linux-gnu):
    it runs through the JIT, not under emulation; here the same holds for this host's arch."""
    assert same_machine("aarch64-linux-gnu", "aarch64-unknown-linux-gnu")
    assert same_machine("arm64-apple-darwin", "aarch64-apple-darwin")
    assert not same_machine("aarch64-linux-gnu", "x86_64-unknown-linux-gnu")
    assert not same_machine("x86_64-pc-windows-msvc", "x86_64-unknown-linux-gnu")
    module = parse_source("def @main(%a: Tensor[(37), float32]) { exp(%a) }", "exp.lathe")
    cm = lathe.compile(module, target=f"llvm -mtriple={artifact.host_arch()}-linux-gnu", emulate=True)
    assert not cm.emulated and cm.kernels is not None
    a = rng.standard_normal(37).astype(np.float32)
    assert_matches(cm.run(a), lathe.interpret(module, a=a))


# -- the artifact and its C example -------------------------------------------------------------


@emulated
def test_the_aarch64_artifact_and_its_c_example_run_under_qemu(tmp_path):
    out = tmp_path / "arm.d"
    r = lathe_cli("compile", MLP, "--params", MLP_PARAMS, "--target", ARM, "-o", out)
    assert r.returncode == 0, r.stderr
    assert (out / "model.so").read_bytes()[18:20] == (183).to_bytes(2, "little")  # ELF e_machine: AArch64
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["example"]["build"].startswith("aarch64-linux-gnu-gcc -O2 -o example example.c ./model.so")
    assert meta["example"]["build"] in (out / "README.txt").read_text()
    r = subprocess.run(meta["example"]["build"], shell=True, cwd=out, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    emulator = QemuEmulator(TRIPLE)
    r = subprocess.run(
        [emulator.qemu, "-L", emulator.sysroot, "./example", "weights.bin"],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("output: shape (1, 10) float32 sum "), r.stdout
    k = np.arange(784)
    x = (((k * 7) % 13 - 6) / 8.0).astype(np.float32).reshape(1, 784)  # example.c's inputs
    ref = lathe.interpret(lathe.load(MLP), params=lathe.load_params(MLP_PARAMS), x=x)
    total = float(r.stdout.split(" sum ")[1].split()[0])
    assert total == pytest.approx(float(ref.astype(np.float64).sum()), rel=1e-5, abs=1e-4)
    with pytest.raises(LatheError, match="compiled for aarch64-linux-gnu, and this machine is x86_64"):
        lathe.runtime.load(out)


# -- NEON defaults ------------------------------------------------------------------------------


def test_neon_targets_block_by_four_lanes_and_keep_the_register_tile_in_registers():
    backend, target = resolve_target(ARM)
    assert target.vector_bits == 128 and target.vector_lanes == 4
    options = backend.graph_pass_options(target)
    assert options["alter-op-layout"]["vector_lanes"] == 4 == options["apply-default-schedule"]["vector_lanes"]
    module = parse_source(
        "def @main(%x: Tensor[(64, 256), float32], %w: Tensor[(128, 256), float32]) { nn.relu(nn.dense(%x, %w)) }",
        "dense.lathe",
    )
    # the weight bound, as a model's is: packed at compile time (a run-time weight's packing
    # would join the kernel, fuse-ops' _gemm_packing, and its panels take turns in the body)
    from lathe.passes.fold_constant import bind_params

    module = bind_params(module, {"w": np.random.default_rng(0).standard_normal((128, 256)).astype(np.float32)})
    from lathe.pipelines import DEFAULT_OPT_LEVEL, pipeline_for, with_pass_options

    pipeline = with_pass_options(pipeline_for(DEFAULT_OPT_LEVEL, module), options)
    loops = backend.lower(lathe.lower(module, pipeline=pipeline, target=target), target)
    asm = backend.assembly(backend.render(loops, target), target)
    kernel = asm.split("fused_nn_contrib_dense_pack_nn_relu_0:")[0].split("_par0:")[-1]  # the parallel body
    # weights packed 8 columns wide (2 q registers) x 8 rows: 16 accumulators, each an fmla per k
    assert len(re.findall(r"fmla\s+v\d+\.4s", kernel)) == 16
    assert not re.search(r"\b[yz]mm|\bz\d+\.s", kernel)  # 128-bit NEON, neither AVX nor SVE
    assert not re.search(r"(str|ldr|stp|ldp)\s+q\d+.*\[sp", kernel)  # no vector spills


# -- the conformance suite ----------------------------------------------------------------------

# every op family and dtype kind, the schedule primitives that shape code most, one zoo model
SUBSET_OPS = [
    "exp", "tanh", "erf", "cast", "add", "where", "nn.dense", "nn.contrib_dense_pack", "nn.batch_matmul",
    "nn.conv2d", "nn.conv2d_transpose", "nn.softmax", "nn.layer_norm", "nn.max_pool2d", "nn.avg_pool2d",
    "image.resize2d", "sum", "argmax", "transpose", "concatenate", "strided_slice", "take",
    "float16", "float64", "int8", "int64", "bool", "cast-to-int8", "float16:tanh:odd", "float64:erf",
]  # fmt: skip
SUBSET_SCHEDULES = ["split", "vectorize", "parallel", "unroll", "compute_at", "cache_read", "rfactor"]


@emulated
def test_the_conformance_suite_passes_a_representative_subset_under_emulation():
    lines: list[str] = []
    report = check_backend(
        ARM, ops=SUBSET_OPS, schedules=SUBSET_SCHEDULES, models=["lstm_lm"], emulate=True, report=lines.append
    )
    assert lines[0].startswith(f"running '{ARM}' under emulation (qemu-aarch64")
    assert report.ok, report.render()
    assert len(report.passed) == len(SUBSET_OPS) + len(SUBSET_SCHEDULES) + 1, report.render()
    assert "emulate=True" in report.rerun(report.passed[0])


def test_without_emulate_the_suite_skips_a_foreign_target_and_with_it_names_what_is_missing(monkeypatch):
    if ON_ARM:
        pytest.skip("aarch64 runs natively here")
    quiet: list[str] = []
    report = check_backend(ARM, ops=["add"], schedules=False, models=False, report=quiet.append)
    assert [r.status for r in report.results] == ["skipped"]
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(LatheError, match="apt-get install qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross"):
        check_backend(ARM, ops=["add"], schedules=False, models=False, emulate=True, report=quiet.append)
