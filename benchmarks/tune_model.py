"""A zoo model tuned end to end, then its tuned build against its default build, in one process.

    python benchmarks/tune_model.py [--model bert_base] [--set layers=2] [--small] [--trials 48]
        [--db PATH] [--threads 2] [--repeat 30] [--blocks 6]
    python benchmarks/tune_model.py --fidelity [--model ...]   # where the worker's timings sit

Tuning is `lathe.tune(module, params=..., trials=N, db=...)`, as a user calls it (so it ends
with the model check); a `--db` that already holds records resumes. Then both builds'
`run()` (the user-facing call) are timed in turns of `--repeat` runs, `--blocks` turns each
(1 s of wall-time warm-up before each build's first), and the medians and their ratio are
printed with the load average: issue 11's "tuned builds are never slower than the defaults".

`--fidelity` tunes nothing: per task, its default configuration timed in the model (every
kernel of the default build through the profiler's per-kernel entries, per call), and in the
tuner's worker in place, on rotating sets by the rule (`measure.evicted_from`: past L2 for
a model whose activations fit the LLC) and on sets past the LLC (from memory), for the
memory-bound tasks: which worker timing puts a kernel in the state the model runs it in.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


def build_model(args):
    import lathe
    from models import ZOO
    from models.builder import random_inputs

    overrides = {k: int(v) for k, v in (s.split("=") for s in args.set)}
    model = ZOO[args.model].build(small=args.small, **overrides)
    inputs = random_inputs(model, 0)
    module, params = lathe.from_onnx(model)
    order = [i.name for i in model.graph.input if i.name in inputs]
    return module, params, [inputs[k] for k in order]


def time_in_turns(runs: dict, repeat: int, blocks: int) -> dict[str, list[float]]:
    """Seconds of each call, the contenders taking turns (in alternating order)."""
    out: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for b in range(blocks):
        for name in names if b % 2 == 0 else reversed(names):
            if b == 0:
                end = time.perf_counter() + 1.0
                while time.perf_counter() < end:
                    runs[name]()
            for _ in range(repeat):
                t = time.perf_counter()
                runs[name]()
                out[name].append(time.perf_counter() - t)
    return out


def tuned_against_default(args) -> int:
    import lathe
    from lathe.tuner.tune import format_table

    module, params, inputs = build_model(args)
    db = args.db or os.path.join(tempfile.mkdtemp(), "tuning.jsonl")
    print(f"{args.model} {' '.join(args.set)}{' (small)' if args.small else ''}: tuning {args.trials} trials, {load()}")
    t0 = time.perf_counter()
    results = lathe.tune(module, params=params, trials=args.trials, db=db, progress=True)
    print(f"tuned in {time.perf_counter() - t0:.0f} s ({load()}); records in {db}")
    print(format_table(results))
    tuned = lathe.compile(module, params=params, num_threads=args.threads, tuning_db=db)
    default = lathe.compile(module, params=params, num_threads=args.threads)
    print(f"timing run(), {args.threads} threads, {args.blocks} turns of {args.repeat}; {load()}")
    times = time_in_turns(
        {"tuned": lambda: tuned.run(*inputs), "default": lambda: default.run(*inputs)}, args.repeat, args.blocks
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(
        f"tuned {1e3 * med['tuned']:.3f} ms, default {1e3 * med['default']:.3f} ms: "
        f"tuned/default {med['tuned'] / med['default']:.3f} (medians), {best['tuned'] / best['default']:.3f} (minima); {load()}"
    )
    return 0


def fidelity(args) -> int:
    import lathe
    from lathe.backends.registry import resolve_target
    from lathe.tuner.check import ModelCheck, time_builds
    from lathe.tuner.measure import LocalRunner, Timing, evicted_from
    from lathe.tuner.tasks import extract_tasks
    from lathe.tuner.tune import TaskTuner

    module, params, inputs = build_model(args)
    tasks = extract_tasks(module, "llvm", params)
    _, target = resolve_target("llvm")
    cm = lathe.compile(module, params=params)
    runs = time_builds({"default": cm}, inputs, ModelCheck(blocks=3, repeat=args.repeat))["default"]
    print(f"{args.model} {' '.join(args.set)}: activations {tasks[0].activations / 2**20:.1f} MiB; {load()}")
    level = evicted_from(target.cache_bytes, tasks[0].activations)
    print(f"caches {target.cache_bytes}; the rule's sets evict from {level} bytes (None: in place)")
    head = ("task", "calls", "MiB", "model us", "in place", "rule", "sets", "memory", "sets")
    print(f"{head[0]:52s} {head[1]:>5s} {head[2]:>6s} " + " ".join(f"{h:>9s}" for h in head[3:]))
    with tempfile.TemporaryDirectory() as tmp, LocalRunner(120) as runner:
        for task in tasks:
            in_model = statistics.median(sum(r.get(k, 0.0) for k in task.kernels) for r in runs) / max(task.weight, 1)
            tuner = TaskTuner(task, os.path.join(tmp, "db.jsonl"), [], "random")
            got = {}
            for mode in (False, None, True):
                job = tuner.job(tuner.default, ("fidelity", task.key, mode))
                job["timing"] = Timing(rotate=mode)
                got[mode] = runner.measure(job)
            footprint = sum(a.nbytes for a in tuner.inputs) + sum(r.nbytes for r in tuner.reference)
            cells = [1e6 * in_model, 1e6 * got[False].seconds]
            for mode in (None, True):
                cells += [1e6 * got[mode].seconds if got[mode].rotate > 1 else None, got[mode].rotate]
            text = [f"{c:9.1f}" if isinstance(c, float) else f"{c if c is not None else '-':>9}" for c in cells]
            print(f"{task.name[:52]:52s} {task.weight:5d} {footprint / 2**20:6.2f} " + " ".join(text), flush=True)
    print(load())
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bert_base")
    ap.add_argument("--set", action="append", default=[], metavar="K=V", help="a build option, e.g. layers=2")
    ap.add_argument("--small", action="store_true", help="the zoo's small test variant")
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--db")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--fidelity", action="store_true")
    args = ap.parse_args()
    return fidelity(args) if args.fidelity else tuned_against_default(args)


if __name__ == "__main__":
    sys.exit(main())
