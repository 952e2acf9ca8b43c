"""ONNX's own node test cases through Lathe's importer, interpreter and compiler.

    python benchmarks/onnx_conformance.py [--filter REGEX] [--output docs/onnx-conformance.md] [--timeout 120]

Every case of `onnx.backend.test.case.node.collect_testcases()` whose ops are
all ones the importer converts (default domain) is imported, run through the
reference interpreter and through the compiled path, and compared with the
expected outputs (rtol 1e-3, atol 1e-5 as ONNX's backend tests, or the case's
own looser bounds; a dtype or shape mismatch fails). The report is a Markdown
table per ONNX op type plus a table of the failures with the first line of
each error.

Node tests feed some attribute-like values (a Reshape's shape, Resize's
scales, ...) as graph inputs; most stay inputs (graph.dyn, run by the VM), and
for those the importer still needs at import time (it raises NeedsConstant)
the runner turns exactly those inputs into initializers holding the test's
values (as TVM's ONNX backend tests do) and keeps the others as inputs.

Cases run in a forked worker process, one at a time, so that an exception, a
hang (--timeout) or even a crash in one case never stops the run.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import re
import signal
import sys
import time
import traceback
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RTOL, ATOL = 1e-3, 1e-5

_CASES: list = []  # filled in the parent before forking, inherited by the worker


@dataclass
class Result:
    name: str
    op: str
    interpreted: str = "fail"  # "pass" | "fail"
    compiled: str = "fail"
    error_interpreted: str = ""
    error_compiled: str = ""
    stage: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# -- which cases ----------------------------------------------------------------------


def _all_nodes(g):
    for nd in g.node:
        yield nd
        for a in nd.attribute:
            if a.type == a.GRAPH:
                yield from _all_nodes(a.g)
            elif a.type == a.GRAPHS:
                for sub in a.graphs:
                    yield from _all_nodes(sub)


def _op_names() -> dict[str, str]:
    import onnx

    return {s.name.lower(): s.name for s in onnx.defs.get_all_schemas() if s.domain in ("", "ai.onnx")}


def primary_op(case, names: dict[str, str]) -> str:
    """The op a case tests: its only node's type, or (expanded function bodies, sequences of
    nodes) the longest op name that the case name starts with."""
    nodes = list(case.model.graph.node)
    if len(nodes) == 1:
        return nodes[0].op_type
    flat = case.name.removeprefix("test_").replace("_", "").lower()
    for short, op in _ABBREVIATIONS.items():
        if flat.startswith(short):
            flat = op.lower() + flat[len(short) :]
    best = max((k for k in names if flat.startswith(k)), key=len, default=None)
    label = names[best] if best else case.name.removeprefix("test_").split("_")[0]
    return label + (" (expanded)" if "expanded" in case.name else "")


_ABBREVIATIONS = {"nllloss": "NegativeLogLikelihoodLoss", "sce": "SoftmaxCrossEntropyLoss"}


def is_supported(case, supported: set[str]) -> bool:
    return all(nd.domain in ("", "ai.onnx") and nd.op_type in supported for nd in _all_nodes(case.model.graph))


# -- one case --------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    if hasattr(e, "message") and isinstance(e.message, str):
        text = e.message.strip()  # LatheError: the message, without the rendered location
    line = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {line}"[:300]


def _compare(got, expected, rtol: float, atol: float) -> None:
    got = list(got) if isinstance(got, tuple) else [got]
    if len(got) != len(expected):
        raise AssertionError(f"{len(got)} outputs, expected {len(expected)}")
    for k, (g, e) in enumerate(zip(got, expected)):
        if not isinstance(e, np.ndarray):
            raise AssertionError(f"output {k}: expected a {type(e).__name__}, which Lathe does not produce")
        g = np.asarray(g)
        if g.dtype != e.dtype:
            raise AssertionError(f"output {k}: dtype {g.dtype}, expected {e.dtype}")
        if g.shape != e.shape:
            raise AssertionError(f"output {k}: shape {g.shape}, expected {e.shape}")
        if e.dtype == np.bool_ or np.issubdtype(e.dtype, np.integer):
            bad = int(np.count_nonzero(g != e))
            if bad:
                raise AssertionError(f"output {k}: {bad} of {e.size} values differ")
            continue
        ok = np.isclose(g.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            i = np.unravel_index(np.argmin(ok), ok.shape)
            raise AssertionError(
                f"output {k}: {int((~ok).sum())} of {e.size} values differ beyond rtol {rtol:g}, "
                f"atol {atol:g} (e.g. at {tuple(int(v) for v in i)}: {g[i]!r} vs {e[i]!r})"
            )


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("timed out")


def bind_attribute_inputs(model, values: dict[str, np.ndarray]):
    """Import `model`, turning the graph inputs that the importer needs as constants (a Reshape's
    shape, Resize's scales, ... which node tests feed as inputs) into initializers holding the
    test's values, as TVM's ONNX backend tests do. Returns (module, params, model, bound names)."""
    from onnx import numpy_helper

    from lathe.frontends.onnx import NeedsConstant, from_onnx

    bound: list[str] = []
    current = model
    while True:
        try:
            module, params = from_onnx(current)
            return module, params, current, bound
        except NeedsConstant as e:
            new = [n for n in _input_ancestors(current.graph, e.input_name) if n in values and n not in bound]
            if not new:
                raise
            bound += new
            current = type(model)()
            current.CopyFrom(model)
            keep = [i for i in current.graph.input if i.name not in bound]
            del current.graph.input[:]
            current.graph.input.extend(keep)
            current.graph.initializer.extend(numpy_helper.from_array(values[n], n) for n in bound)


def _input_ancestors(g, name: str) -> list[str]:
    """The graph inputs that `name` is computed from, not counting what reaches it only through
    Shape or Size (which read a shape, not values)."""
    producer = {o: nd for nd in g.node for o in nd.output}
    inputs = {i.name for i in g.input}
    found, todo, seen = [], [name], set()
    while todo:
        v = todo.pop()
        if v in seen or not v:
            continue
        seen.add(v)
        if v in inputs:
            found.append(v)
        elif v in producer and producer[v].op_type not in ("Shape", "Size"):
            todo.extend(producer[v].input)
    return found


def _array(v) -> np.ndarray:
    """Test data as arrays (some cases store TensorProtos, or numpy scalars for rank 0)."""
    from onnx import TensorProto, numpy_helper

    if isinstance(v, TensorProto):
        return numpy_helper.to_array(v)
    return np.asarray(v) if isinstance(v, np.ndarray | np.generic) else v


def run_case(index: int, timeout: int, partial=None) -> Result:
    import lathe
    from lathe.frontends.onnx import sanitize

    case, op = _CASES[index]
    r = Result(case.name, op)
    t0 = time.perf_counter()
    rtol, atol = max(RTOL, case.rtol), max(ATOL, case.atol)
    all_inputs = [
        i.name for i in case.model.graph.input if i.name not in {t.name for t in case.model.graph.initializer}
    ]
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        # one import per data set when inputs become constants (their values may differ between data sets)
        imported = []
        for inputs, expected in case.data_sets:
            inputs, expected = [_array(v) for v in inputs], [_array(v) for v in expected]
            values = dict(zip(all_inputs, inputs))
            try:
                r.stage = "import"
                if imported and not imported[-1][3]:
                    module, params, model, bound = imported[-1][:4]
                else:
                    module, params, model, bound = bind_attribute_inputs(case.model, values)
            except BaseException as e:  # noqa: BLE001 - one case must never stop the run
                if isinstance(e, KeyboardInterrupt):
                    raise
                r.error_interpreted = r.error_compiled = f"import: {_first_line(e)}"
                return r
            names = [n for n in all_inputs if n not in bound]
            imported.append((module, params, model, bound, [values[n] for n in names], names, expected))
        if any(x[3] for x in imported):
            r.notes.append("bound as constants: " + ", ".join(sorted({n for x in imported for n in x[3]})))
        try:
            r.stage = "interpreter"
            for module, params, _, _, args, names, expected in imported:
                got = lathe.interpret(module, params=params, **{sanitize(n): v for n, v in zip(names, args)})
                _compare(got, expected, rtol, atol)
            r.interpreted = "pass"
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            r.error_interpreted = f"interpreter: {_first_line(e)}"
        if partial is not None:  # so that a crash while compiling or running keeps the interpreter's result
            partial(r)
        try:
            compiled = {}
            for module, params, _, _, args, _names, expected in imported:
                r.stage = "compile"
                if id(module) not in compiled:
                    compiled[id(module)] = lathe.compile(module, params=params)
                r.stage = "compiled"
                _compare(compiled[id(module)].run(*args), expected, rtol, atol)
            r.compiled = "pass"
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            r.error_compiled = f"{r.stage}: {_first_line(e)}"
            if os.environ.get("LATHE_TRACEBACK"):
                traceback.print_exc()
        return r
    finally:
        signal.alarm(0)
        r.seconds = time.perf_counter() - t0


# -- the worker ----------------------------------------------------------------------------


def _worker(conn, timeout: int) -> None:
    os.environ.setdefault("LATHE_NUM_THREADS", "1")
    warnings.simplefilter("ignore")
    while True:
        index = conn.recv()
        if index is None:
            return
        conn.send(run_case(index, timeout, partial=lambda r: conn.send(("partial", r))))


def run_all(indices: list[int], timeout: int, progress: bool) -> list[Result]:
    ctx = mp.get_context("fork")
    results: list[Result] = []
    pending = list(indices)
    while pending:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, timeout), daemon=True)
        proc.start()
        child.close()  # so that the worker's death reads as EOF here
        while pending:
            index = pending[0]
            parent.send(index)
            res = partial = None
            # a hang inside native code survives SIGALRM: give up on the worker after 2x the timeout
            deadline = time.monotonic() + 2 * timeout + 30
            while res is None:
                if not parent.poll(max(0.0, deadline - time.monotonic())):
                    proc.kill()
                    break
                try:
                    msg = parent.recv()
                except EOFError:
                    break
                if isinstance(msg, tuple):
                    partial = msg[1]
                else:
                    res = msg
            pending.pop(0)
            if res is None:  # the worker died (a crash in native code) or hung: record it, start another
                case, op = _CASES[index]
                proc.join(timeout=5)
                code = proc.exitcode
                why = (
                    "hung (killed)"
                    if code == -signal.SIGKILL
                    else f"crashed ({signal.Signals(-code).name})"
                    if code is not None and code < 0
                    else f"the worker exited with code {code}"
                )
                if partial is not None:
                    res = partial
                    res.compiled, res.error_compiled = "fail", f"compiled: {why}"
                else:
                    res = Result(case.name, op, error_interpreted=why, error_compiled=why)
                results.append(res)
                _report_progress(res, len(results), len(indices), progress)
                break
            results.append(res)
            _report_progress(res, len(results), len(indices), progress)
        else:
            parent.send(None)
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
    return results


def _report_progress(r: Result, done: int, total: int, progress: bool) -> None:
    if not progress:
        return
    mark = {("pass", "pass"): "ok", ("pass", "fail"): "COMPILED FAIL", ("fail", "pass"): "INTERP FAIL"}.get(
        (r.interpreted, r.compiled), "FAIL"
    )
    err = r.error_compiled or r.error_interpreted
    print(
        f"[{done}/{total}] {r.name} ({r.op}): {mark} {r.seconds:.1f}s" + (f" — {err}" if err and mark != "ok" else ""),
        flush=True,
    )


# -- the report ------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(
    path: Path, results: list[Result], skipped: dict[str, int], n_total: int, seconds: float, filter_: str | None
) -> str:
    import onnx

    by_op: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_op[r.op].append(r)
    rows = []
    for op in sorted(by_op, key=str.lower):
        rs = by_op[op]
        ip = sum(r.interpreted == "pass" for r in rs)
        cp = sum(r.compiled == "pass" for r in rs)
        rows.append(f"| {op} | {len(rs)} | {ip} | {len(rs) - ip} | {cp} | {len(rs) - cp} |")
    n = len(results)
    ip = sum(r.interpreted == "pass" for r in results)
    cp = sum(r.compiled == "pass" for r in results)
    worst = sorted(
        by_op.items(), key=lambda kv: (-sum(r.compiled != "pass" or r.interpreted != "pass" for r in kv[1]), kv[0])
    )
    worst_text = ", ".join(
        f"{op} ({sum(r.compiled != 'pass' or r.interpreted != 'pass' for r in rs)} of {len(rs)})"
        for op, rs in worst[:8]
        if any(r.compiled != "pass" or r.interpreted != "pass" for r in rs)
    )
    lines = [
        "# ONNX conformance",
        "",
        f"ONNX's node test cases (onnx {onnx.__version__}, opsets up to {onnx.defs.onnx_opset_version()}) through "
        "`lathe.from_onnx`, the reference interpreter and the compiled path, compared with the expected outputs "
        f"(rtol {RTOL:g}, atol {ATOL:g}, or a case's own looser bounds; a dtype or shape mismatch fails). "
        "Generated by `python benchmarks/onnx_conformance.py`"
        + (f" with `--filter '{filter_}'`" if filter_ else "")
        + f" on {datetime.date.today().isoformat()} "
        f"in {seconds / 60:.1f} minutes.",
        "",
        "Node tests feed some attribute-like values (a Reshape's shape, Resize's scales, ...) as graph inputs; "
        "those the importer needs at import time are bound as initializers holding the test's values (as TVM's "
        "ONNX backend tests do); every other input stays an input of the compiled function. "
        f"{sum(bool(r.notes) for r in results)} cases had inputs bound this way.",
        "",
        f"Cases whose ops are all converted by the importer: **{n}** of {n_total} "
        f"({sum(skipped.values())} use an op the importer does not convert and were not run).",
        "",
        "| | cases | passed | failed |",
        "|---|---:|---:|---:|",
        f"| interpreted | {n} | {ip} | {n - ip} |",
        f"| compiled | {n} | {cp} | {n - cp} |",
        "",
        f"Most failures: {worst_text or 'none'}.",
        "",
        "## Per op type",
        "",
        "An op's cases are those of the op under test (`(expanded)`: the op's function body, run as the ops it "
        "expands to).",
        "",
        "| op | cases | interpreted passed | interpreted failed | compiled passed | compiled failed |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        f"| **total** | **{n}** | **{ip}** | **{n - ip}** | **{cp}** | **{n - cp}** |",
        "",
        "## Failures",
        "",
        "The first line of the error; `import:` failures fail both paths.",
        "",
        "| case | op | interpreted | compiled |",
        "|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r.op.lower(), r.name)):
        if r.interpreted == "pass" and r.compiled == "pass":
            continue
        same = r.error_interpreted and r.error_interpreted == r.error_compiled
        ie = "pass" if r.interpreted == "pass" else _cell(r.error_interpreted)
        ce = "pass" if r.compiled == "pass" else ("(same)" if same else _cell(r.error_compiled))
        lines.append(f"| {r.name} | {r.op} | {ie} | {ce} |")
    lines += [
        "",
        "## Not run",
        "",
        "Cases with an op the importer does not convert, by op under test:",
        "",
        ", ".join(f"{op} ({k})" for op, k in sorted(skipped.items(), key=lambda kv: kv[0].lower())),
        "",
    ]
    text = "\n".join(lines)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filter", help="only cases whose name matches this regular expression")
    ap.add_argument("--output", default=str(ROOT / "docs" / "onnx-conformance.md"))
    ap.add_argument("--timeout", type=int, default=120, help="seconds per case")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases

    from lathe.frontends.onnx import supported_ops

    t0 = time.perf_counter()
    cases = [c for c in collect_testcases(None) if c.kind == "node"]
    if args.filter:
        cases = [c for c in cases if re.search(args.filter, c.name)]
    names = _op_names()
    supported = set(supported_ops())
    skipped: dict[str, int] = defaultdict(int)
    for c in cases:
        op = primary_op(c, names)
        if is_supported(c, supported):
            _CASES.append((c, op))
        else:
            skipped[op] += 1
    print(f"{len(_CASES)} of {len(cases)} cases use only supported ops", flush=True)
    results = run_all(list(range(len(_CASES))), args.timeout, not args.quiet)
    seconds = time.perf_counter() - t0
    write_report(Path(args.output), results, skipped, len(cases), seconds, args.filter)
    n = len(results)
    ip = sum(r.interpreted == "pass" for r in results)
    cp = sum(r.compiled == "pass" for r in results)
    print(f"interpreted: {ip}/{n} passed; compiled: {cp}/{n} passed; wrote {args.output} ({seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
