"""rfactor by parts (te.rfactor nparts / factor_axis) and the schedule builder's handling of the
stages it makes: the partial sums and their final sum each take their own schedule (a register
tile computed at the partials' loop through cache_write, the final sum vectorized and computed
at an epilogue's loop), as the conv2d_nhwc template's input-channel split uses them."""

import numpy as np
import pytest
from conftest import max_rel_err
from test_schedules import MATMUL, K, M, N, _epilogue_stages, _stage

import lathe
from lathe.api import parse_source
from lathe.errors import LatheError
from lathe.lowering.schedules import Schedule


def _inputs(rng):
    return rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)


@pytest.mark.parametrize("parts", [1, 2, 3, 4, 19, 40])
@pytest.mark.parametrize("factor_axis", [None, 0, 1])
def test_rfactor_nparts(parts, factor_axis, rng):
    """Partial p sums one contiguous run of k (19 = 3 parts of 7, 6 and none over: guarded);
    the partials' axis anywhere in their buffer."""
    module = parse_source(MATMUL, "matmul.mlir")
    s = Schedule(_stage(module))
    rf = s.rfactor("k", nparts=parts, factor_axis=factor_axis)
    spatial = ["i", "j"]
    spatial.insert(2 if factor_axis is None else factor_axis, "k.outer")
    assert rf.axes == [*spatial, "k.inner"] and s.axes == ["i", "j", "k.outer"]
    rf.parallel(rf.axes[0])
    s.vectorize("j")
    s.reorder("i", "k.outer", "j")
    a, b = _inputs(rng)
    assert max_rel_err(lathe.compile(module).run(a=a, b=b), a @ b) <= 1e-4


def test_rfactor_nparts_buffer_layout():
    """factor_axis = 0: each partial is one contiguous [M, N] block of the buffer."""
    module = parse_source(MATMUL, "matmul.mlir")
    s = Schedule(_stage(module))
    s.rfactor("k", nparts=2, factor_axis=0)
    lowered = str(lathe.lower(module))
    assert f"memref<2x{M}x{N}xf32>" in lowered


def test_rfactor_register_tile_and_epilogue(rng):
    """The conv template's shape of it: partials parallel over the parts, each part's output
    tiles computed by a cache_write stage at the tile loop (a register tile over the part's k),
    then the final sum computed at the epilogue's row loop, vectorized along j."""
    module, (c, out) = _epilogue_stages()
    s_out, s_c = Schedule(out), Schedule(c)
    rf = s_c.rfactor("k", nparts=2, factor_axis=0)
    local = rf.cache_write()
    assert local.axes == ["k.outer", "i", "j", "k.inner"] and rf.axes == ["k.outer", "i", "j"]
    p, i, j = rf.axes
    io, ii = rf.split(i, factor=4)
    jo, ji = rf.split(j, factor=16)
    rf.reorder(p, io, jo, ii, ji)
    tasks = rf.fuse(p, io)
    rf.parallel(tasks)
    rf.unroll(ii)
    rf.vectorize(ji)
    local.compute_at(rf, jo)
    local.reorder("k.inner", "i", "j")
    local.vectorize("j")
    oi, oj = s_out.axes
    s_out.parallel(oi)
    s_out.vectorize(oj)
    s_c.compute_at(out, oi)
    s_c.reorder("k.outer", "j")
    s_c.vectorize("j")
    text = str(module)
    again = parse_source(text, "again.mlir")  # the schedule replays from its printed form
    lowered = str(lathe.lower(again))
    kernel = lowered[lowered.index("@mm_relu") :]
    assert f"memref<2x{M}x{N}xf32>" in kernel  # the partials (the only root buffer besides out)
    assert "memref<1x4x16xf32>" in kernel and "memref<1x1x16xf32>" not in kernel  # the register tile
    assert kernel.count("#loop.annotation<parallel>") == 2
    a, b = _inputs(rng)
    assert max_rel_err(lathe.compile(parse_source(text, "x.mlir")).run(a=a, b=b), np.maximum(a @ b, 0)) <= 1e-4


def test_rfactor_errors():
    module = parse_source(MATMUL, "matmul.mlir")
    s = Schedule(_stage(module))
    with pytest.raises(LatheError, match="not one of the stage's reduce axes"):
        s.rfactor("i", nparts=2)
    rf = s.rfactor("k", nparts=2)
    with pytest.raises(LatheError, match="not supported"):
        rf.rfactor("k.inner", nparts=2)


@pytest.mark.parametrize(
    "props, message",
    [
        ("factor = 2 : i64, nparts = 2 : i64", "exactly one of 'factor' and 'nparts'"),
        ("", "exactly one of 'factor' and 'nparts'"),
        ("nparts = 2 : i64, factor_axis = 3 : i64", r"factor_axis must be in \[0, 2\]"),
    ],
)
def test_rfactor_verifier(props, message):
    text = MATMUL.replace(
        "  func.return %0 : tensor<",
        f'  %rf = te.rfactor %0 {{axis = "k"{", " if props else ""}{props}}} : tensor<{M}x{N}xf32> -> '
        f"tensor<2x{M}x{N}xf32>\n  func.return %0 : tensor<",
    )
    with pytest.raises(LatheError, match=message):
        lathe.lower(parse_source(text, "bad.mlir"))
