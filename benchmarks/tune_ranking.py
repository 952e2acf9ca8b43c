"""The cost model's transfer: pairwise ranking accuracy on one task's configurations, with
the model trained only on the other tasks' records (issue 11's bar: >= 0.85; Ansor reports 0.851).

    python benchmarks/tune_ranking.py --offline [PATH ...] [--tasks TASKS.json] [--min-configs 16]
    python benchmarks/tune_ranking.py [--scale small|full] [--configs N] [--db PATH]

--offline measures nothing: leave one task out over every task in the record files (by
default the sessions kept under benchmarks/data/ranking/, with their kernels in its
tasks.json). Every record is featurised anew by this Lathe (tuner/features.py: a feature
vector is a function of the candidate's loop program, so records of any features version
are evaluated with the current one; cached in --cache per source of the lowering). Each task with
at least --min-configs working distinct configurations is held out in turn: the ranker
(tuner/search.train_ranker) is trained on every session of every other task and scores the
held-out task's working configurations. Pairs are only formed within one session (one
record file): a v1 session's seconds and a v2 session's ratios to the default do not
compare, nor do two sessions' loads. A pair is "within noise" when its two times differ by
less than the larger of their records' noise (interquartile range / median of the
repeats); all pairs are the headline, the pairs apart by more than the noise and within it
are reported beside them. Printed per task, per template and the mean over tasks.

--truth A.jsonl,B.jsonl names two record files of the same configurations measured in two
sessions (both among the evaluated files): per task, their repeatability (the share of
pairs of configurations working in both that the two sessions order alike, over all pairs
and over those apart by more than the noise in both), and a column "agreed": the held-out
model against the pairs both sessions order alike, in that order (a pair the sessions
disagree on has no truth to score).

Without --offline, each of the three workloads of issue 11 (benchmarks/tune_workloads.py)
gets N random configurations measured into --db (its default first; rerunning measures only
what is missing), and the same leave-one-task-out evaluation runs on that database. The
issue's scale, on a quiet machine:

    python benchmarks/tune_ranking.py --scale full --configs 200 --db ranking-full.jsonl

A random search proposes the same configurations for the same --seed, so a second --db
measures them again (a second session for --truth); --save-tasks adds the measured tasks'
kernels to --tasks, for evaluating the records offline later.

The kept sessions were made by `lathe.tune` on BERT-base and ResNet-50
(benchmarks/tune_model.py), by benchmarks/tune_matmul.py at 1024 and 2048, and by this
benchmark at the small scale (48 configurations) and at both scales twice (100 random
configurations, random_loaded_v2_a/b: the --truth pair); tasks.json holds each task's
te-level kernel (extracted by tuner/tasks.extract_tasks when the records were made), so a
later change to the graph lowering does not orphan them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "ranking"
# --scale resnet: two of ResNet-50's convs that stay direct convs (conv2d_nhwc), where the
# issue's 3x3 stride-1 convs go to Winograd's batch matmul: a second template to transfer to
RESNET = {
    "conv1x1": ((1, 64, 28, 28), (256, 64, 1, 1), "strides=[1, 1], padding=[0, 0, 0, 0]"),
    "conv3x3s2": ((1, 64, 28, 28), (128, 64, 3, 3), "strides=[2, 2], padding=[1, 1, 1, 1]"),
}


def resnet_task(name: str):
    """The conv's heaviest task (its NCHW model given the compiler's NHWC layout)."""
    import numpy as np

    from lathe.textual_ir.parser import parse_relay
    from lathe.tuner.tasks import extract_tasks

    x, w, attrs = RESNET[name]
    src = f"def @main(%x: Tensor[{x}, float32], %w: Tensor[{w}, float32]) {{ nn.conv2d(%x, %w, {attrs}) }}"
    params = {"w": np.random.default_rng(0).standard_normal(w).astype(np.float32)}
    return extract_tasks(parse_relay(src, f"{name}.lathe"), "llvm", params)[0]


@dataclass
class Session:
    """One task's working records of one record file: what pairs are formed within."""

    name: str  # the file's stem
    key: str
    configs: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)  # seconds in units of the default beside them (v1: seconds)
    noise: list[float] = field(default_factory=list)
    features: list[list[float]] = field(default_factory=list)


@dataclass
class TaskInfo:
    key: str
    source: str  # which model or benchmark it is from
    name: str
    template: str
    lanes: int
    module: str


def load_tasks(path: str | os.PathLike) -> dict[str, TaskInfo]:
    with open(path) as f:
        data = json.load(f)
    return {k: TaskInfo(k, v["source"], v["name"], v["template"], v["lanes"], v["module"]) for k, v in data.items()}


def load_sessions(paths: list[str], tasks: dict[str, TaskInfo]) -> list[Session]:
    from lathe.tuner import records

    out: list[Session] = []
    for path in paths:
        by_key: dict[str, Session] = {}
        for r in records.load(path)[0]:
            if r.workload not in tasks or r.status != "ok" or not r.relative:
                continue
            s = by_key.setdefault(r.workload, Session(Path(path).stem, r.workload))
            if r.config in s.configs:  # measured twice in one session: the first stands
                continue
            s.configs.append(r.config)
            s.values.append(r.relative)
            s.noise.append(r.noise or 0.0)
        out += [s for s in by_key.values() if len(s.configs) >= 2]
    return out


def _lowering_fingerprint() -> str:
    """The features version and the source of everything that makes a candidate's loop program
    (the dialects, the passes, the lowering, the tuner): features are read from that program,
    so a changed lowering changes them, and a build failure cached under an edited tree (or a
    half-edited one) must not outlive the edit."""
    from lathe.tuner.features import VERSION

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"v{VERSION}".encode())
    for part in ("dialects", "passes", "lowering", "tuner"):
        for path in sorted((root / part).rglob("*.py")):
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def featurise(sessions: list[Session], tasks: dict[str, TaskInfo], cache_path: str) -> tuple[float, int]:
    """Every session's features by this Lathe, through a cache keyed by the lowering's source
    (entries of other sources are dropped when it is written): seconds spent, and how many
    records were dropped because this Lathe no longer builds their configuration (a template's
    knobs changed since they were measured)."""
    from lathe.tuner.features import loop_features
    from lathe.tuner.measure import lower_candidate

    version = _lowering_fingerprint()
    cache: dict[str, list[float]] = {}
    if os.path.exists(cache_path):
        with open(cache_path) as f:
            cache = {k: v for k, v in json.load(f).items() if k.startswith(version + "|")}
    t0, new, dropped = time.perf_counter(), 0, 0
    for s in sessions:
        task = tasks[s.key]
        keep = []
        for i, c in enumerate(s.configs):
            k = f"{version}|{s.key}|{c}"
            if k not in cache:
                try:
                    cache[k] = loop_features(lower_candidate(task.module, c, task.lanes))
                except Exception:  # an unknown knob or value now: a LatheError, or a template's assertion
                    cache[k] = []
                new += 1
            if cache[k]:
                keep.append(i)
            else:
                dropped += 1
        s.configs, s.values, s.noise = ([x[i] for i in keep] for x in (s.configs, s.values, s.noise))
        s.features = [cache[f"{version}|{s.key}|{c}"] for c in s.configs]
    if new:
        with open(cache_path + ".tmp", "w") as f:
            json.dump(cache, f)
        os.replace(cache_path + ".tmp", cache_path)
    return time.perf_counter() - t0, dropped


@dataclass
class Pairs:
    right: float = 0.0
    total: int = 0

    def add(self, right: float) -> None:
        self.right += right
        self.total += 1

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else math.nan


@dataclass
class Truth:
    """One task's configurations working in two sessions of the same configurations."""

    configs: list[str]
    a: Session  # restricted to `configs`, in their order
    b: Session

    def pairs(self):
        """(i, j, whether i is faster in both, apart by more than the noise in both) of every
        pair the two sessions order alike."""
        a, b = self.a, self.b
        for i in range(len(self.configs)):
            for j in range(i + 1, len(self.configs)):
                da, db = a.values[i] - a.values[j], b.values[i] - b.values[j]
                if da * db > 0:
                    yield i, j, da < 0, _apart(a, i, j) and _apart(b, i, j)

    def repeatability(self) -> tuple[Pairs, Pairs]:
        """The share of pairs the two sessions order alike: over all pairs, and over the pairs
        apart by more than the noise in both sessions."""
        every, apart = Pairs(), Pairs()
        a, b = self.a, self.b
        for i in range(len(self.configs)):
            for j in range(i + 1, len(self.configs)):
                alike = float((a.values[i] - a.values[j]) * (b.values[i] - b.values[j]) > 0)
                every.add(alike)
                if _apart(a, i, j) and _apart(b, i, j):
                    apart.add(alike)
        return every, apart


def _apart(s: Session, i: int, j: int) -> bool:
    a, b = s.values[i], s.values[j]
    return max(a, b) / min(a, b) - 1.0 >= max(s.noise[i], s.noise[j])


def _restrict(s: Session, configs: list[str]) -> Session:
    """`s` with only `configs`, in their order (its features too, once featurised)."""
    at = {c: k for k, c in enumerate(s.configs)}
    idx = [at[c] for c in configs]
    values, noise = [s.values[k] for k in idx], [s.noise[k] for k in idx]
    return Session(s.name, s.key, list(configs), values, noise, [s.features[k] for k in idx] if s.features else [])


def truths(sessions: list[Session], a: str, b: str) -> dict[str, Truth]:
    """The tasks measured in both record files `a` and `b` (paths), by key."""
    by = {(s.name, s.key): s for s in sessions}
    out = {}
    for key in sorted({s.key for s in sessions}):
        sa, sb = by.get((Path(a).stem, key)), by.get((Path(b).stem, key))
        if sa is None or sb is None:
            continue
        common = [c for c in sa.configs if c in set(sb.configs)]
        if len(common) >= 2:
            out[key] = Truth(common, _restrict(sa, common), _restrict(sb, common))
    return out


def score_pairs(scores: list[float], s: Session, every: Pairs, apart: Pairs, close: Pairs) -> None:
    """Higher score = predicted faster; a tie of scores counts half."""
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            a, b = s.values[i], s.values[j]
            if a == b:
                continue
            right = 0.5 if scores[i] == scores[j] else float((scores[i] > scores[j]) == (a < b))
            every.add(right)
            (apart if _apart(s, i, j) else close).add(right)


def score_truth(scores: list[float], t: Truth, agreed: Pairs, agreed_apart: Pairs) -> None:
    """Against the pairs both sessions order alike (and those apart by more than the noise in both)."""
    for i, j, i_faster, apart in t.pairs():
        right = 0.5 if scores[i] == scores[j] else float((scores[i] > scores[j]) == i_faster)
        agreed.add(right)
        if apart:
            agreed_apart.add(right)


def leave_one_task_out(
    sessions: list[Session], tasks: dict[str, TaskInfo], min_configs: int, truth: dict[str, Truth] | None = None
) -> list[dict]:
    """One row per task with at least `min_configs` working distinct configurations; with
    `truth`, its tasks' rows also score the pairs both sessions order alike."""
    from lathe.tuner.search import train_ranker

    distinct: dict[str, set[str]] = {}
    for s in sessions:
        distinct.setdefault(s.key, set()).update(s.configs)
    rows = []
    for key in sorted(distinct, key=lambda k: (tasks[k].template, tasks[k].source, tasks[k].name, k)):
        if len(distinct[key]) < min_configs:
            continue
        model = train_ranker([(s.features, s.values) for s in sessions if s.key != key])
        every, apart, close = Pairs(), Pairs(), Pairs()
        for s in sessions:
            if s.key == key and model is not None:
                score_pairs(model.score(s.features), s, every, apart, close)
        mine = [s for s in sessions if s.key == key]
        extra = {}
        if truth is not None and key in truth and model is not None:
            agreed, agreed_apart = Pairs(), Pairs()
            score_truth(model.score(truth[key].a.features), truth[key], agreed, agreed_apart)
            extra = {"agreed": agreed, "agreed apart": agreed_apart}
        rows.append(
            {
                **extra,
                "task": tasks[key],
                "sessions": ", ".join(f"{s.name} ({len(s.configs)})" for s in mine),
                "configs": len(distinct[key]),
                "noise": statistics.median(n for s in mine for n in s.noise),
                "all": every,
                "apart": apart,
                "close": close,
            }
        )
    return rows


def report(rows: list[dict]) -> dict[str, float]:
    """Print the table; the mean over tasks of each column (a column's mean: over the tasks
    that have pairs in it)."""
    columns = ["all", "apart", "close"] + [c for c in ("agreed", "agreed apart") if any(c in r for r in rows)]
    heads = {"all": "all pairs", "close": "within noise"}
    print(
        f"{'task':44s} {'template':12s} {'configs':>7s} {'noise':>6s} "
        + " ".join(f"{heads.get(c, c):>15s}" for c in columns)
    )
    for r in rows:
        t = r["task"]
        cols = " ".join(f"{r.get(c, Pairs()).accuracy:6.3f} ({r.get(c, Pairs()).total:6d})" for c in columns)
        print(f"{(t.source + ' ' + t.name)[:44]:44s} {t.template:12s} {r['configs']:7d} {r['noise']:6.3f} {cols}")
    means: dict[str, float] = {}
    for template in sorted({r["task"].template for r in rows}) + [""]:
        sel = [r for r in rows if not template or r["task"].template == template]
        vals = {c: [r[c].accuracy for r in sel if c in r and r[c].total] for c in columns}
        m = {c: sum(v) / len(v) if v else math.nan for c, v in vals.items()}
        label = f"mean of {len(sel)} {template or 'tasks'}"
        print(f"{label:44s} {'':12s} {'':7s} {'':6s} " + " ".join(f"{m[c]:6.3f} {'':8s}" for c in m))
        if not template:
            means = m
    return means


def report_repeatability(truth: dict[str, Truth], tasks: dict[str, TaskInfo]) -> None:
    print(f"{'repeatability: task':44s} {'configs':>7s} {'alike, all pairs':>17s} {'apart in both':>15s}")
    for key, t in truth.items():
        every, apart = t.repeatability()
        name = f"{tasks[key].source} {tasks[key].name}"[:44]
        print(
            f"{name:44s} {len(t.configs):7d} {every.accuracy:6.3f} ({every.total:7d}) {apart.accuracy:6.3f} ({apart.total:6d})"
        )


def evaluate(
    paths: list[str], tasks: dict[str, TaskInfo], min_configs: int, cache: str, truth: tuple[str, str] | None = None
) -> dict[str, float]:
    from lathe.tuner.features import VERSION

    sessions = load_sessions(paths, tasks)
    spent, dropped = featurise(sessions, tasks, cache)
    sessions = [s for s in sessions if len(s.configs) >= 2]
    print(f"{len(sessions)} sessions of {len({s.key for s in sessions})} tasks from {len(paths)} files, ", end="")
    print(f"featurised (features v{VERSION}) in {spent:.0f} s", end="")
    print(f"; {dropped} records dropped: this Lathe does not build their configurations" if dropped else "")
    agreed = truths(sessions, *truth) if truth else None
    if agreed is not None:
        report_repeatability(agreed, tasks)
    return report(leave_one_task_out(sessions, tasks, min_configs, agreed))


def save_tasks(path: str | os.PathLike, tasks: dict[str, TaskInfo], target: str) -> None:
    """Add `tasks` to the tasks file at `path` (a task already there stays as it is)."""
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    for k, t in tasks.items():
        data.setdefault(
            k,
            {
                "lanes": t.lanes,
                "module": t.module,
                "name": t.name,
                "source": t.source,
                "target": target,
                "template": t.template,
            },
        )
    with open(str(path) + ".tmp", "w") as f:
        json.dump(data, f, indent=0, sort_keys=True)
        f.write("\n")
    os.replace(str(path) + ".tmp", path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--offline", nargs="*", metavar="PATH", help="evaluate these record files (default: the kept ones)")
    ap.add_argument("--tasks", default=str(DATA / "tasks.json"), help="the records' kernels (offline)")
    ap.add_argument("--min-configs", type=int, default=16)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "lathe-ranking-features.json"))
    ap.add_argument("--scale", choices=["small", "full", "resnet"], default="small")
    ap.add_argument("--configs", type=int, default=32, help="random configurations measured per task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=os.path.join(tempfile.gettempdir(), "lathe-tune-ranking.jsonl"))
    ap.add_argument("--truth", metavar="A.jsonl,B.jsonl", help="two sessions of the same configurations (offline)")
    ap.add_argument("--save-tasks", action="store_true", help="add the measured tasks to --tasks")
    args = ap.parse_args()
    truth = None
    if args.truth:
        truth = tuple(args.truth.split(","))
        if len(truth) != 2:
            ap.error("--truth takes two record files, separated by a comma")
    if args.offline is not None:
        paths = args.offline or sorted(str(p) for p in DATA.glob("*.jsonl"))
        if truth and not all(any(Path(t).stem == Path(p).stem for p in paths) for t in truth):
            ap.error("--truth's files must be among the evaluated ones")
        evaluate(paths, load_tasks(args.tasks), args.min_configs, args.cache, truth)  # type: ignore[arg-type]
        return 0

    from tune_workloads import NAMES, heaviest_task, run_search

    from lathe.tuner import records
    from lathe.tuner.executors import LocalExecutor

    if args.scale == "resnet":
        measured = {name: resnet_task(name) for name in RESNET}
    else:
        measured = {name: heaviest_task(name, args.scale) for name in NAMES}
    t0 = time.perf_counter()
    with LocalExecutor(60.0) as ex:
        for task in measured.values():
            have = sum(1 for r in records.load(args.db)[0] if r.workload == task.key)
            if have < args.configs:
                run_search(task, args.db, args.configs - have, "random", args.seed, ex)
    print(f"measured in {time.perf_counter() - t0:.0f} s; records in {args.db}")
    tasks = {
        t.key: TaskInfo(t.key, f"{name}-{args.scale}", t.name, t.template, t.lanes, t.module_text())
        for name, t in measured.items()
    }
    if args.save_tasks:
        save_tasks(args.tasks, tasks, next(iter(measured.values())).target)
    evaluate([args.db], tasks, min(args.min_configs, args.configs), args.cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
