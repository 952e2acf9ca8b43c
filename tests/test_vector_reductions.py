"""Float max reductions in explicit vector code (backends/llvm/vectorize.py): a compare-and-
select accumulator with a NaN mask or-ed along, instead of llvm.maximum. A row holding a NaN
anywhere (the first lane, a vector's last lane, the row's last element, every element) must
come out NaN as numpy's max makes it, rows of infinities as numpy has them, and everything
else equal to the interpreter. Softmax and log_softmax are the row kernels whose max runs
through this path (checked on the IR), on rows that are a register tile (3 vectors), a loop
of vectors (8), and a loop of 8-lane vectors (1000 = 125 x 8); softmax's later passes carry a
NaN on by themselves, so the reduction's own result is checked on a loop-level kernel that
stores it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_matches
from xdsl.parser import Parser

import lathe
from lathe.dialects import make_context
from lathe.textual_ir.parser import parse_relay


def _poisoned(shape, rng) -> np.ndarray:
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    rows = x.reshape(-1, shape[-1])
    n = shape[-1]
    rows[1, 0] = np.nan
    rows[2, min(15, n - 1)] = np.nan
    rows[3, n - 1] = np.nan
    rows[4, :] = np.nan
    rows[5, :] = -np.inf
    rows[6, n // 2] = np.inf
    rows[7, 1:] = -np.inf
    rows[8, :] = 0.0
    rows[8, n // 3] = -0.0
    return x


@pytest.mark.parametrize("shape", [(3, 4, 48), (12, 16, 128), (2, 5, 1000)])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_row_max_keeps_nan_and_infinities(op, shape, rng):
    src = f"def @main(%x: Tensor[({', '.join(map(str, shape))}), float32]) {{ nn.{op}(%x, axis=-1) }}"
    cm = lathe.compile(parse_relay(src), num_threads=2)
    assert "@llvm.vector.reduce.or" in cm.llvm_ir, "the row max did not take the NaN-masked vector path"
    x = _poisoned(shape, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = lathe.interpret(parse_relay(src), x=x)
    got = cm.run(x=x)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    finite = ~np.isnan(ref)
    assert np.array_equal(np.isinf(got[finite]), np.isinf(ref[finite]))
    ok = np.isfinite(ref)
    assert_matches(np.where(ok, got, 0), np.where(ok, ref, 0), rtol=1e-4)


def _row_reduction(combine: str, identity: str, rows: int, n: int):
    """out[i] = combine over k of x[i, k], the k loop vectorized: what lower-te-to-loop makes
    of a row reduction, written at loop level so the result is the kernel's output."""
    t = f"memref<{rows}x{n}xf32>"
    src = f"""
    func.func @main(%x: {t}) -> memref<{rows}xf32> {{
      %0 = memref.alloc() {{alignment = 64 : i64}} : memref<{rows}xf32>
      func.call @k(%x, %0) : ({t}, memref<{rows}xf32>) -> ()
      func.return %0 : memref<{rows}xf32>
    }}
    func.func private @k(%x: {t}, %out: memref<{rows}xf32>) attributes {{lathe.kernel, lathe.num_inputs = 1 : i64}} {{
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %rows = arith.constant {rows} : index
      %n = arith.constant {n} : index
      %init = arith.constant {identity} : f32
      scf.for %i = %c0 to %rows step %c1 {{
        memref.store %init, %out[%i] : memref<{rows}xf32>
        scf.for %k = %c0 to %n step %c1 {{
          %v = memref.load %x[%i, %k] : {t}
          %a = memref.load %out[%i] : memref<{rows}xf32>
          %m = arith.{combine} %a, %v : f32
          memref.store %m, %out[%i] : memref<{rows}xf32>
        }} {{loop.annotation = #loop.annotation<vectorize = 16>}}
      }}
      func.return
    }}"""
    return lathe.compile(Parser(make_context(), src).parse_module())


@pytest.mark.parametrize("n", [48, 160, 1008])
@pytest.mark.parametrize(
    "combine, identity, ref", [("maximumf", "0xff800000", np.max), ("minimumf", "0x7f800000", np.min)]
)
def test_vector_max_and_min_reductions_are_nan_if_any_element_is(combine, identity, ref, n, rng):
    x = _poisoned((12, n), rng)
    x[9, :] = np.inf
    x[10, n - 1] = -np.inf
    cm = _row_reduction(combine, identity, 12, n)
    assert "@llvm.vector.reduce.or" in cm.llvm_ir and "@llvm.maximum.v" not in cm.llvm_ir
    assert np.array_equal(cm.run(x), ref(x, axis=1), equal_nan=True)
