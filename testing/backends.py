"""The backend conformance suite: does a backend compute what the reference interpreter does?

    from lathe.testing.backends import check_backend
    report = check_backend("llvm")          # any target string: "c", "llvm -mcpu=znver4", ...
    assert not report.failed, report

It runs, each compared with `lathe.interpret`:
  * op cases: one random valid instance of every graph op (`op_cases.CASES`:
    odd sizes, size-1 dimensions, realistic non-zero values), and one
    arithmetic and one conversion case per graph dtype (`op_cases.DTYPE_CASES`);
  * schedule cases: a hand-written schedule on a small compute for every te
    schedule primitive (`SCHEDULE_CASES`), lowered from a graph module so the
    interpreter is the reference;
  * model cases: the zoo's small models (`DEFAULT_MODELS`, or the names given),
    imported with `lathe.from_onnx`.

Each case ends in one status:
  passed       the backend's results match the interpreter's within the case's tolerance;
  failed       they do not, or compiling or running raised (the error is the detail);
  unsupported  the backend does not claim what the case needs, by its `Capabilities`
               (an op, a dtype, a schedule primitive), or it refused the case itself:
               a LatheError raised from the backend's own package while compiling whose
               message says it cannot or does not support something (`UNSUPPORTED_WORDS`).
               Errors of the shared graph-to-loop lowering, errors at run time and errors
               worded otherwise are failures: a backend opts out by saying so, in its
               capabilities or in its own error, never by accident;
  skipped      the target does not run on this machine (`Capabilities.runs_here`), and
               emulation was not asked for (`emulate=True`: its deployed library runs under
               the backend's emulator, e.g. aarch64 under qemu-user).

Shapes and inputs are drawn from `seed` and the case's name, so `check_backend(t, ops=[name],
models=False, schedules=False, seed=S)` reruns one case exactly. Where the
platform can fork, cases run in a child process: generated code that crashes
or hangs fails its case (and a fresh child takes the rest) instead of ending
the suite.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from lathe.dialects import graph, te
from lathe.errors import LatheError
from lathe.testing.op_cases import (
    CASES,
    DTYPE_CASES,
    REDUCE_RTOL,
    OpCase,
    dtypes_of,
    rtol_for,
    worst_rel_err,
)

PASSED, FAILED, UNSUPPORTED, SKIPPED = "passed", "failed", "unsupported", "skipped"

# How a backend's own LatheError says that it does not do something (see the module docstring).
UNSUPPORTED_WORDS = re.compile(r"not supported|unsupported|does not support|cannot (lower|represent|emit|run)\b")

# Small models that together use every op family the zoo has (convolutions, pooling and batch
# norm; attention, layer norm and embeddings; recurrent cells) and compile in seconds each.
DEFAULT_MODELS = ("resnet18", "bert_base", "lstm_lm")

_SELECTOR = {"op": "ops", "dtype": "ops", "schedule": "schedules", "model": "models"}  # kind -> keyword
CASE_TIMEOUT = 300.0  # seconds for one case (a zoo model compiles in 5-20 s on 2 busy cores)


# -- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseResult:
    kind: str  # "op", "dtype", "schedule", "model"
    name: str
    status: str
    detail: str = ""  # the error, the measured error, or why it is unsupported or skipped
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.status:<11} {self.kind:<8} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class ConformanceReport:
    target: str
    seed: int
    emulate: bool = False
    results: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0

    def with_status(self, status: str) -> list[CaseResult]:
        return [r for r in self.results if r.status == status]

    @property
    def passed(self) -> list[CaseResult]:
        return self.with_status(PASSED)

    @property
    def failed(self) -> list[CaseResult]:
        return self.with_status(FAILED)

    @property
    def unsupported(self) -> list[CaseResult]:
        return self.with_status(UNSUPPORTED)

    @property
    def skipped(self) -> list[CaseResult]:
        return self.with_status(SKIPPED)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        line = f"{len(self.passed)} passed, {len(self.failed)} failed, {len(self.unsupported)} unsupported"
        return line + (f", {len(self.skipped)} skipped" if self.skipped else "")

    def render(self) -> str:
        """Every case that did not pass, then the summary line."""
        lines = [f"conformance of target '{self.target}' (seed {self.seed}, {self.seconds:.0f} s)"]
        for r in self.results:
            if r.status != PASSED:
                lines.append(f"  {r}")
            if r.status == FAILED:
                lines.append(f"    rerun: {self.rerun(r)}")
        lines.append(self.summary())
        return "\n".join(lines)

    __str__ = render

    def rerun(self, r: CaseResult) -> str:
        """The call that runs case `r` alone, on the same shapes and inputs."""
        picked = {"ops": [], "schedules": False, "models": False}
        picked[_SELECTOR[r.kind]] = [r.name]
        args = ", ".join(f"{k}={v!r}" for k, v in picked.items())
        emulated = ", emulate=True" if self.emulate else ""
        return f"check_backend({self.target!r}, {args}, seed={self.seed}{emulated})"


# -- checking one module ----------------------------------------------------------------------


class _Checker:
    """What every case shares: the backend, its capabilities, and compiled modules by text."""

    def __init__(self, target: str, emulate: bool = False):
        from lathe.backends.registry import resolve_target

        self.target = target
        self.emulate = emulate
        self.backend, self.parsed = resolve_target(target)
        self.caps = self.backend.capabilities(self.parsed)
        module = type(self.backend).__module__
        self.package = module.rpartition(".")[0] or module
        self._compiled: dict[str, object] = {}

    def missing(self, ops: Iterable[str], dtypes: Iterable[str]) -> str | None:
        """Why the backend's capabilities exclude a module with these ops and dtypes, if they do."""
        why = []
        ops = sorted(set(ops) - self.caps.ops) if self.caps.ops is not None else []
        if ops:
            why.append("op not claimed: " + ", ".join(ops))
        dts = sorted(set(dtypes) - self.caps.dtypes)
        if dts:
            why.append("dtype not claimed: " + ", ".join(dts))
        return "; ".join(why) or None

    def refuses(self, e: LatheError) -> bool:
        """The backend's own code raised `e`, saying it cannot or does not support something."""
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
        return (where == self.package or where.startswith(self.package + ".")) and UNSUPPORTED_WORDS.search(
            e.message
        ) is not None

    def compile(self, module: ModuleOp, params=None):
        import lathe

        if params or self.emulate:  # an emulated module holds a directory: gone with the module, not cached
            return lathe.compile(module, target=self.target, params=params, emulate=self.emulate)
        key = str(module)
        if key not in self._compiled:
            self._compiled[key] = lathe.compile(module, target=self.target)
        return self._compiled[key]

    def check(self, reference: ModuleOp, compiled: ModuleOp, inputs: dict, rtol: float, params=None) -> tuple[str, str]:
        """Interpret `reference`, compile and run `compiled` (the same function, perhaps lowered
        and scheduled by hand), compare: (status, detail)."""
        import lathe

        dtypes = dtypes_of(reference)
        why = self.missing(ops_of(reference), dtypes)
        if why:
            return UNSUPPORTED, why
        try:
            ref = lathe.interpret(reference, params=params, **inputs)
        except Exception as e:  # noqa: BLE001 - a case the suite should not have made, reported
            return FAILED, f"the reference interpreter failed: {_describe(e)}"
        try:
            module = self.compile(compiled, params)
        except LatheError as e:
            return (UNSUPPORTED, e.message) if self.refuses(e) else (FAILED, f"compile: {e.message}")
        except Exception as e:  # noqa: BLE001 - any other exception is the backend's failure
            return FAILED, f"compile crashed: {_describe(e)}"
        try:
            got = module.run(**inputs)
        except Exception as e:  # noqa: BLE001 - so is any exception at run time
            return FAILED, f"run: {_describe(e)}"
        try:
            err = worst_rel_err(got, ref)
        except ValueError as e:
            return FAILED, str(e)
        rtol = rtol_for(rtol, dtypes)
        if err <= rtol:
            return PASSED, f"max relative error {err:.1e}"
        return FAILED, f"max relative error {err:.2e} > {rtol:g}"


def ops_of(module: ModuleOp) -> set[str]:
    return {op.relay_name() for op in module.walk() if isinstance(op, graph.GraphOp)}


def _describe(e: BaseException) -> str:
    if isinstance(e, LatheError):
        return e.message
    frame = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" ({frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno})" if frame else ""
    return f"{type(e).__name__}: {e}{where}"


# -- op and dtype cases -----------------------------------------------------------------------


def _op_check(case: OpCase, rng: np.random.Generator, checker: _Checker) -> tuple[str, str]:
    module = case.module()
    status, detail = checker.check(module, module, case.inputs(rng), case.rtol)
    return status, f"{detail} in {case.describe()}"


# -- schedule cases ---------------------------------------------------------------------------

DENSE = """def @main(%a: Tensor[(13, 19), float32], %b: Tensor[(17, 19), float32]) {
  nn.dense(%a, %b)
}"""
DENSE_RELU = """def @main(%a: Tensor[(13, 19), float32], %b: Tensor[(17, 19), float32]) {
  nn.relu(nn.dense(%a, %b))
}"""
EXP_SUM = """def @main(%a: Tensor[(13, 19), float32]) {
  sum(exp(%a), axis=[1])
}"""


def _te_module(source: str) -> tuple[ModuleOp, ModuleOp]:
    """The graph module, and its te-level form: one fused kernel, not yet scheduled."""
    import lathe
    from lathe.api import parse_source
    from lathe.pipelines import GRAPH_PIPELINES

    module = parse_source(source, "schedule-case.lathe")
    return module, lathe.lower(module, pipeline=GRAPH_PIPELINES[1] + ",lower-graph-to-te")


def _stages(module: ModuleOp) -> list:
    return [op for op in module.walk() if isinstance(op, te.ComputeOp)]


def _kernel_arg(module: ModuleOp, index: int):
    return _stages(module)[0].parent_op().body.block.args[index]


def _split(m):
    from lathe.lowering.schedules import Schedule

    s = Schedule(_stages(m)[0])
    s.split(s.axes[1], factor=5)  # 17 columns: the last part is partial


def _tile(m):
    from lathe.lowering.schedules import Schedule

    s = Schedule(_stages(m)[0])
    s.tile(s.axes[0], s.axes[1], 4, 6)


def _fuse(m):
    from lathe.lowering.schedules import Schedule

    s = Schedule(_stages(m)[0])
    s.fuse(s.axes[0], s.axes[1])


def _reorder(m):
    from lathe.lowering.schedules import Schedule

    s = Schedule(_stages(m)[0])
    i, j, k = s.axes
    s.reorder(k, i, j)


def _annotate(primitive: str, stage: int, axis: int, *extra):
    """A schedule that puts one annotation (vectorize, parallel, unroll, pragma) on one axis."""

    def apply(m):
        from lathe.lowering.schedules import Schedule

        s = Schedule(_stages(m)[stage])
        getattr(s, primitive)(s.axes[axis], *extra)

    return apply


def _bind(m):
    from lathe.lowering.schedules import Schedule

    s = Schedule(_stages(m)[0])
    s.bind(s.axes[0], "blockIdx.x")
    s.bind(s.axes[1], "threadIdx.x")


def _compute_inline(m):
    from lathe.lowering.schedules import Schedule

    Schedule(_stages(m)[0]).compute_inline()


def _compute_root(m):
    from lathe.lowering.schedules import Schedule

    Schedule(_stages(m)[0]).compute_root()


def _compute_at(m):
    from lathe.lowering.schedules import Schedule

    dense, relu = _stages(m)
    Schedule(dense).compute_at(relu, relu.axis_names[0])


def _cache_write(m):
    from lathe.lowering.schedules import Schedule

    Schedule(_stages(m)[0]).cache_write()


def _cache_read(m):
    from lathe.lowering.schedules import Schedule

    dense = _stages(m)[0]
    Schedule(dense).cache_read(_kernel_arg(m, 0), [dense])


def _rfactor(m):
    from lathe.lowering.schedules import Schedule

    Schedule(_stages(m)[0]).rfactor("k", 4)  # 19 = 4 * 4 + 3: the partial sums' last part is guarded


def _storage_align(m):
    from lathe.lowering.schedules import Schedule

    s = Schedule(_stages(m)[0])
    s.storage_align(s.axes[0], 16, 0)


def _prefetch(m):
    from lathe.lowering.schedules import Schedule

    s = Schedule(_stages(m)[0])
    s.prefetch(_kernel_arg(m, 0), s.axes[0])  # row i + 1 of %a while row i computes; none past the last


# primitive -> (graph source, schedule on its te form); every case uses only its own primitive
SCHEDULE_CASES: dict[str, tuple[str, Callable[[ModuleOp], None]]] = {
    "split": (DENSE, _split),
    "tile": (DENSE, _tile),
    "fuse": (DENSE, _fuse),
    "reorder": (DENSE, _reorder),
    "vectorize": (DENSE_RELU, _annotate("vectorize", 1, -1)),  # 17 lanes' worth: a remainder
    "parallel": (DENSE, _annotate("parallel", 0, 0)),
    "unroll": (DENSE, _annotate("unroll", 0, 2)),
    "pragma": (DENSE_RELU, _annotate("pragma", 1, -1, "unroll_explicit")),
    "bind": (DENSE, _bind),
    "compute_inline": (EXP_SUM, _compute_inline),
    "compute_root": (EXP_SUM, _compute_root),
    "compute_at": (DENSE_RELU, _compute_at),
    "cache_write": (DENSE, _cache_write),
    "cache_read": (DENSE, _cache_read),
    "rfactor": (DENSE, _rfactor),
    "storage_align": (DENSE_RELU, _storage_align),
    "prefetch": (DENSE, _prefetch),
}


def _schedule_check(primitive: str, rng: np.random.Generator, checker: _Checker) -> tuple[str, str]:
    if primitive not in checker.caps.schedule_primitives:
        return UNSUPPORTED, f"primitive not claimed: {primitive}"
    from lathe.dialects.functions import param_names
    from lathe.testing.op_cases import random_inputs

    source, schedule = SCHEDULE_CASES[primitive]
    module, lowered = _te_module(source)
    schedule(lowered)
    lowered.verify()
    fn = next(iter(module.ops))
    inputs = random_inputs(rng, list(fn.function_type.inputs.data)).values()
    return checker.check(module, lowered, dict(zip(param_names(fn), inputs)), REDUCE_RTOL)


# -- model cases ------------------------------------------------------------------------------


def _model_check(name: str, rng: np.random.Generator, checker: _Checker) -> tuple[str, str]:
    import lathe
    from lathe.models import ZOO
    from lathe.models.builder import random_inputs
    from lathe.models.check_zoo import TOLERANCE

    seed = int(rng.integers(2**31))
    model = ZOO[name].build(small=True, seed=seed)
    module, params = lathe.from_onnx(model)
    return checker.check(module, module, random_inputs(model, seed), TOLERANCE, params=params)


# -- running cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Case:
    kind: str
    name: str
    check: Callable[[str, np.random.Generator, _Checker], tuple[str, str]]

    def run(self, checker: _Checker, seed: int) -> CaseResult:
        rng = np.random.default_rng([seed, zlib.crc32(f"{self.kind}:{self.name}".encode())])
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():  # numpy's, from the reference on NaN or empty reductions
                warnings.simplefilter("ignore", RuntimeWarning)
                status, detail = self.check(self.name, rng, checker)
        except Exception as e:  # noqa: BLE001 - building the case went wrong: the suite's bug, reported
            status, detail = FAILED, f"the case could not be built: {_describe(e)}"
        return CaseResult(self.kind, self.name, status, detail, time.perf_counter() - t0)


def _op_case(table: dict) -> Callable:
    return lambda name, rng, checker: _op_check(table[name](name, rng), rng, checker)


def _select(names: Iterable[str] | None, known: Sequence[str], what: str) -> list[str]:
    if names is None:
        return list(known)
    names = list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise LatheError(f"no conformance case for {what} '{unknown[0]}'", note="known: " + ", ".join(known))
    return names


def cases(
    ops: Iterable[str] | None = None, models: bool | Iterable[str] = True, schedules: bool | Iterable[str] = True
) -> list[_Case]:
    """The suite's cases, in order: ops (None: every op and dtype case), schedules (True: one
    per primitive), models (True: DEFAULT_MODELS); an iterable of names picks cases."""
    from lathe.models import ZOO

    op_names = _select(ops, [*CASES, *DTYPE_CASES], "op or dtype")
    out = [_Case("op", n, _op_case(CASES)) for n in op_names if n in CASES]
    out += [_Case("dtype", n, _op_case(DTYPE_CASES)) for n in op_names if n in DTYPE_CASES]
    if schedules:
        chosen = SCHEDULE_CASES if schedules is True else _select(schedules, list(SCHEDULE_CASES), "primitive")
        out += [_Case("schedule", p, _schedule_check) for p in chosen]
    if models:
        chosen = DEFAULT_MODELS if models is True else _select(models, list(ZOO), "model")
        out += [_Case("model", n, _model_check) for n in chosen]
    return out


def check_backend(
    target: str,
    *,
    ops: Iterable[str] | None = None,
    models: bool | Iterable[str] = True,
    schedules: bool | Iterable[str] = True,
    seed: int = 0,
    report: Callable[[str], object] = print,
    emulate: bool = False,
) -> ConformanceReport:
    """Run the conformance suite on `target`; `report` gets one line per case as it ends, then
    the summary. `ops`, `models`, `schedules` pick cases (see `cases`). `emulate`: a target
    that does not run here runs under its backend's emulator (a LatheError says what to
    install where it has none) instead of being skipped."""
    checker = _Checker(target, emulate)
    todo = cases(ops, models, schedules)
    result = ConformanceReport(target, seed, emulate)
    t0 = time.perf_counter()
    if emulate and not checker.caps.runs_here:
        emulator = checker.backend.emulator(checker.parsed)  # what is missing, said before any case
        report(f"running '{checker.parsed}' under emulation ({emulator.description})")
    if not checker.caps.runs_here and not emulate:
        why = f"target '{checker.parsed}' does not run on this machine"
        results: Iterator[CaseResult] = (CaseResult(c.kind, c.name, SKIPPED, why) for c in todo)
    else:
        results = _run_isolated(todo, lambda c: c.run(checker, seed))
    for r in results:
        result.results.append(r)
        report(str(r))
    result.seconds = time.perf_counter() - t0
    report(result.summary())
    return result


def _run_isolated(todo: list[_Case], run: Callable[[_Case], CaseResult]) -> Iterator[CaseResult]:
    """Results of `run` on each case, in a forked child where there is fork: a case whose
    generated code kills the child or hangs is failed, and a new child goes on after it."""
    if not hasattr(os, "fork"):
        yield from map(run, todo)
        return
    i = 0
    while i < len(todo):
        for r in _child_results(todo, i, run):
            yield r
            i += 1


def _child_results(todo: list[_Case], start: int, run: Callable[[_Case], CaseResult]) -> Iterator[CaseResult]:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the cases from `start`, one JSON line each
        code = 0
        try:
            os.close(rfd)
            for case in todo[start:]:
                os.write(wfd, (json.dumps(asdict(run(case))) + "\n").encode())
        except BaseException:  # noqa: BLE001 - the parent reports the case it was on
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    lines = _lines(rfd)
    try:
        for case in todo[start:]:
            t0 = time.perf_counter()
            line = next(lines, None)
            if line is None or line == "timeout":
                if line == "timeout":
                    os.kill(pid, signal.SIGKILL)
                why = _ended(os.waitpid(pid, 0)[1], line == "timeout")
                pid = 0
                yield CaseResult(case.kind, case.name, FAILED, why, time.perf_counter() - t0)
                return
            yield CaseResult(**json.loads(line))
    finally:
        os.close(rfd)
        if pid:  # still running (the caller stopped early) or done: never left a zombie
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _lines(fd: int) -> Iterator[str]:
    """Lines from a pipe; "timeout" when none comes within CASE_TIMEOUT; ends at end of file."""
    buffer = b""
    while True:
        while b"\n" not in buffer:
            ready, _, _ = select.select([fd], [], [], CASE_TIMEOUT)
            if not ready:
                yield "timeout"
                return
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield line.decode()


def _ended(status: int, timed_out: bool) -> str:
    if timed_out:
        return f"no result within {CASE_TIMEOUT:g} s (a hang?)"
    if os.WIFSIGNALED(status):
        return f"the process running it died ({signal.Signals(os.WTERMSIG(status)).name})"
    return f"the process running it exited ({os.WEXITSTATUS(status)})"
