"""Tuning a model: its tasks, one after another, each measured, recorded and searched.

Every trial is appended to the database as it completes, so a run resumes from the
configurations the database already holds (they are not measured again, and the search
learns from them). Each task measures its default configuration first: it is what
"speedup" is relative to, and what the kernel gets without records.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp

from lathe.tuner import records
from lathe.tuner.measure import LocalRunner, Timing, lower_candidate
from lathe.tuner.search import ModelSearch, RandomSearch, full
from lathe.tuner.tasks import Task, extract_tasks

SEARCHES = ("xgb", "random")


@dataclass
class TaskResult:
    task: Task
    trials: int  # measured in this run
    failures: dict[str, int]  # status -> count, in this run
    best: records.Record | None
    default: records.Record | None

    @property
    def speedup(self) -> float | None:
        if self.best is None or self.default is None or not self.default.seconds:
            return None
        return self.default.seconds / self.best.seconds  # type: ignore[operator]


def tune_task(
    task: Task,
    db: str | os.PathLike,
    trials: int,
    runner: LocalRunner,
    search: str = "xgb",
    seed: int = 0,
    batch: int = 8,
    early_stop: int | None = None,
    timing: Timing | None = None,
    progress=None,
) -> TaskResult:
    timing = timing or Timing()
    known, _ = records.load(db)
    mine = [r for r in known if r.workload == task.key and r.target == task.target]
    tried = {r.config for r in mine}
    default = str(full(task.template, task.space, task.default))
    inputs = task.random_inputs(seed)
    reference = task.reference(inputs)
    module = task.module_text()
    flops = task.flops()

    def featurize(config: str) -> list[float]:
        from lathe.tuner.features import loop_features

        return loop_features(lower_candidate(module, config, task.lanes))

    searcher = (
        ModelSearch(task.template, task.space, featurize, seed)
        if search == "xgb"
        else RandomSearch(task.template, task.space, seed)
    )
    if isinstance(searcher, ModelSearch):  # resume: the model learns from what the database holds
        for r in mine:
            try:
                searcher.observe(r.config, r.seconds if r.status == "ok" else None, featurize(r.config))
            except Exception:
                continue
    failures: dict[str, int] = {}
    done = 0
    best_s = min((r.seconds for r in mine if r.status == "ok" and r.seconds), default=None)
    since_best = 0

    def measure(config: str) -> None:
        nonlocal done, best_s, since_best
        job = dict(
            module=module,
            config=config,
            lanes=task.lanes,
            target=task.target,
            inputs=inputs,
            reference=reference,
            timing=timing,
        )
        res = runner.measure(job)
        rec = records.Record(
            task.key, task.target, task.name, config, res.status, res.seconds, res.noise, flops, res.error
        )
        records.append(db, rec)
        tried.add(config)
        searcher.observe(config, res.seconds if res.ok else None, res.features)
        done += 1
        if not res.ok:
            failures[res.status] = failures.get(res.status, 0) + 1
        if res.ok and (best_s is None or res.seconds < best_s):  # type: ignore[operator]
            best_s, since_best = res.seconds, 0
        else:
            since_best += 1
        if progress is not None:
            progress(task, rec, best_s)

    if default not in tried and trials > 0:
        measure(default)
    while done < trials and len(tried) < task.space_size:
        if early_stop and since_best >= early_stop:
            break
        proposals = searcher.propose(min(batch, trials - done), tried, task.space_size)
        if not proposals:
            break
        for c in proposals:
            if done >= trials:
                break
            measure(c)
    known, _ = records.load(db)
    mine = [r for r in known if r.workload == task.key and r.target == task.target]
    return TaskResult(
        task,
        done,
        failures,
        records.best(mine, task.key),
        next((r for r in mine if r.config == default and r.status == "ok"), None),
    )


def tune(
    module: ModuleOp,
    params=None,
    trials: int = 64,
    db: str | os.PathLike = "lathe-tuning.jsonl",
    target: str = "llvm",
    timeout_s: float = 60.0,
    search: str = "xgb",
    seed: int = 0,
    early_stop: int | None = None,
    timing: Timing | None = None,
    progress: bool = False,
    entry: str = "main",
) -> list[TaskResult]:
    """Tune every task of `module` with `trials` new measurements each, recording them in `db`."""
    from lathe.errors import LatheError

    if search not in SEARCHES:
        raise LatheError(f"unknown search '{search}'", note="searches: " + ", ".join(SEARCHES))
    if trials < 0:
        raise LatheError(f"trials must be at least 0, got {trials}")
    records.check_writable(db)
    tasks = extract_tasks(module, target, params, entry)
    _, notes = records.load(db)
    for n in notes:
        print(n, file=sys.stderr)
    results = []
    bars: list = []  # overall, then the task's own (each with its ETA)
    if progress:
        from tqdm import tqdm

        bars.append(tqdm(total=trials * len(tasks), unit="trial", file=sys.stderr, desc=f"{len(tasks)} tasks"))

    def report(task: Task, rec: records.Record, best_s: float | None) -> None:
        if bars:
            best = f"{task.flops() / best_s / 1e9:.1f} GFLOP/s" if best_s else "-"
            bars[-1].set_description(f"{task.name[:32]} best {best}")
            for b in bars:
                b.update(1)

    with LocalRunner(timeout_s) as runner:
        for t in tasks:
            if bars:
                from tqdm import tqdm

                bars.append(
                    tqdm(total=trials, unit="trial", file=sys.stderr, desc=t.name[:32], position=1, leave=False)
                )
            results.append(
                tune_task(t, db, trials, runner, search, seed, early_stop=early_stop, timing=timing, progress=report)
            )
            if len(bars) > 1:
                bars.pop().close()
    for b in bars:
        b.close()
    return results


def format_table(results: list[TaskResult]) -> str:
    rows = [("task", "template", "weight", "trials", "failures", "best GFLOP/s", "speedup", "best configuration")]
    for r in results:
        fails = ", ".join(f"{n} {k}" for k, n in sorted(r.failures.items())) or "0"
        rows.append(
            (
                r.task.name,
                r.task.template,
                str(r.task.weight),
                str(r.trials),
                fails,
                f"{r.best.gflops:.2f}" if r.best else "-",
                f"{r.speedup:.2f}x" if r.speedup else "-",
                r.best.config if r.best else "(none worked)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def best_configs(te_module: ModuleOp, db: str | os.PathLike, target: str) -> tuple[dict[str, str], list[str]]:
    """For compiling with records: the best recorded configuration of each kernel of a te-level
    module ({kernel name: config}), and the notes to print (corrupt lines, foreign records,
    and ONE warning naming every kernel left with its default schedule)."""
    from lathe.tuner.tasks import call_counts, kernel_flops, kernels_at_te, normalised_kernel, workload_key

    recs, notes = records.load(db)
    if not os.path.exists(db):
        notes.append(f"note: tuning database {db} does not exist")
    chosen: dict[str, str] = {}
    missing: list[str] = []
    keys = set()
    calls = call_counts(te_module)
    work = {}
    for name, f in kernels_at_te(te_module).items():
        key = workload_key(normalised_kernel(f), target)
        keys.add(key)
        work[name] = kernel_flops(f) * max(calls.get(name, 0), 1)
        best = records.best([r for r in recs if r.target == target], key)
        if best is None:
            missing.append(name)
        else:
            chosen[name] = best.config
    foreign = records.foreign_note(db, recs, keys, target)
    if foreign:
        notes.append(foreign)
    if missing:
        share = sum(work[n] for n in missing) / max(sum(work.values()), 1.0)
        notes.append(
            f"warning: no tuning record in {db} for {len(missing)} of {len(work)} kernels "
            f"(about {100 * share:.0f}% of the model's floating-point work, the estimate of their share "
            f"of its run time), which keep their default schedule: {', '.join(missing)}"
        )
    return chosen, notes
