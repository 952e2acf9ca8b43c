"""The cost model's transfer: pairwise ranking accuracy on one task's configurations, with
the model trained only on the other tasks' records (issue 11's bar: >= 0.85; Ansor reports 0.851).

    python benchmarks/tune_ranking.py [--scale small|full] [--configs N] [--db PATH]
    python benchmarks/tune_ranking.py --offline PATH [--offline PATH ...] [--scale small|full]

Each of the three workloads (benchmarks/tune_workloads.py) gets N random configurations
measured (its default first) into one database; then for each task held out, xgboost
rank:pairwise (tuner/search.train_ranker, one ranking group per workload) is trained on the
other two tasks' records and scores the held-out task's working configurations. Accuracy
is over all pairs of those, and over the pairs whose times differ by more than 10% (pairs
closer than that are within this machine's noise). The database is kept: rerunning with the
same --db measures only what is missing.

--offline measures nothing: it re-featurises the records of the given databases with this
Lathe's features (tuner/features.py; a feature set is a function of the candidate's loop
program, so records of any features version can be evaluated with the current one) and
evaluates on them. Records of a workload of the benchmark at the other scale (say matmul
1024³ next to the small three) are used for training only, and reported as an extra row
"+ other scale" per held-out task: trained on every other workload, that task's other-scale
twin included when it is not the one held out.

The issue's scale, on a quiet machine:

    python benchmarks/tune_ranking.py --scale full --configs 200 --db ranking-full.jsonl
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def featurised_pool(paths: list[str], tasks: list) -> dict:
    """{workload key: (features, seconds)} of the records of `tasks` in `paths`, featurised anew."""
    from lathe.tuner import records
    from lathe.tuner.features import loop_features
    from lathe.tuner.measure import lower_candidate

    by_key = {t.key: t for t in tasks}
    modules = {t.key: t.module_text() for t in tasks}
    pool: dict = {}
    for path in paths:
        for r in records.load(path)[0]:
            task = by_key.get(r.workload)
            if task is None or r.target != task.target:
                continue
            feats = loop_features(lower_candidate(modules[r.workload], r.config, task.lanes))
            group = pool.setdefault(r.workload, ([], []))
            group[0].append(feats)
            group[1].append(r.relative if r.status == "ok" else None)  # ranked by the ratio to the default beside it
    return pool


def held_out(model, group) -> tuple[float, int, float, int, int]:
    """Accuracy over all pairs and pairs > 10% apart of the model on `group`'s working configurations."""
    import numpy as np
    import xgboost as xgb

    from lathe.tuner.search import pairwise_accuracy

    rows = [(f, s) for f, s in zip(*group) if s]
    scores = model.predict(xgb.DMatrix(np.asarray([f for f, _ in rows], dtype=np.float32))).tolist()
    seconds = [s for _, s in rows]
    return (*pairwise_accuracy(scores, seconds), *pairwise_accuracy(scores, seconds, 1.1), len(rows))


def report(tasks: dict, pool: dict, extra: dict) -> None:
    """One row per held-out task (trained on the other tasks), and with `extra` ({name: key of
    its other-scale twin}) one more per task trained on every other workload of the pool."""
    from lathe.tuner.search import train_ranker

    print(
        f"{'held out':10s} {'template':12s} {'trained on':>10s} {'working':>8s} {'all pairs':>16s} {'pairs >10%':>16s}"
    )
    accs: dict[str, list[float]] = {}
    for name, task in tasks.items():
        if task.key not in pool:
            print(f"{name:10s} no records")
            continue
        variants = {"": [k for n, t in tasks.items() if n != name and t.key in pool for k in (t.key,)]}
        if extra:
            variants["+ other scale"] = [k for k in pool if k != task.key]
        for label, keys in variants.items():
            others = [pool[k] for k in keys]
            model = train_ranker(others)
            if model is None:
                print(f"{name:10s} too few records")
                continue
            acc_all, n_all, acc_far, n_far, working = held_out(model, pool[task.key])
            accs.setdefault(label, []).append(acc_all)
            trained = sum(len(s) for _, s in others)
            print(
                f"{(name + ' ' + label).strip():10s} {task.template:12s} {trained:10d} {working:8d} "
                f"{acc_all:9.3f} ({n_all:4d}) {acc_far:9.3f} ({n_far:4d})"
            )
    for label, a in accs.items():
        print(f"mean pairwise ranking accuracy (all pairs{', ' + label if label else ''}): {sum(a) / len(a):.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["small", "full"], default="small")
    ap.add_argument("--configs", type=int, default=32, help="random configurations measured per task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=os.path.join(tempfile.gettempdir(), "lathe-tune-ranking.jsonl"))
    ap.add_argument("--offline", action="append", default=[], metavar="PATH", help="evaluate these records")
    args = ap.parse_args()
    from tune_workloads import NAMES, heaviest_task, run_search

    from lathe.tuner import records
    from lathe.tuner.executors import LocalExecutor
    from lathe.tuner.features import VERSION
    from lathe.tuner.tune import transfer_pool

    tasks = {name: heaviest_task(name, args.scale) for name in NAMES}
    if args.offline:
        other = "full" if args.scale == "small" else "small"
        twins = {name: heaviest_task(name, other) for name in NAMES}
        t0 = time.perf_counter()
        pool = featurised_pool(args.offline, [*tasks.values(), *twins.values()])
        print(f"re-featurised (features v{VERSION}) in {time.perf_counter() - t0:.0f} s: {', '.join(args.offline)}")
        extra = {n: t.key for n, t in twins.items() if t.key in pool}
        print(f"scale {args.scale}; other-scale workloads with records: {', '.join(extra) or 'none'}")
        report(tasks, pool, extra)
        return 0
    t0 = time.perf_counter()
    with LocalExecutor(60.0) as ex:
        for task in tasks.values():
            have = sum(1 for r in records.load(args.db)[0] if r.workload == task.key)
            if have < args.configs:
                run_search(task, args.db, args.configs - have, "random", args.seed, ex)
    print(f"measured in {time.perf_counter() - t0:.0f} s; records in {args.db}")
    pool = transfer_pool(records.load(args.db)[0], next(iter(tasks.values())).target)
    print(f"scale {args.scale}, {args.configs} random configurations per task")
    report(tasks, pool, {})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
