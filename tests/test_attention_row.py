"""The fused attention row (a packed batch_matmul whose rows a softmax normalises, with or
without BERT's scale and mask): the dense_pack template's row epilogue takes the max over all
of a task's rows in one loop and the later passes in groups of rows (group_rows). Checked
against the reference interpreter on fresh inputs at query lengths that leave partial tasks
and partial groups, head dims whose depth no k tile divides, every group size of the space,
and rows whose values the max and exp must carry exactly (masked to -10000, -inf, NaN)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import attention_inputs, attention_source, max_rel_err

import lathe
from lathe.dialects import make_context
from lathe.lowering.dense_template import ROW_EPILOGUE_GROUP_ROWS
from lathe.pipelines import GRAPH_PIPELINES, build_pipeline
from lathe.textual_ir.parser import parse_relay


def _fused_kernel(module):
    """The one kernel holding both the batch_matmul and the softmax, at graph level."""
    from xdsl.dialects import func

    from lathe.dialects.functions import is_kernel

    m = module.clone()
    build_pipeline(GRAPH_PIPELINES[3]).apply(make_context(), m)
    fused = [
        f
        for f in m.ops
        if isinstance(f, func.FuncOp)
        and is_kernel(f)
        and {"graph.nn.softmax", "graph.nn.contrib_batch_matmul_pack"} <= {o.name for o in f.body.block.ops}
    ]
    assert len(fused) == 1
    return m, fused[0]


def _with_config(module, config: str):
    from xdsl.dialects.builtin import StringAttr

    from lathe.lowering.schedule_builder import CONFIG_ATTR

    m, kernel = _fused_kernel(module)
    kernel.attributes[CONFIG_ATTR] = StringAttr(config)
    return m


def _agrees(module, inputs, config: str | None = None) -> None:
    ref = lathe.interpret(module, **inputs)
    compiled = module if config is None else _with_config(module, config)
    got = lathe.compile(compiled, num_threads=2).run(**inputs)
    assert got.shape == ref.shape
    assert max_rel_err(got, ref) < 2e-5
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("dim", [32, 64, 80])
@pytest.mark.parametrize("q_len", [1, 5, 17, 63, 129])
def test_fused_row_agrees(q_len, dim, scaled, rng):
    """Queries of 1, 5, 17, 63 and 129 rows against 48 keys (three vectors: packed, so fused):
    tasks and groups of rows left partial at the end; depths 32, 64 and 80."""
    module = parse_relay(attention_source(2, q_len, 48, dim, scaled))
    _fused_kernel(module)
    _agrees(module, attention_inputs(rng, 2, q_len, 48, dim, scaled))


@pytest.mark.parametrize("group_rows", [1, 2, 4])
@pytest.mark.parametrize("config", ["tile_i=8,cache_i=1", "tile_i=4,cache_i=2", "tile_i=2,tile_j=16,cache_i=4"])
def test_group_rows_agree(config, group_rows, rng):
    """Every group size of the space with tasks of 8 rows whole, and tasks that no group
    divides (17 queries: a last task of 1 row), 128 keys of depth 64, scaled and masked."""
    module = parse_relay(attention_source(3, 17, 128, 64, True))
    _agrees(module, attention_inputs(rng, 3, 17, 128, 64, True), f"dense_pack:{config},group_rows={group_rows}")


def test_group_rows_knob_in_space():
    """The row epilogue's space offers group_rows (1, 2, 4), its default ROW_EPILOGUE_GROUP_ROWS."""
    from xdsl.dialects import func

    from lathe.dialects.functions import is_kernel
    from lathe.lowering.schedules import plan_kernel
    from lathe.pipelines import pipeline_for

    module = parse_relay(attention_source(12, 128, 128, 64, False))
    head = pipeline_for(3, module).partition("apply-default-schedule")[0].rstrip(",")
    build_pipeline(head).apply(make_context(), module)
    (kernel,) = [f for f in module.ops if isinstance(f, func.FuncOp) and is_kernel(f) and "softmax" in f.sym_name.data]
    plan = plan_kernel(kernel, 16)
    assert plan.template_name == "dense_pack"
    knobs = {k.name: k for k in plan.space}
    assert set(knobs) == {"tile_i", "tile_j", "cache_i", "group_rows"}
    assert knobs["group_rows"].candidates == (1, 2, 4)
    assert knobs["group_rows"].default == ROW_EPILOGUE_GROUP_ROWS


def test_rows_with_infinities_and_nan(rng):
    """A row with a NaN is NaN throughout, a row masked to -inf except one key is that key's
    one-hot, as in the interpreter (whose max propagates NaN): the max over the task's rows
    and the groups keep each row's own statistics."""
    module = parse_relay(attention_source(1, 16, 32, 64, True))
    inputs = attention_inputs(rng, 1, 16, 32, 64, True)
    inputs["q"][0, 3, 0] = np.nan
    ref = lathe.interpret(module, **inputs)
    got = lathe.compile(module, num_threads=2).run(**inputs)
    assert np.isnan(got[0, 3]).all() and np.isnan(ref[0, 3]).all()
    keep = np.ones(16, bool)
    keep[3] = False
    assert max_rel_err(got[0, keep], ref[0, keep]) < 2e-5
