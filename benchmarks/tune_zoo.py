"""`lathe tune` then `lathe run --db` on every zoo model, as a user runs them (issue 11's "done when").

    python benchmarks/tune_zoo.py [--models mobilenet_v3,bert_base,...] [--trials 16] [--full]

Each model (the small test variant unless --full) is written as ONNX, imported with
`lathe import`, tuned with `lathe tune FILE --params P --trials N --db D`, then run twice
with `lathe run FILE --params P --output O` (the same seeded random inputs), once with
`--db D` and once without. A model passes when every command exits 0 and the tuned build's
outputs match the untuned build's (relative error at most 1e-3 of the largest magnitude).
One line per model: tasks and kernels left without a record (the budget is the model's, so
a few trials leave most tasks at their default), trials and failures by kind from the
database, the best speedup over a task's default (timed beside it), how many tasks' bests the
model check kept or dropped, and the error against the untuned build.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RTOL = 1e-3


def max_error(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    scale = max((float(np.abs(v).max()) for v in b.values() if v.size), default=1.0) or 1.0
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) / scale for k in b if b[k].size)


def lathe_cli(argv: list[str]) -> tuple[int, str, str]:
    from lathe.tools.lathe_cli import main as lathe

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = lathe(argv)
    return rc, out.getvalue(), err.getvalue()


def check(name: str, tmp: Path, trials: int, full: bool) -> bool:
    import onnx

    from lathe.tuner import records
    from models import ZOO

    base = tmp / name
    t0 = time.perf_counter()
    onnx.save(ZOO[name].build(small=not full), f"{base}.onnx")
    model, params, db = f"{base}.lathe", f"{base}.params.npz", f"{base}.tuning.jsonl"
    steps = [
        ("import", ["import", f"{base}.onnx", "-o", model]),
        ("tune", ["tune", model, "--params", params, "--trials", str(trials), "--db", db]),
        ("run --db", ["run", model, "--params", params, "--db", db, "--output", f"{base}.tuned.npz"]),
        ("run", ["run", model, "--params", params, "--output", f"{base}.untuned.npz"]),
    ]
    logs = {}
    tune_s = 0.0
    for step, argv in steps:
        t = time.perf_counter()
        rc, out, err = lathe_cli(argv)
        logs[step] = err
        if step == "tune":
            tune_s = time.perf_counter() - t
            Path(f"{base}.tune.txt").write_text(out + err)  # its table, for --keep
        if rc != 0:
            print(f"{name:16s} FAILED at `lathe {step}` (exit {rc})\n{out}{err}", flush=True)
            return False
    everything, _ = records.load(db)
    recs = [r for r in everything if r.status not in records.CHECK_STATUSES]  # the trials
    checks = {(r.workload, r.config): r.status for r in everything if r.status in records.CHECK_STATUSES}
    fails: dict[str, int] = {}
    for r in recs:
        if r.status != "ok":
            fails[r.status] = fails.get(r.status, 0) + 1
    tasks = len({r.workload for r in recs})
    bests = [b for b in (records.best(recs, w) for w in {r.workload for r in recs}) if b is not None]
    top_rec = max(bests, key=lambda b: b.speedup or 1.0, default=None)
    speedup = (top_rec.speedup or 1.0) if top_rec else 1.0
    top_config = top_rec.config if top_rec else "-"
    kept = sum(1 for b in bests if checks.get((b.workload, b.config)) == "kept")
    dropped = sum(1 for b in bests if checks.get((b.workload, b.config)) == "default_wins")
    missing = re.search(r"for (\d+) of (\d+) kernels", logs["run --db"])
    untuned_kernels = f"{missing[1]}/{missing[2]} kernels untuned" if missing else "every kernel tuned"
    with np.load(f"{base}.tuned.npz") as a, np.load(f"{base}.untuned.npz") as b:
        err = max_error(dict(a), dict(b))
    ok = err <= RTOL
    print(
        f"{name:16s} {tasks:3d} tasks tuned, {untuned_kernels}; {len(recs):3d} trials, failures "
        f"{', '.join(f'{n} {k}' for k, n in sorted(fails.items())) or '0'}; best task speedup {speedup:.2f}x ({top_config}); "
        f"model check: {kept} kept, {dropped} default wins; "
        f"run --db {'ok' if ok else 'WRONG'}, max error vs untuned {err:.1e}  "
        f"[tune {tune_s:.0f} s, all {time.perf_counter() - t0:.0f} s]",
        flush=True,
    )
    return ok


def main() -> int:
    from models import ZOO

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--trials", type=int, default=16, help="the model's whole budget (default 16)")
    ap.add_argument("--full", action="store_true", help="full-size models (minutes each to compile)")
    ap.add_argument(
        "--keep", metavar="DIR", help="write the models, databases and outputs here (else a temporary directory)"
    )
    args = ap.parse_args()
    names = args.models.split(",")
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        ap.error(f"unknown models {', '.join(unknown)}; the zoo: {', '.join(ZOO)}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
        tmp = args.keep or tmp
        passed = sum(check(name, Path(tmp), args.trials, args.full) for name in names)
    print(f"{passed} of {len(names)} models tuned and run with their records")
    return 0 if passed == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
