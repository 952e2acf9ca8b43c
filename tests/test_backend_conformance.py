"""The backend conformance suite (lathe.testing.backends): the installed backends pass it,
it covers every graph op, dtype and schedule primitive, and it tells a failure from an
unsupported case and from one that cannot run here."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from xdsl.dialects import arith

from lathe.backends import registry
from lathe.backends.interface import Capabilities
from lathe.backends.llvm.backend import LLVMBackend
from lathe.dialects import graph, te
from lathe.errors import LatheError
from lathe.testing import backends
from lathe.testing.backends import check_backend
from lathe.testing.op_cases import CASES, DTYPE_CASES, FLOAT_MATH, case_for, rel_err

# Bugs the suite found, left to their owners: (target, kind, name) -> the bug; target "*" for a
# bug of the shared lowering, which every backend that claims the case meets. Each is also an
# xfail(strict) test below (on llvm for "*"), so a fix shows up as an XPASS asking to remove it here.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}


def seed_of(rng) -> int:
    return int(rng.integers(2**31))


def quiet(line: str) -> None:
    pass


def loadable(name: str) -> bool:
    return any(b.name == name and b.error is None for b in registry.installed())


def unexpected_failures(target, report) -> list[str]:
    return [
        f"{r}\n    rerun: {report.rerun(r)}"
        for r in report.failed
        if (target, r.kind, r.name) not in KNOWN_BUGS and ("*", r.kind, r.name) not in KNOWN_BUGS
    ]


@pytest.mark.parametrize("target", ["llvm", "c"])
def test_backend_passes_the_suite(target, rng):
    if not loadable(target):
        pytest.skip(f"no loadable '{target}' backend in the lathe.backends entry points")
    report = check_backend(target, seed=seed_of(rng), report=quiet)
    assert not unexpected_failures(target, report), str(report)
    ran = {(r.kind, r.name) for r in report.results}
    assert {("op", op) for op in graph.OPS_BY_RELAY_NAME} <= ran
    assert {("model", m) for m in backends.DEFAULT_MODELS} <= ran
    assert len(report.passed) >= len(graph.OPS_BY_RELAY_NAME)  # most of it ran and passed


@pytest.mark.parametrize("target, kind, name", sorted(KNOWN_BUGS))
@pytest.mark.xfail(strict=True, reason="a bug the suite found; see KNOWN_BUGS")
def test_known_bugs(target, kind, name):
    picked = {"ops": [], "schedules": False, "models": False}
    picked[backends._SELECTOR[kind]] = [name]
    report = check_backend("llvm" if target == "*" else target, seed=0, report=quiet, **picked)
    assert [r.status for r in report.results] == ["passed"], str(report)


# -- coverage ---------------------------------------------------------------------------------


def test_every_graph_op_has_a_case_builder():
    assert sorted(set(graph.OPS_BY_RELAY_NAME) - set(CASES)) == []
    assert sorted(set(CASES) - set(graph.OPS_BY_RELAY_NAME)) == []  # no case for an op that is gone


def test_every_schedule_primitive_and_dtype_has_a_case():
    primitives = {op.name.removeprefix("te.") for op in te.SCHEDULE_OPS}
    assert set(backends.SCHEDULE_CASES) == primitives
    assert set(graph.DTYPES) <= set(DTYPE_CASES) and {f"cast-to-{d}" for d in graph.DTYPES} <= set(DTYPE_CASES)
    assert {f"float64:{op}" for op in FLOAT_MATH} <= set(DTYPE_CASES)


@pytest.mark.parametrize("op", sorted(CASES))
def test_each_case_is_valid_with_non_zero_inputs(op, rng):
    """Builds and verifies on several draws; float inputs hold no zeros (a zero hides a wrong
    multiply or a dropped term), and the reference runs them."""
    import lathe

    for _ in range(3):
        case = case_for(op, rng)
        module = case.module()  # verifies
        inputs = case.inputs(rng)
        floats = [v for v in inputs.values() if np.issubdtype(v.dtype, np.floating)]
        assert all(np.all(v != 0) for v in floats), case.describe()
        lathe.interpret(module, **inputs)


def test_a_case_replays_from_the_seed_and_its_name():
    """The rerun a report prints draws the same shapes and attributes as the full run did."""

    def detail(seed, ops):
        report = check_backend("llvm", ops=ops, schedules=False, models=False, seed=seed, report=quiet)
        return {r.name: r.detail for r in report.results}["nn.conv2d"]

    full = detail(11, ["nn.relu", "nn.conv2d", "abs"])
    assert detail(11, ["nn.conv2d"]) == full
    assert len({detail(s, ["nn.conv2d"]) for s in range(4)}) > 1  # and seeds do draw other cases


# -- what a status means ----------------------------------------------------------------------


def install(monkeypatch, **fakes):
    """Backends named `name` (target kind `name`) next to the real ones, for this test."""
    real = registry._discovered()
    monkeypatch.setattr(registry, "_discovered", lambda: {**real, **{n: ("test", b, None) for n, b in fakes.items()}})


def fake(kind: str, base=LLVMBackend, **methods):
    def parse_target(self, k, options):
        return LLVMBackend.parse_target(self, "llvm", options).with_(kind=kind)

    return type(
        f"Fake_{kind}", (base,), {"name": kind, "target_kinds": (kind,), "parse_target": parse_target, **methods}
    )()


def test_capabilities_make_cases_unsupported_not_failed(monkeypatch):
    narrow = fake(
        "narrow",
        capabilities=lambda self, t: Capabilities(
            dtypes=frozenset({"float32", "int32", "bool"}),
            ops=frozenset({"add", "cast"}),
            schedule_primitives=frozenset({"split"}),
        ),
    )
    install(monkeypatch, narrow=narrow)
    report = check_backend(
        "narrow",
        ops=["add", "exp", "float64", "cast-to-int32"],
        schedules=["split", "fuse"],
        models=False,
        report=quiet,
    )
    status = {r.name: (r.status, r.detail.split(" in ")[0]) for r in report.results}
    assert status == {
        "add": ("passed", status["add"][1]),
        "exp": ("unsupported", "op not claimed: exp"),
        "float64": ("unsupported", "op not claimed: maximum; dtype not claimed: float64"),
        "cast-to-int32": ("passed", status["cast-to-int32"][1]),
        "fuse": ("unsupported", "primitive not claimed: fuse"),
        "split": ("unsupported", "op not claimed: nn.dense"),  # claimed, but not the op its case schedules
    }
    assert report.summary() == "2 passed, 0 failed, 4 unsupported"


def refusing_load(message):
    def load(self, module, target):
        raise LatheError(message)

    return load


def test_a_backend_that_says_it_cannot_is_unsupported_otherwise_failed(monkeypatch):
    install(
        monkeypatch,
        says=fake("says", load=refusing_load("the says backend cannot lower 'arith.addf'")),
        breaks=fake("breaks", load=refusing_load("kernel @k went missing")),
    )
    said = check_backend("says", ops=["add"], schedules=False, models=False, report=quiet)
    assert [(r.status, r.detail.split(" in ")[0]) for r in said.results] == [
        ("unsupported", "the says backend cannot lower 'arith.addf'")
    ]
    broke = check_backend("breaks", ops=["add"], schedules=False, models=False, report=quiet)
    assert [(r.status, r.detail.split(" in ")[0]) for r in broke.results] == [
        ("failed", "compile: kernel @k went missing")
    ]


def test_the_shared_lowering_saying_not_supported_is_a_failure(monkeypatch):
    """The words alone are not enough: the error must come from the backend's own package."""
    from lathe.backends.llvm import codegen

    def lower(self, module, target):
        codegen.llvm_type(object())  # "the LLVM backend cannot lower type ...", raised in lathe.backends.llvm

    install(monkeypatch, other=fake("other", lower=lower))
    report = check_backend("other", ops=["add"], schedules=False, models=False, report=quiet)
    assert [r.status for r in report.results] == ["failed"], str(report)


def subtracting_lower(self, module, target):
    """A miscompiling backend: every float addition becomes a subtraction."""
    for op in list(module.walk()):
        if isinstance(op, arith.AddfOp):
            op.parent_block().insert_op_before(new := arith.SubfOp(op.lhs, op.rhs), op)
            op.results[0].replace_all_uses_with(new.results[0])
            op.detach()
            op.erase()
    return module


def test_wrong_results_fail_with_the_error_and_a_rerun(monkeypatch):
    install(monkeypatch, wrong=fake("wrong", lower=subtracting_lower))
    report = check_backend("wrong", ops=["add", "nn.relu"], schedules=False, models=False, seed=7, report=quiet)
    (bad,) = report.failed
    assert bad.name == "add" and "max relative error" in bad.detail and "add(Tensor[" in bad.detail
    assert [r.name for r in report.passed] == ["nn.relu"]
    assert report.rerun(bad) == "check_backend('wrong', ops=['add'], schedules=False, models=False, seed=7)"
    assert report.summary() == "1 passed, 1 failed, 0 unsupported"
    assert report.render().splitlines()[-1] == report.summary()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="cases run in-process without fork")
def test_generated_code_that_crashes_fails_its_case_and_the_suite_goes_on(monkeypatch):
    def load(self, module, target):
        if "math.exp" in str(module):  # SIGKILL: faulthandler would print a SIGSEGV into the test log
            os.kill(os.getpid(), signal.SIGKILL)
        return LLVMBackend.load(self, module, target)

    install(monkeypatch, crashes=fake("crashes", load=load))
    lines = []
    report = check_backend("crashes", ops=["nn.relu", "exp", "abs"], schedules=False, models=False, report=lines.append)
    assert [(r.name, r.status) for r in report.results] == [("nn.relu", "passed"), ("exp", "failed"), ("abs", "passed")]
    assert "died (SIGKILL)" in report.failed[0].detail
    assert lines[-1] == "2 passed, 1 failed, 0 unsupported" and len(lines) == 4


def test_a_target_that_does_not_run_here_is_skipped():
    report = check_backend(
        "llvm -mtriple=aarch64-linux-gnu" if "x86" in os.uname().machine else "llvm -mtriple=x86_64-linux-gnu",
        ops=["add"],
        schedules=["split"],
        models=False,
        report=quiet,
    )
    assert [r.status for r in report.results] == ["skipped", "skipped"]
    assert report.summary() == "0 passed, 0 failed, 0 unsupported, 2 skipped"


def test_unknown_case_names_are_a_lathe_error():
    with pytest.raises(LatheError, match="no conformance case for op or dtype 'nn.conv3d'"):
        check_backend("llvm", ops=["nn.conv3d"], report=quiet)
    with pytest.raises(LatheError, match="no conformance case for model 'alexnet'"):
        check_backend("llvm", ops=[], models=["alexnet"], report=quiet)


# -- the shared comparison ----------------------------------------------------------------------


def test_rel_err_is_nan_aware():
    a = np.array([1.0, np.nan, 4.0, np.inf], np.float32)
    assert rel_err(a, np.array([1.0, np.nan, 4.4, np.inf], np.float32)) == pytest.approx(0.1 / 1.1, rel=1e-5)
    with pytest.raises(ValueError, match="non-finite values differ"):
        rel_err(a, np.array([1.0, 2.0, 4.0, np.inf], np.float32))
    with pytest.raises(ValueError, match="infinities of different signs"):
        rel_err(a, np.array([1.0, np.nan, 4.0, -np.inf], np.float32))
    with pytest.raises(ValueError, match="shape"):
        rel_err(a, a[:2])
    assert rel_err(np.array([1, 2]), np.array([1, 3])) == float("inf")
