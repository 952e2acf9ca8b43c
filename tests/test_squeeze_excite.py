"""A squeeze-excitation block (global average pool, 1x1 conv, activation, 1x1 conv, gate, the
map scaled by the gate) compiled at -O3, against numpy on fresh random inputs. Its weights are
parameters bound at compile time, so block-conv-weights lays fc2's weight out in blocks of
filters, and the fc2 kernel (fused with the scale: a per-stage kernel) reads the blocks as
whole vectors (schedules.last_axis_walk). Channel counts of EfficientNet-B0 and MobileNet-v3
(120: no 16-lane vector divides it, HWIO kept), SiLU or ReLU inside, sigmoid or hard-sigmoid
gates, one and two threads."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import max_rel_err

import lathe
from lathe.textual_ir.parser import parse_relay


def _source(c: int, s: int, h: int, inner: str, gate: str) -> str:
    """The block in NHWC with HWIO weights, as alter-op-layout leaves it between two convs of an
    imported model (here the block's input and output are the map, so NCHW would stay NCHW)."""
    act = {"silu": "multiply(%2, sigmoid(%2))", "relu": "nn.relu(%2)"}[inner]
    g = {"sigmoid": "sigmoid(%5)", "hardsigmoid": "clip(add(multiply(%5, 0.166667f), 0.5f), a_min=0f, a_max=1f)"}[gate]
    conv = 'padding=[0, 0, 0, 0], kernel_size=[1, 1], data_layout="NHWC", kernel_layout="HWIO"'
    return f"""#[version = "0.0.5"]
def @main(%x: Tensor[(1, {h}, {h}, {c}), float32], %w1: Tensor[(1, 1, {c}, {s}), float32], %b1: Tensor[({s}), float32],
          %w2: Tensor[(1, 1, {s}, {c}), float32], %b2: Tensor[({c}), float32]) {{
  %0 = nn.global_avg_pool2d(%x, layout="NHWC");
  %1 = nn.conv2d(%0, %w1, {conv});
  %2 = nn.bias_add(%1, %b1, axis=3);
  %3 = {act};
  %4 = nn.conv2d(%3, %w2, {conv});
  %5 = nn.bias_add(%4, %b2, axis=3);
  multiply(%x, {g})
}}"""


def _reference(x, w1, b1, w2, b2, inner: str, gate: str) -> np.ndarray:
    x64 = x.astype(np.float64)
    pooled = x64.mean(axis=(1, 2))  # [1, C]
    t = pooled @ w1[0, 0].astype(np.float64) + b1
    t = t / (1 + np.exp(-t)) if inner == "silu" else np.maximum(t, 0)
    u = t @ w2[0, 0].astype(np.float64) + b2
    u = 1 / (1 + np.exp(-u)) if gate == "sigmoid" else np.clip(u * 0.166667 + 0.5, 0, 1)
    return (x64 * u[:, None, None, :]).astype(np.float32)


@pytest.mark.parametrize(
    "c, s, h, inner, gate",
    [
        (1152, 48, 7, "silu", "sigmoid"),  # EfficientNet-B0's last stage: fc2 48 -> 1152 in blocks of 32
        (144, 6, 14, "silu", "sigmoid"),  # three-vector blocks (144 = 3 x 48)
        (960, 240, 7, "relu", "hardsigmoid"),  # MobileNet-v3's last stage
        (120, 32, 12, "relu", "hardsigmoid"),  # 120 channels: padded to a multiple of the vector
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_squeeze_excitation_matches_numpy(c, s, h, inner, gate, threads, rng):
    x = rng.standard_normal((1, h, h, c)).astype(np.float32)
    params = {
        "w1": (rng.standard_normal((1, 1, c, s)) / np.sqrt(c)).astype(np.float32),
        "b1": rng.standard_normal(s).astype(np.float32),
        "w2": (rng.standard_normal((1, 1, s, c)) / np.sqrt(s)).astype(np.float32),
        "b2": rng.standard_normal(c).astype(np.float32),
    }
    cm = lathe.compile(parse_relay(_source(c, s, h, inner, gate)), params=params, num_threads=threads)
    got = cm.run(x=x)
    assert max_rel_err(got, _reference(x, **params, inner=inner, gate=gate)) < 2e-5
