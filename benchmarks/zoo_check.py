"""`lathe run --target T --check` on every small zoo model, as a user runs it, and a table.

    python benchmarks/zoo_check.py --target opencl
    python benchmarks/zoo_check.py --target 'llvm -mtriple=aarch64-linux-gnu'   # under qemu-user
    python benchmarks/zoo_check.py --target c --models resnet18,lstm_lm --seed 3   # rerun a seed

Each model (the small variant) is built with seeded weights and written as ONNX, imported with
`lathe import` (Relay text and its weights), and run in its own process with `lathe run FILE
--params P --inputs I --target T --check --rtol R` on the zoo's random inputs (token ids in
range, attention masks as masks), drawn from a fresh seed unless --seed gives one. The CLI's own
check line is the verdict: its max relative error against the reference interpreter, OK or
FAILED. A model passes when the command exits 0 and says OK. This is a correctness check, not a benchmark: the seconds column is the whole
command (compile, run, interpret), printed so a slow target or model stands out, and under
emulation it says nothing about the hardware.

Exits 1 if any model fails. docs/backends.md records its table for the targets of issue 16.
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lathe.models.check_zoo import TOLERANCE  # the zoo's bound (there against ONNX Runtime)

CHECK_LINE = re.compile(r"check: max relative error (\S+) against the reference interpreter .*: (OK|FAILED)")


def lathe_cli(*args: str) -> subprocess.CompletedProcess:
    """The `lathe` command in a fresh process: one model's crash or PoCL's threads stay there."""
    return subprocess.run(
        [sys.executable, "-m", "lathe.tools.lathe_cli", *args], capture_output=True, text=True, check=False
    )


def check_model(name: str, target: str, seed: int, rtol: float, workdir: Path) -> tuple[str, str, float]:
    """(status, detail, seconds) of `lathe run --check` on the small model `name`."""
    import numpy as np
    import onnx

    from lathe.frontends.onnx.names import sanitize
    from lathe.models import ZOO
    from lathe.models.builder import random_inputs

    t0 = time.perf_counter()
    base = workdir / name
    model = ZOO[name].build(small=True, seed=seed)
    onnx.save(model, f"{base}.onnx")
    np.savez(f"{base}.inputs.npz", **{sanitize(k): v for k, v in random_inputs(model, seed).items()})
    r = lathe_cli("import", f"{base}.onnx", "-o", f"{base}.lathe")
    if r.returncode == 0:
        r = lathe_cli(
            "run", f"{base}.lathe", "--params", f"{base}.params.npz", "--inputs", f"{base}.inputs.npz",
            "--target", target, "--check", "--rtol", str(rtol), "--output", f"{base}.out.npz",
        )  # fmt: skip
    seconds = time.perf_counter() - t0
    m = CHECK_LINE.search(r.stdout)
    if r.returncode == 0 and m and m.group(2) == "OK":
        return "ok", m.group(1), seconds
    if m:
        return "FAILED", f"max relative error {m.group(1)} > {rtol:g}", seconds
    last = (r.stderr.strip() or r.stdout.strip() or f"exit {r.returncode}").splitlines()[-1]
    return "FAILED", last[:200], seconds


def main(argv: list[str] | None = None) -> int:
    from lathe.models import ZOO

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="a target string: opencl, c, 'llvm -mtriple=aarch64-linux-gnu'")
    ap.add_argument("--models", default=",".join(ZOO), help="comma-separated zoo names (default: all of them)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the weights and the inputs (default: a fresh one)")
    ap.add_argument("--rtol", type=float, default=TOLERANCE, help=f"max relative error allowed (default {TOLERANCE:g})")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    names = args.models.split(",")
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        ap.error(f"no zoo model {unknown[0]!r} (known: {', '.join(ZOO)})")
    print(f"lathe run --target '{args.target}' --check on the small zoo models (seed {seed}, rtol {args.rtol:g})")
    print(f"{'model':14s} {'result':8s} {'max rel err':>12s} {'seconds':>8s}", flush=True)
    failed = 0
    total = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            status, detail, seconds = check_model(name, args.target, seed, args.rtol, Path(tmp))
            failed += status != "ok"
            err, note = (detail, "") if status == "ok" else ("-", f"  {detail}")
            print(f"{name:14s} {status:8s} {err:>12s} {seconds:8.1f}{note}", flush=True)
    print(f"{len(names) - failed} of {len(names)} agree with the interpreter ({time.perf_counter() - total:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
