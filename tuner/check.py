"""The model check: the tuned build against the default build, kernel by kernel, in one process.

A candidate is timed alone in a worker; in the model it runs between other kernels, on
inputs its producer has just written, with the caches and the thread pool in the state the
model leaves them. A record that won in the worker can lose there (BERT-base tuned end to end
once ran 1.15x ONNX Runtime against the default schedules' 1.01x, docs/tuning.md). So tuning
ends by compiling the model twice, with every task's best record and with the default
schedules, and timing every kernel of both builds in the model (GraphExecutor.time_kernels,
as the profiler does: each kernel through its own entry, in run()'s order, on the buffers
the kernels before it wrote), the two builds taking turns in blocks. A task's best record is
kept only where its kernels' time per run (their calls summed; the median over all runs) is
below the default build's. The verdict is appended to the database (status `kept` or
`default_wins`, `seconds` and `default_s` the two medians), and compiling with the database
applies no record whose default won.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from lathe.dialects.functions import param_names
from lathe.tuner import records
from lathe.tuner.tasks import random_arrays


@dataclass(frozen=True)
class ModelCheck:
    """How the two builds are timed: `blocks` turns each of `repeat` runs, alternating (the
    default build first in odd turns), after `warmup_s` of wall time for each build's first
    turn and `block_warmup_s` before every later one."""

    blocks: int = 6
    repeat: int = 10
    candidates: int = 2  # configurations per task, best first, until one beats the default
    warmup_s: float = 1.0
    block_warmup_s: float = 0.1


def model_inputs(module: ModuleOp, params, entry: str = "main", seed: int = 0):
    """Random inputs for the entry's arguments that `params` does not bind."""
    main = next(f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == entry)
    bound = set(params or {})
    types = [t for n, t in zip(param_names(main), main.function_type.inputs.data) if n not in bound]
    return random_arrays(types, seed)  # type: ignore[arg-type]


def time_builds(builds: dict[str, object], inputs, check: ModelCheck) -> dict[str, list[dict[str, float]]]:
    """Per build, per run: each kernel's seconds (its calls in the run summed), by name."""
    for cm in builds.values():
        cm.executor.run(*inputs)  # type: ignore[attr-defined]  (binds the inputs and the outputs)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in builds}
    order = list(builds)
    for b in range(check.blocks):
        for name in order if b % 2 == 0 else reversed(order):
            ex = builds[name].executor  # type: ignore[attr-defined]
            warm = check.warmup_s if b == 0 else check.block_warmup_s
            for times in ex.time_kernels(check.repeat, warm):
                per_kernel: dict[str, float] = {}
                for (_, _, kernel), t in zip(ex.steps, times):
                    per_kernel[kernel] = per_kernel.get(kernel, 0.0) + t
                runs[name].append(per_kernel)
    return runs


def check_in_model(tuners, db, build, check: ModelCheck, module: ModuleOp, params, entry: str, progress: bool) -> None:
    """Time each tuned task's kernels in the tuned build against the default build and append
    the verdicts to `db`. `build(path or None)` compiles the model with the records of that
    database (lathe.compile's `tuning_db`), or with the default schedules. A task whose best
    record loses gets its runner-up (records.runner_up) checked in the next round, up to
    `check.candidates` configurations per task, so that a task the worker did speed up is not
    left on its default only because its single best did not hold in the model."""
    tried = {t.task.key: {t.default} for t in tuners}
    pending = list(tuners)
    for round_ in range(check.candidates):
        recs, _ = records.load(db)
        checked = []  # (tuner, the record to check), for the tasks with one
        for t in pending:
            mine = [r for r in recs if r.target == t.task.target]
            rec = (
                records.best(mine, t.task.key)
                if round_ == 0
                else records.runner_up(mine, t.task.key, tried[t.task.key])
            )
            if rec is None or rec.config in tried[t.task.key] or (rec.speedup is not None and rec.speedup <= 1.0):
                continue
            tried[t.task.key].add(rec.config)
            checked.append((t, rec))
        if not checked:
            return
        verdicts = _check_round(checked, db, build, check, module, params, entry, progress, round_)
        if verdicts is None:
            return
        pending = [t for t, rec in checked if verdicts[t.task.key] == "default_wins"]


def _check_round(
    checked, db, build, check: ModelCheck, module: ModuleOp, params, entry: str, progress: bool, round_: int
):
    """One build with `checked`'s records against the default build; the verdicts by workload
    (None where the check cannot run)."""
    if progress:
        what = "best records" if round_ == 0 else "runners-up of the records the default beat"
        print(f"model check: the tuned build against the default, {len(checked)} tasks' {what}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        tuned_db = os.path.join(tmp, "tuned.jsonl")  # the records to check, whatever earlier checks said
        for _, r in checked:
            records.append(tuned_db, r)
        with contextlib.redirect_stderr(io.StringIO()):  # its warning names the untuned kernels
            builds = {"tuned": build(tuned_db), "default": build(None)}
    if not all(hasattr(getattr(cm, "executor", None), "time_kernels") for cm in builds.values()):
        print("note: the model check needs the graph executor; the records are applied unchecked", file=sys.stderr)
        return None
    runs = time_builds(builds, model_inputs(module, params, entry), check)
    verdicts = {}
    for t, rec in checked:
        names = set(t.task.kernels)
        tuned_s, default_s = (
            statistics.median(sum(v for k, v in run.items() if k in names) for run in runs[b])
            for b in ("tuned", "default")
        )
        status = verdicts[t.task.key] = "kept" if tuned_s < default_s else "default_wins"
        records.append(
            db,
            records.Record(
                t.task.key,
                t.task.target,
                t.task.name,
                rec.config,
                status,
                tuned_s,
                None,
                rec.flops,
                default_s=default_s,
            ),
        )
    return verdicts
