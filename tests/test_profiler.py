"""The debug executor: `CompiledModule.profile()` and `lathe run --profile`."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import lathe
from lathe.dialects import graph
from lathe.runtime.profiler import _BY_PATTERN, CONTENDED, FLOPS, Profile, cpu_wait_seconds
from lathe.tools.lathe_cli import main

FAST = {"repeat": 5, "warmup_seconds": 0.05}  # tests check what a profile says, not how fast it is


def _compile(tmp_path, text: str, name: str = "model.lathe", **options):
    path = tmp_path / name
    path.write_text(text)
    return str(path), lathe.compile(lathe.load(path), **options)


TWO_OPS = """def @main(%x: Tensor[(4, 16), float32], %w: Tensor[(8, 16), float32]) {
  %0 = nn.dense(%x, %w, units=8);
  nn.relu(%0)
}
"""


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_rows_cover_every_kernel_and_shares_sum_to_one(tmp_path, rng):
    text = """def @main(%x: Tensor[(32, 64), float32], %w: Tensor[(48, 64), float32], %b: Tensor[(48), float32]) {
  %0 = nn.dense(%x, %w);
  %1 = nn.bias_add(%0, %b);
  %2 = nn.relu(%1);
  %3 = exp(%2);
  sum(%3, axis=[1])
}
"""
    _, cm = _compile(tmp_path, text, opt_level=0)
    p = cm.profile(_rand(rng, 32, 64), _rand(rng, 48, 64), _rand(rng, 48), **FAST)
    steps = [name for _, _, name in cm.executor.steps]
    assert sorted(r.kernel for r in p.rows) == sorted(steps) and len(steps) == 5
    assert math.isclose(sum(r.share for r in p.rows), 1.0, rel_tol=1e-9)
    assert all(r.seconds > 0 for r in p.rows)
    assert [r.seconds for r in p.rows] == sorted((r.seconds for r in p.rows), reverse=True)
    bytes_of = {r.kernel: r.bytes for r in p.rows}
    dense = next(n for n in steps if "dense" in n)
    assert bytes_of[dense] == 4 * (32 * 64 + 48 * 64 + 32 * 48)  # x, w and the result
    flops = {r.kernel: r.flops for r in p.rows}
    assert flops[next(n for n in steps if n.startswith("sum"))] == 32 * 48  # one per input element
    assert flops[next(n for n in steps if n.startswith("exp"))] == 32 * 48  # one per element


@pytest.mark.parametrize("bound", [False, True], ids=["weights-at-run-time", "weights-bound"])
def test_dense_flops_are_2mnk(tmp_path, rng, bound):
    m, n, k = 8, 32, 64
    text = f"""def @main(%x: Tensor[({m}, {k}), float32], %w: Tensor[({n}, {k}), float32]) {{
  nn.dense(%x, %w)
}}
"""
    w = _rand(rng, n, k)
    path = tmp_path / "dense.lathe"
    path.write_text(text)
    cm = lathe.compile(lathe.load(path), params={"w": w} if bound else None)
    args = (_rand(rng, m, k),) if bound else (_rand(rng, m, k), w)
    p = cm.profile(*args, **FAST)
    (row,) = [r for r in p.rows if "dense" in r.kernel]
    assert row.flops == 2 * m * n * k
    assert [s.split(" ")[0] for s in row.sources] == [f"{path}:2"]  # the op as compiled (packed at -O3), where written


@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_flops_are_the_formula(tmp_path, rng, groups, direct_convolutions):
    n, c, h, w_, k, kh, kw = 1, 8, 12, 10, 16, 3, 3
    text = f"""def @main(%x: Tensor[({n}, {c}, {h}, {w_}), float32], %w: Tensor[({k}, {c // groups}, {kh}, {kw}), float32]) {{
  nn.conv2d(%x, %w, padding=[1, 1, 1, 1], groups={groups}, kernel_size=[{kh}, {kw}])
}}
"""
    path = tmp_path / "conv.lathe"
    path.write_text(text)
    weight = _rand(rng, k, c // groups, kh, kw)
    cm = lathe.compile(lathe.load(path), params={"w": weight})  # -O3: NHWC, packed: the same arithmetic
    p = cm.profile(_rand(rng, n, c, h, w_), **FAST)
    (row,) = [r for r in p.rows if "conv2d" in r.kernel]
    oh, ow = h, w_  # padding 1 keeps a 3x3 conv's size
    assert row.flops == 2 * n * k * c * oh * ow * kh * kw / groups
    assert any(s == f"{path}:2 nn.conv2d" for s in row.sources)


def test_a_winograd_convolution_names_its_line_in_each_of_its_kernels(tmp_path, rng):
    """winograd-conv makes one conv three kernels: each is charged to the conv's line, and the
    GEMM's work is its own product's, (m+2)^2 batches of tiles x C x K."""
    n, c, h, w_, k = 1, 8, 12, 10, 16
    text = f"""def @main(%x: Tensor[({n}, {c}, {h}, {w_}), float32], %w: Tensor[({k}, {c}, 3, 3), float32]) {{
  nn.conv2d(%x, %w, padding=[1, 1, 1, 1], kernel_size=[3, 3])
}}
"""
    path = tmp_path / "conv.lathe"
    path.write_text(text)
    cm = lathe.compile(lathe.load(path), params={"w": _rand(rng, k, c, 3, 3)})
    p = cm.profile(_rand(rng, n, c, h, w_), **FAST)
    stages = {r.kernel.rsplit("_", 1)[0]: r for r in p.rows}
    assert {"nn_contrib_winograd_input_transform", "nn_contrib_batch_matmul_pack"} <= set(stages)
    assert all(s.startswith(f"{path}:2 ") for r in p.rows for s in r.sources)
    from lathe.passes.winograd import winograd_tile

    m = winograd_tile(c, k, h, w_, lanes=4)  # the rule's tile for these output sizes
    tiles = n * -(-h // m) * -(-w_ // m)
    assert stages["nn_contrib_batch_matmul_pack"].flops == 2 * (m + 2) ** 2 * tiles * c * k


def test_sources_name_the_relay_lines(tmp_path, rng):
    path, cm = _compile(tmp_path, TWO_OPS, opt_level=0)  # one kernel per op
    p = cm.profile(_rand(rng, 4, 16), _rand(rng, 8, 16), **FAST)
    assert sorted(s for r in p.rows for s in r.sources) == [f"{path}:2 nn.dense", f"{path}:3 nn.relu"]
    assert {r.kernel: r.sources for r in p.rows}["nn_relu_0"] == [f"{path}:3 nn.relu"]
    path, fused = _compile(tmp_path, TWO_OPS, opt_level=3)  # one kernel for both (and %w's packing)
    rows = fused.profile(_rand(rng, 4, 16), _rand(rng, 8, 16), **FAST).rows
    (row,) = [r for r in rows if "dense" in r.kernel]
    assert row.sources[0] in (f"{path}:2 nn.dense", f"{path}:2 nn.contrib_dense_pack")  # packed where 8 lanes divide 8
    assert row.sources[1:] == [f"{path}:3 nn.relu"]


def test_sources_name_the_onnx_nodes(rng):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from lathe.frontends.onnx import from_onnx

    w = _rand(rng, 16, 32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="encoder/proj"),
        helper.make_node("Relu", ["h"], ["r"], name="encoder/act"),
        helper.make_node("Softmax", ["r"], ["y"], name="head/softmax", axis=-1),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 32])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    module, params = from_onnx(model)
    cm = lathe.compile(module, params=params)
    p = cm.profile(_rand(rng, 4, 16), **FAST)
    nodes_of = {r.kernel: {s.rsplit(" ", 1)[0] for s in r.sources} for r in p.rows}
    assert set().union(*nodes_of.values()) == {"encoder/proj", "encoder/act", "head/softmax"}
    softmax = next(k for k in nodes_of if "softmax" in k)
    assert nodes_of[softmax] == {"head/softmax"}


def test_json_round_trip(tmp_path, rng):
    _, cm = _compile(tmp_path, TWO_OPS, opt_level=0)
    p = cm.profile(_rand(rng, 4, 16), _rand(rng, 8, 16), **FAST)
    text = p.to_json()
    assert Profile.from_json(text) == p
    d = json.loads(text)
    assert len(d["rows"]) == len(p.rows) and d["rows"][0]["kernel"] == p.rows[0].kernel
    assert d["machine"]["peak_flops"] == p.machine.peak_flops
    with pytest.raises(lathe.LatheError, match="not a Lathe profile"):
        Profile.from_json('{"rows": []}')


def test_json_of_a_profile_without_cpu_wait_reads_back(tmp_path, rng):
    _, cm = _compile(tmp_path, TWO_OPS, opt_level=0)
    d = json.loads(cm.profile(_rand(rng, 4, 16), _rand(rng, 8, 16), **FAST).to_json())
    del d["cpu_wait"]  # written before profiles measured it
    p = Profile.from_json(json.dumps(d))
    assert p.cpu_wait is None and not p.contended and "CPU contention unknown" in p.table()


def test_a_contended_profile_says_so(tmp_path, rng):
    _, cm = _compile(tmp_path, TWO_OPS, opt_level=0)
    p = cm.profile(_rand(rng, 4, 16), _rand(rng, 8, 16), **FAST)
    if p.cpu_wait is not None:
        assert p.cpu_wait >= 0
    busy = dataclasses.replace(p, cpu_wait=10 * CONTENDED)
    assert busy.contended and "other processes held the cores" in busy.table()
    idle = dataclasses.replace(p, cpu_wait=0.0)
    assert not idle.contended and "(no contention)" in idle.table()


def test_kernels_timed_by_cpu_time_on_one_thread(tmp_path, rng):
    _, cm = _compile(tmp_path, TWO_OPS, opt_level=0, num_threads=1)
    p = cm.profile(_rand(rng, 4, 16), _rand(rng, 8, 16), clock=time.thread_time, **FAST)
    assert p.clock == "thread_time" and all(r.seconds > 0 for r in p.rows)
    assert "timed by time.thread_time" in p.table() and Profile.from_json(p.to_json()) == p
    _, two = _compile(tmp_path, TWO_OPS, name="two.lathe", opt_level=0, num_threads=2)
    with pytest.raises(lathe.LatheError, match="num_threads=1"):
        two.profile(_rand(rng, 4, 16), _rand(rng, 8, 16), clock=time.thread_time, **FAST)


def test_kernels_are_timed_inside_one_native_call(tmp_path, rng):
    """The LLVM backend's timed entry reads the clock between kernels, so a profile pays no
    Python call per kernel; its stamps cover the call and nothing outside it."""
    for clock, threads in ((time.perf_counter, 2), (time.thread_time, 1)):  # thread_time: one thread only
        _, cm = _compile(tmp_path, TWO_OPS, name=f"t{threads}.lathe", opt_level=0, num_threads=threads)
        cm.executor.set_inputs((_rand(rng, 4, 16), _rand(rng, 8, 16)), {})
        assert cm.executor._timed(clock) is not None
        t0 = clock()
        runs = cm.executor.time_kernels(3, 0.0, clock)
        elapsed = clock() - t0
        assert len(runs) == 3 and all(len(r) == len(cm.executor.steps) for r in runs)
        assert all(t >= 0 for r in runs for t in r) and sum(map(sum, runs)) <= elapsed
    assert cm.executor._timed(lambda: 0.0) is None  # a clock C cannot read: the Python loop


def test_cpu_wait_counts_the_time_another_process_holds_our_core():
    """This thread and a busy process on one CPU: the scheduler shares it, so this thread waits
    for about half of the time it wants to run, whatever else the machine runs."""
    if cpu_wait_seconds(this_thread=True) is None or not hasattr(os, "sched_setaffinity"):
        pytest.skip("no per-thread schedstat or CPU affinity here")
    mask = os.sched_getaffinity(0)
    cpu = min(mask)
    hog = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}}); print(flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE,
    )
    try:
        os.sched_setaffinity(0, {cpu})
        hog.stdout.readline()  # the hog is pinned and running
        before = cpu_wait_seconds(this_thread=True)
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
        waited = cpu_wait_seconds(this_thread=True) - before
    finally:
        os.sched_setaffinity(0, mask)
        hog.kill()
        hog.wait()
    assert waited > 0.05  # of 0.3 s wanted: half, less what the scheduler's granularity leaves out


def test_table_has_a_row_per_kernel_and_says_how_the_peak_is_estimated(tmp_path, rng):
    _, cm = _compile(tmp_path, TWO_OPS, opt_level=0)
    p = cm.profile(_rand(rng, 4, 16), _rand(rng, 8, 16), **FAST)
    table = p.table()
    for head in ("kernel", "time", "share", "GFLOP/s", "GB/s", "%peak F", "%peak B", "source ops"):
        assert head in table.splitlines()[0]
    for r in p.rows:
        assert any(line.startswith(r.kernel) for line in table.splitlines())
    assert "FMA units (assumed)" in table and "numpy copy" in table


def test_lathe_run_profile(tmp_path, capsys):
    path = tmp_path / "two.lathe"
    path.write_text(TWO_OPS)
    out_json = tmp_path / "profile.json"
    assert main(["run", str(path), "--profile", "--profile-json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "source ops" in out and f"{path}:2 nn." in out
    p = Profile.from_json(out_json.read_text())
    # one kernel for dense + relu (after the packing of %w where the host's vectors divide 8)
    assert [r.kernel for r in p.rows if "dense" in r.kernel] in (
        ["fused_nn_dense_nn_relu_0"],
        ["fused_nn_contrib_dense_pack_nn_relu_0"],
    )


def test_every_graph_op_has_a_cost_rule():
    missing = [c.name for c in graph.GRAPH_OPS if c not in FLOPS and c.PATTERN not in _BY_PATTERN]
    assert not missing


def test_repeat_must_be_positive(tmp_path, rng):
    _, cm = _compile(tmp_path, TWO_OPS)
    with pytest.raises(lathe.LatheError, match="repeat"):
        cm.profile(_rand(rng, 4, 16), _rand(rng, 8, 16), repeat=0)


# One model per kind of kernel the zoo has (convolutions, attention, recurrence): the whole zoo
# takes over a minute on a loaded 2-core machine, so benchmarks/profile_zoo.py profiles all of it.
ZOO_NAMES = ["resnet18", "bert_base", "lstm_lm"]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_profile_works_on_every_zoo_model(name):
    pytest.importorskip("onnx")
    from lathe.frontends.onnx import from_onnx
    from lathe.frontends.onnx.names import sanitize
    from lathe.models import ZOO
    from lathe.models.builder import random_inputs

    model = ZOO[name].build(small=True)
    module, params = from_onnx(model)
    cm = lathe.compile(module, params=params)
    inputs = {sanitize(k): v for k, v in random_inputs(model).items()}
    p = cm.profile(**inputs, **FAST)
    assert sorted(r.kernel for r in p.rows) == sorted({n for _, _, n in cm.executor.steps})
    assert math.isclose(sum(r.share for r in p.rows), 1.0, rel_tol=1e-9)
    assert all(r.sources and not any(s.startswith("?") for s in r.sources) for r in p.rows)
    assert all(r.flops is not None for r in p.rows)
    assert p.table().count("\n") >= len(p.rows)
