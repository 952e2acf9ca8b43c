"""The polynomial exp, erf and tanh of vectorized loops (backends/llvm/vmath.py) over every
float32 range that matters, through lathe.compile as a user's model runs them. erf and tanh: a
dense grid through the tails, tiny magnitudes down to FLT_MIN (where x * P(x^2) once went
subnormal), a sample of every binade up to FLT_MAX, and the special values (+-0 keeps its
sign, NaN stays NaN, +-inf saturates). exp: ulps against float64 exp rounded to float32 over
its whole normal range, results flushed to exactly 0 below it (never a subnormal: forming one
costs a microcode assist), and masked softmax rows against the reference interpreter."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import lathe
from lathe.backends.llvm.vmath import EXP_OVERFLOW, EXP_UNDERFLOW
from lathe.testing.op_cases import rel_err
from lathe.textual_ir.parser import parse_relay

FLT_MIN = float(np.finfo(np.float32).tiny)


def _grid(rng) -> np.ndarray:
    dense = np.linspace(-7.0, 7.0, 200_003)
    tiny = np.geomspace(FLT_MIN, 1e-3, 20_000)
    binades = np.arange(0x00800000, 0x7F800000, 1 << 14, dtype=np.uint32).view(np.float32)
    fresh = rng.standard_normal(50_000) * rng.choice([0.1, 1.0, 3.0], 50_000)
    x = np.concatenate([dense, tiny, -tiny, binades, -binades, fresh]).astype(np.float32)
    return np.resize(x, -(-x.size // 1024) * 1024)  # whole vectors: the guarded tail is scalar code


def _run(name: str, x: np.ndarray) -> np.ndarray:
    m = parse_relay(f"def @main(%x: Tensor[({x.size}), float32]) {{ {name}(%x) }}")
    cm = lathe.compile(m)
    assert re.search(r"@lathe_v" + name, cm.llvm_ir), "the vectorized loop did not use the polynomial"
    return cm.run(x=x)


@pytest.mark.parametrize("name, ref", [("erf", math.erf), ("tanh", math.tanh)])
def test_relative_error_within_1e6_everywhere(name, ref, rng):
    x = _grid(rng)
    got = _run(name, x).astype(np.float64)
    want = np.array([ref(float(v)) for v in x])
    normal = np.abs(want) >= FLT_MIN  # a subnormal result has no relative precision to keep
    rel = np.abs(got - want)[normal] / np.abs(want)[normal]
    worst = int(np.argmax(rel))
    assert rel[worst] <= 1e-6, (x[normal][worst], got[normal][worst], want[normal][worst])


@pytest.mark.parametrize("name, ref", [("erf", math.erf), ("tanh", math.tanh)])
def test_special_values(name, ref):
    """Each value in several lanes of the vectors."""
    finite = [1e30, -1e30, 4.0, -4.0, 8.0, FLT_MIN, -FLT_MIN, 1e-20]
    values = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, *finite], np.float32)
    x = np.resize(values, 64)
    got = _run(name, x)
    for k, v in enumerate(x):
        if np.isnan(v):
            assert np.isnan(got[k])
        elif v == 0:
            assert got[k] == 0 and np.signbit(got[k]) == np.signbit(v)
        else:
            np.testing.assert_allclose(got[k], ref(float(v)), rtol=3e-7)


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Distance in float32 steps between results of one sign (exp's are >= 0)."""
    return np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))


def _exp_reference(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(x.astype(np.float64)).astype(np.float32)


def test_exp_within_one_ulp_over_its_normal_range(rng):
    """1 ulp is the bound vmath's docstring states (checked there over every float32 of the
    range); here a dense sweep, both ends of the range to the last float, and fresh values."""
    lo, hi = np.float32(EXP_UNDERFLOW), np.float32(EXP_OVERFLOW)
    ends = [np.arange(20_000, dtype=np.int32) + v.view(np.int32) for v in (hi, -lo)]
    ends = np.concatenate([e.view(np.float32) for e in ends]) * np.repeat(np.float32([1, -1]), 20_000)
    ends = ends[(ends >= lo) & (ends <= hi)]
    dense = np.linspace(lo, hi, 1_000_003, dtype=np.float32)
    fresh = rng.uniform(lo, hi, 200_000).astype(np.float32)
    near_zero = rng.standard_normal(100_000).astype(np.float32) * np.float32(1e-3)
    x = np.concatenate([dense, ends, fresh, near_zero])
    x = np.resize(x, -(-x.size // 1024) * 1024)
    ulps = _ulps(_run("exp", x), _exp_reference(x))
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= 1, (x[worst], ulps[worst])


def test_exp_underflows_to_exactly_zero_and_never_to_a_subnormal(rng):
    """Below EXP_UNDERFLOW numpy's exp is subnormal and then 0; vmath's is 0 (what FTZ would
    give), at and above it the normal result."""
    lo = np.float32(EXP_UNDERFLOW)
    steps = np.arange(-30_000, 30_000, dtype=np.int32)
    near = -(steps + (-lo).view(np.int32)).view(np.float32)  # the floats around lo
    x = np.concatenate([near, rng.uniform(-300.0, -80.0, 100_000).astype(np.float32)])
    x = np.resize(x, -(-x.size // 1024) * 1024)
    got = _run("exp", x)
    assert not np.any((got > 0) & (got < FLT_MIN)), "a subnormal result"
    assert np.all(got[x < lo] == 0)
    assert np.all(_ulps(got[x >= lo], _exp_reference(x[x >= lo])) <= 1)


def test_exp_special_values():
    """Each value in several lanes of the vectors: exp(-inf) = 0, exp(NaN) = NaN, exp(inf) and
    every overflow = inf, the last finite and the last normal result as numpy rounds them."""
    lo, hi = np.float32(EXP_UNDERFLOW), np.float32(EXP_OVERFLOW)
    cases = [
        (0.0, 1.0),
        (-0.0, 1.0),
        (FLT_MIN, 1.0),
        (np.inf, np.inf),
        (-np.inf, 0.0),
        (-1e4, 0.0),
        (-1e30, 0.0),
        (-87.4, 0.0),
        (np.nextafter(lo, np.float32(-np.inf)), 0.0),
        (88.8, np.inf),
        (1e30, np.inf),
        (np.nextafter(hi, np.float32(np.inf)), np.inf),
        (hi, _exp_reference(np.float32([hi]))[0]),
        (lo, _exp_reference(np.float32([lo]))[0]),
        (np.nan, np.nan),
        (-np.nan, np.nan),
    ]
    x = np.resize(np.array([v for v, _ in cases], np.float32), 64)
    want = np.resize(np.array([w for _, w in cases], np.float32), 64)
    got = _run("exp", x)
    np.testing.assert_array_equal(got, want)  # NaN where NaN
    assert np.isfinite(got[x == hi]).all() and (got[x == lo] >= FLT_MIN).all()


def test_masked_softmax_rows_match_the_interpreter(rng):
    """Additive masks as BERT and GPT apply them: a padding mask (a quarter of each row at
    -10000), a causal one, and rows masked whole (softmax of x - 10000: of x, rounded)."""
    heads, seq = 3, 96
    x = (rng.standard_normal((heads, seq, seq)) * 4).astype(np.float32)
    pad = np.zeros((seq, seq), np.float32)
    pad[:, 3 * seq // 4 :] = -10000.0
    causal = np.triu(np.full((seq, seq), -10000.0, np.float32), 1)
    whole = np.zeros((seq, seq), np.float32)
    whole[::5] = -10000.0
    src = (
        f"def @main(%x: Tensor[({heads}, {seq}, {seq}), float32], %m: Tensor[({seq}, {seq}), float32]) "
        "{ nn.softmax(add(%x, %m), axis=-1) }"
    )
    module = parse_relay(src)
    cm = lathe.compile(module)
    assert "@lathe_vexp" in cm.llvm_ir
    for mask in (pad, causal, whole, pad + causal):
        got = cm.run(x=x, m=mask)
        want = lathe.interpret(module, x=x, m=mask)
        assert rel_err(got, want) <= 1e-6
        np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)
        masked = (mask < 0) & ~(mask < 0).all(-1, keepdims=True)  # in a row with unmasked entries
        assert np.all(got[:, masked] == 0)
