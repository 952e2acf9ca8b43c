"""The fuzzing suite in CI: a few hundred cases, and checks that the harness sees each failure mode.

A long campaign is `python -m lathe.testing.fuzz --count N` (docs/fuzzing.md).
"""

import os

import pytest

from lathe.testing import fuzz

SEED = int(os.environ.get("LATHE_FUZZ_SEED", "0"))


RELU = "def @main(%x: Tensor[(2), float32]) { nn.relu(%x) }"


@pytest.fixture(scope="module")
def worker():
    """Started and past its first case, which gets 5 s more for the worker's start: the hang
    test's 1 s would otherwise be 6 s."""
    w = fuzz.Worker()
    w.run(fuzz.Case("graph", "lathe", RELU))
    yield w
    w.close()


@pytest.mark.parametrize(
    "kind, outcome",
    [
        ("selftest-hang", "timeout"),
        ("selftest-die", "died"),
        ("selftest-raise", "crash"),
    ],
)
def test_the_harness_sees_hangs_deaths_and_crashes(worker, kind, outcome):
    got = worker.run(fuzz.Case(kind, "lathe", ""), timeout=1.0)
    assert got.kind == outcome, got
    after = worker.run(fuzz.Case("graph", "lathe", RELU))
    assert after.kind == "ok", after  # the worker was replaced and goes on


@pytest.mark.parametrize(
    "text, fmt, outcome",
    [
        (RELU, "lathe", "ok"),
        ("def @main(%x: Tensor[(2), float32]) { nn.relu(%y) }", "lathe", "error"),
        ('func.func @f() {\n  %0 = "' + "x" * 40 + "\n}", "mlir", "error"),
    ],
)
def test_outcomes_of_single_cases(text, fmt, outcome):
    assert fuzz.run_case(fuzz.Case("t", fmt, text)).kind == outcome


def test_a_pipeline_case_is_compared_with_the_interpreter():
    case = fuzz.Case(
        "pipeline",
        "lathe",
        "def @main(%x: Tensor[(2, 3), float32]) {\n  %0 = multiply(%x, 2f);\n  sum(nn.relu(%0), axis=[1])\n}",
        "fold-constant{max_elements=4},inline-calls,simplify-inference,expand-split,fuse-ops,"
        "lower-graph-to-te,apply-default-schedule,lower-te-to-loop,cleanup-loops",
    )
    assert fuzz.run_case(case).kind == "ok"


def test_mutations_and_generators_make_distinct_cases():
    seeds = fuzz.seed_texts()
    assert any(fmt == "mlir" for _, fmt, _ in seeds) and any(fmt == "lathe" for _, fmt, _ in seeds)
    cases = fuzz.generate(60, SEED, seeds)
    assert len(cases) == 60 and len({c.text for c in cases}) > 40
    assert {"mutant", "graph", "one-op"} <= {c.kind for c in cases}


def test_ci_campaign():
    """300 cases on 2 workers: each works or ends in a located LatheError; every compiled
    pipeline computes what the interpreter computes. Every kind of case is in it: generate()
    draws rounds of 55 cases, each kind in proportion to its weight (mutant 20, graph 10,
    one-op 10, graph-mlir 5, grammar 5, pipeline 5), so 300 cases are five rounds and a part,
    at least 25 of each kind. The 120 mutants apply 1-4 edits each, drawn from all 7 (delete,
    duplicate, insert, number, swap, nest, truncate), to the examples, the lit tests and 4
    lowered programs (the zoo's models are left to campaigns). About 20 s at load 10; the
    grammar kind's depth bound (fuzz._grammar_strategy) took it from 74 s."""
    seeds = fuzz.all_seeds(zoo=False, lowered=4, seed=SEED)
    report = fuzz.run_cases(lambda sink: fuzz.generate(300, SEED, seeds, sink=sink), jobs=2)
    totals = report.totals()
    assert report.cases == 300 and totals["ok"] > 50 and totals["error"] > 50, report.render()
    assert report.table.get("pipeline", {}).get("ok", 0) > 5, report.render()
    assert not report.findings, report.render() + "".join(
        f"\n--- {f.outcome}: {f.key}\n{f.message}\n{f.case.pipeline or ''}\n{f.case.text}"
        for f in report.findings.values()
    )
