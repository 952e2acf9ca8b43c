"""`lathe run --profile` on every zoo model, as a user runs it.

    python benchmarks/profile_zoo.py [--models bert_base,resnet50,...] [--full] [--tables]

Each model (the small test variant unless --full) is written as ONNX, imported with
`lathe import` (Relay text and its weights), then run with `lathe run FILE --params P
--profile --profile-json J`. A model passes when the command exits 0 and its profile has a
row for every kernel, shares summing to 1, and every row's source ops at a line of the
imported file. One line per model: kernels, the heaviest kernel with its share and source
lines, and the sum of the kernel medians; --tables prints each table as well.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from models import ZOO

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--full", action="store_true", help="full-size models (minutes each to compile)")
    ap.add_argument("--tables", action="store_true", help="print every model's table")
    args = ap.parse_args()
    import onnx

    from lathe.runtime.profiler import Profile
    from lathe.tools.lathe_cli import main as lathe

    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            t0 = time.perf_counter()
            base = Path(tmp) / name
            onnx.save(ZOO[name].build(small=not args.full), f"{base}.onnx")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = lathe(["import", f"{base}.onnx", "-o", f"{base}.lathe"])
                rc = rc or lathe(
                    [
                        "run",
                        f"{base}.lathe",
                        "--params",
                        f"{base}.params.npz",
                        "--profile",
                        "--profile-json",
                        f"{base}.json",
                    ]
                )
            seconds = time.perf_counter() - t0
            if rc != 0:
                failed.append(name)
                print(f"{name:14s} FAILED (exit {rc})\n{out.getvalue()}")
                continue
            p = Profile.from_json(Path(f"{base}.json").read_text())
            problems = []
            if not math.isclose(sum(r.share for r in p.rows), 1.0, rel_tol=1e-9):
                problems.append("shares do not sum to 1")
            unplaced = [r.kernel for r in p.rows if not r.sources or any(f"{base}.lathe:" not in s for s in r.sources)]
            if unplaced:
                problems.append(f"kernels without source lines: {', '.join(unplaced[:3])}")
            top = p.rows[0]
            lines = sorted({int(s.split(" ")[0].rsplit(":", 1)[1]) for s in top.sources})
            print(
                f"{name:14s} {len(p.rows):4d} kernels  total {p.total_seconds * 1e3:8.3f} ms  heaviest {top.kernel} "
                f"({100 * top.share:.1f}%, lines {', '.join(map(str, lines[:6]))}{'...' if len(lines) > 6 else ''})"
                f"  [{seconds:.1f} s]" + (f"  PROBLEMS: {'; '.join(problems)}" if problems else "")
            )
            if args.tables:
                print(p.table().replace(f"{base}.lathe", f"{name}.lathe"), "\n")
            if problems:
                failed.append(name)
    print(f"{len(args.models.split(',')) - len(failed)} of {len(args.models.split(','))} models profiled")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
