"""The LLVM backend: vector code, targets, object files."""

import re

import numpy as np
import pytest

import lathe
from lathe.backends.llvm.target import parse_target
from lathe.textual_ir.parser import parse_relay


def test_dense_kernel_is_vectorized():
    m = parse_relay("def @main(%x: Tensor[(64, 512), float32], %w: Tensor[(512, 512), float32]) { nn.dense(%x, %w) }")
    cm = lathe.compile(m)
    ir = cm.optimized_ir
    assert re.search(r"<(8|16) x float>", ir), "no vector instructions in the dense kernel"
    assert "noalias" in cm.llvm_ir and "getelementptr inbounds" in cm.llvm_ir
    assert "ptrtoint" not in cm.llvm_ir and "inttoptr" not in cm.llvm_ir


def test_elementwise_kernel_uses_host_vector_width():
    m = parse_relay("def @main(%a: Tensor[(4096), float32], %b: Tensor[(4096), float32]) { add(%a, %b) }")
    ir = lathe.compile(m).optimized_ir
    assert re.search(r"fadd [a-z ]*<(8|16) x float>", ir)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("llvm -mcpu=", "needs a value"),
        ("llvm -foo=1", "unknown target option"),
        ("tvm", "unknown target"),
        ("llvm -opt-level=7", "-opt-level must be 0..3"),
    ],
)
def test_bad_target_strings(spec, words):
    with pytest.raises(lathe.LatheError, match=words):
        parse_target(spec)


def test_target_strings():
    t = parse_target("llvm -mcpu=znver4 -opt-level=2")
    assert t.cpu == "znver4" and t.opt_level == 2 and t.is_host
    t = parse_target("llvm -mtriple=aarch64-linux-gnu")
    assert not t.is_host and t.cpu == "generic"


def test_cross_target_cannot_jit():
    m = parse_relay("def @main(%a: Tensor[(4), float32]) { negative(%a) }")
    with pytest.raises(lathe.LatheError, match="cannot JIT"):
        lathe.compile(m, target="llvm -mtriple=aarch64-linux-gnu")
    assert lathe.emit_object(m, "llvm -mtriple=aarch64-linux-gnu")[:4] == b"\x7fELF"


def test_opt_level_zero_still_correct(rng):
    m = parse_relay("def @main(%x: Tensor[(5, 7), float32], %w: Tensor[(3, 7), float32]) { nn.dense(%x, %w) }")
    x, w = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((3, 7)).astype(np.float32)
    got = lathe.compile(m, target="llvm -opt-level=0").run(x=x, w=w)
    np.testing.assert_allclose(got, x @ w.T, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name, lo, hi",
    [
        ("exp", -87.0, 88.0),
        ("exp", -5.0, 5.0),
        ("tanh", -12.0, 12.0),
        ("tanh", -0.01, 0.01),
        ("erf", -6.0, 6.0),
        ("erf", -0.5, 0.5),
    ],
)
def test_vector_transcendentals_are_accurate(name, lo, hi):
    """The polynomial exp/tanh/erf of vectorized loops, elementwise against float64 numpy."""
    import math as pymath

    n = 1 << 14
    x = np.linspace(lo, hi, n, dtype=np.float32)
    m = parse_relay(f"def @main(%x: Tensor[({n}), float32]) {{ {name}(%x) }}")
    cm = lathe.compile(m)
    assert re.search(r"@lathe_v" + name, cm.llvm_ir), "the vectorized loop did not use the polynomial"
    got = cm.run(x=x).astype(np.float64)
    ref = {"exp": np.exp, "tanh": np.tanh, "erf": np.vectorize(pymath.erf)}[name](x.astype(np.float64))
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-30)
    tol = 1e-6 if name != "erf" else 2e-6
    # relative to each value (not just to the largest), except where the value underflows
    assert np.max(np.where(np.abs(ref) > 1e-30, rel, 0)) < tol, np.max(rel)


def test_identical_kernels_compile_once_and_are_cached(tmp_path, monkeypatch, rng):
    """Structurally identical kernels (BERT's repeated layers) share one object; a second
    compile of the same model reads every kernel from the cache directory."""
    monkeypatch.setenv("LATHE_CACHE_DIR", str(tmp_path))
    layers = "".join(f"  %{k + 1} = nn.relu(nn.bias_add(nn.dense(%{k}, %w{k}), %b{k}));\n" for k in range(3))
    params = "".join(f", %w{k}: Tensor[(32, 32), float32], %b{k}: Tensor[(32), float32]" for k in range(3))
    m = parse_relay(
        f"def @main(%0: Tensor[(4, 32), float32]{params}) {{\n{layers}  %3\n}}".replace("%0:", "%x:").replace(
            "(%0,", "(%x,"
        )
    )
    weights = {f"w{k}": rng.standard_normal((32, 32)).astype(np.float32) for k in range(3)}
    weights.update({f"b{k}": rng.standard_normal(32).astype(np.float32) for k in range(3)})
    first = lathe.compile(m, params=weights, opt_level=1)  # weights stay inputs: identical kernels
    assert first.compile_stats.kernels == 3 and first.compile_stats.distinct == 1
    assert first.compile_stats.from_cache == 0 and len(list(tmp_path.glob("*.o"))) == 1
    second = lathe.compile(m, params=weights, opt_level=1)
    assert second.compile_stats.from_cache == 1
    x = rng.standard_normal((4, 32)).astype(np.float32)
    np.testing.assert_allclose(second.run(x=x), lathe.interpret(m, params=weights, x=x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
@pytest.mark.parametrize("n", [5, 64])  # scalar code, and vector code with a tail
def test_integer_division_where_hardware_traps(dtype, n):
    """x / 0 and INT_MIN / -1 raise SIGFPE on x86 when compiled naively (the process died);
    they give the interpreter's answers: 0, and INT_MIN (wrapped)."""
    src = f"def @main(%a: Tensor[({n}), {dtype}], %b: Tensor[({n}), {dtype}]) {{ (divide(%a, %b), divide(%b, %a)) }}"
    m = parse_relay(src)
    lo = np.iinfo(dtype).min
    a = np.resize(np.array([lo, lo, 7, -7, 0, 9], dtype), n)
    b = np.resize(np.array([-1, 0, 0, 2, 0, -4], dtype), n)
    got, ref = lathe.compile(m).run(a, b), lathe.interpret(m, a=a, b=b)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g, r)
    np.testing.assert_array_equal(ref[0][:4], np.array([lo, 0, 0, -3], dtype))


def test_a_named_cpu_gets_its_own_vector_width():
    """-mcpu without -mattr: the width comes from the CPU (znver4 has AVX-512), not 128 bits."""
    assert parse_target("llvm -mtriple=x86_64-linux-gnu -mcpu=znver4").vector_bits == 512
    assert parse_target("llvm -mtriple=x86_64-linux-gnu -mcpu=haswell").vector_bits == 256
    assert parse_target("llvm -mtriple=aarch64-linux-gnu").vector_bits == 128
    assert parse_target("llvm -mattr=+avx2,+fma,-avx512f").vector_bits == 256
