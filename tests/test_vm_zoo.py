"""The zoo on the VM: every small zoo model compiled with `executor="vm"` and with the graph
executor agrees on fresh random inputs (rel. err <= 1e-5). A static model is one primitive
region to the VM, specialised to its shapes and compiled by the same static pipeline; what
this holds is the VM's side: its program, the pool's tensors the kernels write, the params
bound as constants, and results handed out of the pool.

Compiling a small model twice takes 10-30 s on a loaded 2-core machine, so CI runs three
models (a transformer, a recurrent model, a CNN); LATHE_CONFORMANCE=full runs the whole zoo."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")

import lathe  # noqa: E402
from lathe.testing.compare import max_relative_error  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # models/ is a folder of scripts, not part of the lathe package
    sys.path.append(str(REPO))

from models import ZOO  # noqa: E402
from models.builder import random_inputs  # noqa: E402

FULL = os.environ.get("LATHE_CONFORMANCE") == "full"
DEFAULT = ["bert_base", "lstm_lm", "mobilenet_v2"]
NAMES = list(ZOO) if FULL else DEFAULT


@pytest.mark.parametrize("name", NAMES)
def test_the_vm_and_the_graph_executor_agree_on_the_zoo(name, rng):
    model = ZOO[name].build(small=True, seed=int(rng.integers(2**31)))
    module, params = lathe.from_onnx(model)
    graph = lathe.compile(module, params=params, executor="graph")
    vm = lathe.compile(module, params=params, executor="vm")
    assert type(vm).__name__ == "VMModule"
    for _ in range(2):  # the second run on the pool's reused memory and the cached kernels
        inputs = random_inputs(model, int(rng.integers(2**31)))
        want, got = graph.run(**inputs), vm.run(**inputs)
        assert type(got) is type(want)
        assert max_relative_error(got, want) <= 1e-5
    assert vm.compiles == 1  # one signature, compiled once
