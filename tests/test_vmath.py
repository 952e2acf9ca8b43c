"""The polynomial erf and tanh of vectorized loops (backends/llvm/vmath.py) over every float32
range that matters: a dense grid through the tails, tiny magnitudes down to FLT_MIN (where
x * P(x^2) once went subnormal), a sample of every binade up to FLT_MAX, and the special
values (+-0 keeps its sign, NaN stays NaN, +-inf saturates), through lathe.compile as a user's
model runs them."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import lathe
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
