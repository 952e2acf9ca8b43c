"""Kernels assume ARGUMENT_ALIGN (16 bytes, numpy's guarantee) of their buffer arguments, so a
numpy array is used in place wherever numpy put it; one aligned less is copied first, and
either way the results are the interpreter's. Both the graph executor (set_inputs, out=) and
a deployed artifact's C library (lathe_set_input, lathe_bind_output) decide so."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_matches, lathe_cli

import lathe
import lathe.runtime
from lathe.api import parse_source
from lathe.backends.interface import ALIGN, ARGUMENT_ALIGN

# a packed dense (both operands run-time inputs), an elementwise epilogue, a reduction: vector
# loads and stores of arguments in every kind of kernel
MODEL = """def @main(%x: Tensor[(24, 80), float32], %w: Tensor[(48, 80), float32], %y: Tensor[(24, 48), float32]) {
  %0 = nn.dense(%x, %w);
  %1 = add(nn.relu(%0), %y);
  (%1, sum(%1, axis=[1]))
}"""
SHAPES = {"x": (24, 80), "w": (48, 80), "y": (24, 48)}


def at_offset(shape: tuple[int, ...], offset: int) -> np.ndarray:
    """A float32 array whose data starts `offset` bytes past a cache line (ALIGN)."""
    nbytes = math.prod(shape) * 4
    raw = np.empty(nbytes + 2 * ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN + offset
    return raw[start : start + nbytes].view(np.float32).reshape(shape)


def inputs_at(rng, offset: int) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in SHAPES.items():
        a = at_offset(shape, offset)
        a[...] = rng.standard_normal(shape)
        out[name] = a
    return out


@pytest.fixture(scope="module")
def module():
    return parse_source(MODEL, "aligned.lathe")


@pytest.mark.parametrize("offset", [ARGUMENT_ALIGN, 2 * ARGUMENT_ALIGN, 0])
def test_inputs_aligned_as_numpys_run_in_place(module, offset, rng):
    """An array 16 (or 32) bytes past a cache line, as numpy's allocator hands out large
    arrays, is bound as it is: the kernels read it with unaligned vector loads."""
    cm = lathe.compile(module)
    given = inputs_at(rng, offset)
    got = cm.run(**given)
    assert all(b is given[n] for b, n in zip(cm.executor._bound, cm.executor.input_names))
    assert_matches(got, lathe.interpret(module, **given), rtol=1e-4)
    out = (at_offset((24, 48), offset), at_offset((24,), offset))
    back = cm.run(**given, out=out)
    assert all(b is o for b, o in zip(back, out))
    assert all(o.buffer is a for o, a in zip(cm.executor._outputs, out))  # written by the kernels directly
    assert_matches(out, got)


def test_inputs_aligned_less_are_copied_and_still_right(module, rng):
    cm = lathe.compile(module)
    given = inputs_at(rng, 4)
    got = cm.run(**given)
    assert not any(b is given[n] for b, n in zip(cm.executor._bound, cm.executor.input_names))
    assert_matches(got, lathe.interpret(module, **given), rtol=1e-4)
    out = (at_offset((24, 48), 4), at_offset((24,), 8))
    back = cm.run(**given, out=out)
    assert all(b is o for b, o in zip(back, out))
    assert not any(o.buffer is a for o, a in zip(cm.executor._outputs, out))  # written, then copied
    assert_matches(out, got)


def test_an_artifact_takes_numpy_aligned_inputs_in_place_and_copies_the_rest(module, tmp_path, rng):
    src = tmp_path / "aligned.lathe"
    src.write_text(MODEL)
    r = lathe_cli("compile", src, "-o", tmp_path / "aligned.d")
    assert r.returncode == 0, r.stderr
    model = lathe.runtime.load(tmp_path / "aligned.d")
    for offset in (ARGUMENT_ALIGN, 4):
        given = inputs_at(rng, offset)
        ref = lathe.interpret(module, **given)
        assert_matches(model.run(**given), ref, rtol=1e-4)
        out = (at_offset((24, 48), offset), at_offset((24,), offset))
        back = model.run(**given, out=out)
        assert all(b is o for b, o in zip(back, out))
        assert_matches(back, ref, rtol=1e-4)
