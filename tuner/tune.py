"""Tuning a model: its tasks share one trial budget, measured on an executor, recorded, searched.

Every trial is appended to the database as it completes, so a run resumes from the
configurations the database already holds (they are not measured again, and the search
learns from them). Each task measures its default configuration first, and the worker
times it again beside every candidate: "speedup" is relative to it, and it is what the
kernel gets without records. Candidates are ranked by that same-round ratio, not by
seconds, which drift with the load from round to round. Rounds of trials go to the tasks
by the gradient-based scheduler (tuner/scheduler.py), and every task's cost model also
learns from the records of the other workloads of the same target (transfer). At the end
the model check (tuner/check.py) times the tuned build against the default build in one
process and keeps only the records that beat the default in the model.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from lathe.tuner import records
from lathe.tuner.check import ModelCheck, check_in_model
from lathe.tuner.executors import make_executor
from lathe.tuner.features import VERSION as FEATURES_VERSION
from lathe.tuner.measure import Result, Timing, lower_candidate
from lathe.tuner.scheduler import GradientScheduler, task_eta
from lathe.tuner.search import Group, ModelSearch, RandomSearch, full
from lathe.tuner.tasks import Task, extract_tasks

SEARCHES = ("xgb", "random")
MIN_GAIN = 0.01  # a new best within 1% of the old is noise, not improvement: it does not reset --early-stop


@dataclass
class TaskResult:
    task: Task
    trials: int  # measured in this run
    failures: dict[str, int]  # status -> count, in this run
    best: records.Record | None
    default: records.Record | None
    check: records.Record | None = None  # the model check's verdict on `best` (None: not checked)
    runner_up: records.Record | None = None  # the model check's verdict on a runner-up applied instead of `best`

    @property
    def speedup(self) -> float | None:
        """The best's over the default timed beside it (format-1 records: over the default's record)."""
        if self.best is not None and self.best.speedup:
            return self.best.speedup
        if self.best is None or self.default is None or not self.default.seconds:
            return None
        return self.default.seconds / self.best.seconds  # type: ignore[operator]

    @property
    def verdict(self) -> str:
        """What compiling with the database applies for this task, as the table says it (with
        the model check's speedup of the tuned kernels over the default ones in the model)."""
        if self.best is None:
            return "-"
        if self.default is not None and self.best.config == self.default.config:
            return "default"
        if self.check is None:
            return "unchecked"
        if self.runner_up is not None:
            ratio = f" {self.runner_up.speedup:.2f}x" if self.runner_up.speedup else ""
            return "runner-up kept" + ratio
        ratio = f" {self.check.speedup:.2f}x" if self.check.speedup else ""
        return ("kept" if self.check.status == "kept" else "default wins") + ratio


def format_seconds(s: float) -> str:
    s = round(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def transfer_pool(recs: list[records.Record], target: str) -> dict[str, Group]:
    """Every workload's recorded features and seconds on `target`: what the cost models train on."""
    pool: dict[str, Group] = {}
    for r in recs:
        if r.target == target and r.features and r.features_v == FEATURES_VERSION:
            feats, secs = pool.setdefault(r.workload, ([], []))
            feats.append(list(r.features))
            secs.append(r.relative if r.status == "ok" else None)
    return pool


@dataclass
class TaskTuner:
    """One task's search, its measurements in this run, and what the scheduler reads of it."""

    task: Task
    db: str | os.PathLike
    known: list[records.Record]  # the database's records at the start
    search: str = "xgb"
    seed: int = 0
    early_stop: int | None = None
    timing: Timing = field(default_factory=Timing)
    pool: dict[str, Group] = field(default_factory=dict)  # shared by the tasks of a run (transfer)
    done: int = 0
    rounds: int = 0
    since_best: int = 0
    spent_s: float = 0.0  # wall time of this run's rounds of it (proposing, building, timing)
    stopped: bool = False
    history: list[float | None] = field(default_factory=list)  # best seconds after each round
    failures: dict[str, int] = field(default_factory=dict)
    defaults_s: list[float] = field(default_factory=list)  # the default's seconds beside each candidate
    best_relative: float | None = None  # the best candidate's seconds in units of the default beside it

    def __post_init__(self) -> None:
        task = self.task
        mine = [r for r in self.known if r.workload == task.key and r.target == task.target]
        self.tried = {r.config for r in mine}
        self.default = str(full(task.template, task.space, task.default))
        self.inputs = task.random_inputs(self.seed)
        self.reference = task.reference(self.inputs)
        self.module = task.module_text()
        self.flops = task.flops()
        self.weight, self.template = task.weight, task.template
        resumed = records.best(mine, task.key)
        self.defaults_s = [r.default_s for r in mine if r.status == "ok" and r.default_s]
        self.best_relative = resumed.relative if resumed else None
        if self.search == "xgb":
            self.searcher: RandomSearch = ModelSearch(
                task.template, task.space, self.featurize, self.seed, prior=self.pool, key=task.key
            )
            for r in mine:  # resume: the model learns from what the database holds
                try:
                    feats = list(r.features) if r.features and r.features_v == FEATURES_VERSION else None
                    seconds = r.relative if r.status == "ok" else None
                    if feats is None:  # features of another version: this task's records are featurised anew
                        feats = self.featurize(r.config)
                        pooled = self.pool.setdefault(task.key, ([], []))  # and the other tasks learn from them
                        pooled[0].append(feats)
                        pooled[1].append(seconds)
                    self.searcher.observe(r.config, seconds, feats)
                except Exception:
                    continue
        else:
            self.searcher = RandomSearch(task.template, task.space, self.seed)

    @property
    def best_s(self) -> float | None:
        """The best's seconds at the default's median seconds so far: what the scheduler
        weighs (a latency), steady while the load moves the rounds' absolute seconds."""
        if self.best_relative is None:
            return None
        if not self.defaults_s:  # format-1 records only: relative is in seconds
            return self.best_relative
        return self.best_relative * float(np.median(self.defaults_s))

    @best_s.setter
    def best_s(self, seconds: float | None) -> None:
        self.best_relative = seconds / float(np.median(self.defaults_s)) if seconds and self.defaults_s else seconds

    def featurize(self, config: str) -> list[float]:
        from lathe.tuner.features import loop_features

        return loop_features(lower_candidate(self.module, config, self.task.lanes))

    @property
    def finished(self) -> bool:
        return self.stopped or len(self.tried) >= self.task.space_size

    def propose(self, n: int) -> list[str]:
        """The next round's configurations (the default first); none when the task is done."""
        if self.early_stop and self.since_best >= self.early_stop:
            self.stopped = True
        if self.finished or n <= 0:
            return []
        out = [self.default] if self.default not in self.tried else []
        if len(out) < n:
            out += [c for c in self.searcher.propose(n - len(out), self.tried | set(out), self.task.space_size)]
        if not out:
            self.stopped = True
        return out

    def job(self, config: str, round_id: object = None) -> dict:
        return dict(
            module=self.module,
            config=config,
            default=self.default,  # timed beside it
            round=round_id,  # a worker warms up once per round
            activations=self.task.activations,  # whether the model reads its data from memory
            lanes=self.task.lanes,
            target=self.task.target,
            inputs=self.inputs,
            reference=self.reference,
            timing=self.timing,
            flops=self.flops,  # with the buffers' bytes, whether it is timed on rotating buffers
        )

    def record(self, config: str, res: Result) -> records.Record:
        task = self.task
        feats = res.features or None
        rec = records.Record(
            task.key,
            task.target,
            task.name,
            config,
            res.status,
            res.seconds,
            res.noise,
            self.flops,
            res.error,
            features=feats,
            features_v=FEATURES_VERSION if feats else 0,
            rotate=res.rotate if res.ok else 0,
            default_s=res.default_s if res.ok else None,
        )
        records.append(self.db, rec)
        self.tried.add(config)
        seconds = rec.relative if res.ok else None
        self.searcher.observe(config, seconds, res.features)
        if feats:
            pooled = self.pool.setdefault(task.key, ([], []))
            pooled[0].append(feats)
            pooled[1].append(seconds)
        self.done += 1
        if not res.ok:
            self.failures[res.status] = self.failures.get(res.status, 0) + 1
        if res.ok and res.default_s:
            self.defaults_s.append(res.default_s)
        best = self.best_relative
        gain = res.ok and (best is None or seconds < best * (1.0 - MIN_GAIN))  # type: ignore[operator]
        if res.ok and (best is None or seconds < best):  # type: ignore[operator]
            self.best_relative = seconds
        self.since_best = 0 if gain else self.since_best + 1
        return rec

    def end_round(self) -> None:
        self.rounds += 1
        self.history.append(self.best_s)

    def progress_line(self, done_all: int, budget: int, warm_up: int, round_left: int = 0) -> str:
        """The progress display's line for this task: trials, best so far, and its ETA at its share so far."""
        best = f"{self.flops / self.best_s / 1e9:.1f} GFLOP/s" if self.best_s else "-"
        untried = self.task.space_size - len(self.tried)
        eta = task_eta(self.done, done_all, budget, self.spent_s, untried, warm_up, round_left)
        if eta is None or self.finished:
            return f"{self.task.name[:40]}: {self.done} trials, best {best}"
        total, seconds = eta
        return (
            f"{self.task.name[:40]}: {self.done} of ~{total} trials at its share so far, "
            f"best {best}, ETA {format_seconds(seconds)}"
        )

    def result(self) -> TaskResult:
        recs, _ = records.load(self.db)
        task = self.task
        mine = [r for r in recs if r.workload == task.key and r.target == task.target]
        # the default as its best is timed (records.best): speedups are of like timings
        defaults = [r for r in mine if r.config == self.default]
        best = records.best(mine, task.key)
        check = records.verdict(recs, task.key, best.config) if best else None
        _, applied = records.applied(mine, task.key)
        runner_up = applied if applied is not None and best is not None and applied.config != best.config else None
        return TaskResult(task, self.done, self.failures, best, records.best(defaults, task.key), check, runner_up)


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
    executor=None,
    batch: int = 8,
    plot: str | os.PathLike | None = None,
    transfer: bool = True,
    build=None,
    check: ModelCheck | None = ModelCheck(),  # noqa: B008  (frozen)
) -> list[TaskResult]:
    """Tune the tasks of `module` with `trials` new measurements in all, shared among them
    by the task scheduler, measured on `executor` (tuner/executors.make_executor), recorded in `db`.
    With `build` (a tuning database path or None -> a compiled model, as lathe.compile
    gives) and `check`, the model check ends the run (tuner/check.py)."""
    from lathe.errors import LatheError

    if search not in SEARCHES:
        raise LatheError(f"unknown search '{search}'", note="searches: " + ", ".join(SEARCHES))
    if trials < 0:
        raise LatheError(f"trials must be at least 0, got {trials}")
    if batch < 1:
        raise LatheError(f"batch must be at least 1, got {batch}")
    records.check_writable(db)
    if plot is not None:
        from lathe.tuner.plot import check_plotting

        check_plotting()
    with make_executor(executor, timeout_s) as ex:  # before the tasks: a bad executor is said at once
        tasks = extract_tasks(module, target, params, entry)
        known, notes = records.load(db)
        for n in notes:
            print(n, file=sys.stderr)
        pool = transfer_pool(known, tasks[0].target) if transfer and tasks else {}
        tuners = [TaskTuner(t, db, known, search, seed, early_stop, timing or Timing(), pool) for t in tasks]
        bars: list = []  # overall (with its ETA), then the task being tuned
        if progress:
            from tqdm import tqdm

            bars.append(tqdm(total=trials, unit="trial", file=sys.stderr, desc=f"{len(tasks)} tasks"))
            bars.append(tqdm(total=None, unit="trial", file=sys.stderr, position=1, leave=False, bar_format="{desc}"))
        scheduler = GradientScheduler()
        run_id = f"{os.getpid()}-{time.time()}"
        rounds = 0
        done = 0
        size = max(batch, ex.slots)
        while done < trials:
            i = scheduler.pick(tuners)
            if i is None:
                break
            tuner = tuners[i]
            start = time.perf_counter()
            configs = tuner.propose(min(size, trials - done))
            if not configs:
                continue
            rounds += 1
            for n, (j, res) in enumerate(ex.measure([tuner.job(c, (run_id, rounds)) for c in configs]), 1):
                tuner.record(configs[j], res)
                done += 1
                now = time.perf_counter()
                tuner.spent_s += now - start
                start = now
                if bars:
                    line = tuner.progress_line(done, trials, size * len(tuners), len(configs) - n)
                    bars[1].set_description_str(line)
                    bars[0].update(1)
            tuner.end_round()
        for b in reversed(bars):
            b.close()
        if build is not None and check is not None and tasks:
            check_in_model(tuners, db, build, check, module, params, entry, progress)
        if plot is not None:
            from lathe.tuner.plot import plot_curves

            plot_curves(tasks, records.load(db)[0], plot)
        return [t.result() for t in tuners]


def format_table(results: list[TaskResult]) -> str:
    rows = [
        (
            "task",
            "template",
            "weight",
            "trials",
            "failures",
            "best GFLOP/s",
            "speedup",
            "sets",
            "in the model",
            "best configuration",
        )
    ]
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
                str(r.best.rotate or "-") if r.best else "-",
                r.verdict,
                r.best.config if r.best else "(none worked)" if r.trials else "(no trials: the budget ran out first)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def best_configs(te_module: ModuleOp, db: str | os.PathLike, target: str) -> tuple[dict[str, str], list[str]]:
    """For compiling with records: the configuration of each kernel of a te-level module
    ({kernel name: config}) by records.applied (its best record, unless the model check found
    the default faster in the model: then a record the check kept, if any), and the notes to print (corrupt lines, foreign records, ONE warning naming every
    kernel left with its default schedule for want of a record, one note for those whose
    default won the check, and one for best records never checked)."""
    from lathe.tuner.tasks import call_counts, kernel_flops, kernels_at_te, normalised_kernel, workload_key

    recs, notes = records.load(db)
    if not os.path.exists(db):
        notes.append(f"note: tuning database {db} does not exist")
    chosen: dict[str, str] = {}
    missing: list[str] = []
    default_won: list[str] = []
    unchecked: list[str] = []
    keys = set()
    calls = call_counts(te_module)
    work = {}
    mine = [r for r in recs if r.target == target]
    for name, f in kernels_at_te(te_module).items():
        key = workload_key(normalised_kernel(f), target)
        keys.add(key)
        work[name] = kernel_flops(f) * max(calls.get(name, 0), 1)
        record, check = records.applied(mine, key)
        if record is None and check is None:  # (no record at all: a best record is applied or checked)
            missing.append(name)
        elif record is None:
            default_won.append(name)
        else:
            chosen[name] = record.config
            if check is None and record.speedup != 1.0:
                unchecked.append(name)
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
    if default_won:
        notes.append(
            f"note: {len(default_won)} kernels keep their default schedule, which ran faster in the model "
            f"than their best record (lathe tune's model check): {', '.join(default_won)}"
        )
    if unchecked:
        notes.append(
            f"note: the best records of {len(unchecked)} kernels were never checked in the model "
            f"(a tuning run that did not finish, or records from before the check): {', '.join(unchecked)}"
        )
    return chosen, notes
