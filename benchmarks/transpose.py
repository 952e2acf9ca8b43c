"""Transposes of the zoo's shapes through `run()`: GB/s of this tree, beside an older tree's.

    python benchmarks/transpose.py [--threads 2] [--repeat 40] [--old /tmp/oldtree_tr] [--new DIR] [--only NAME] [--kernels]

`run(x, out=y)`, y 64-byte aligned: the output written in place, as an intermediate is in a
model's arena or a fresh output is (a fresh array's page faults would be most of a small
transpose's time); x as numpy allocates it. Each tree compiles every case in a worker process of its own (`--old`: a directory holding an
older checkout as `lathe/`, put first on that worker's PYTHONPATH; none: this tree alone). The
workers take turns, a block of timed `run()` calls each, after a wall-clock warm-up each, so
the machine's drift hits both alike; printed: median time, GB/s (bytes read + written, once; none for the two
issue-12 rows at the end, whole kernels.py rows whose transposes these are),
new/old, and the ratio of the minima (steadier than medians on a loaded machine). Every output is checked against numpy first.
With --kernels, each issue-12 row's kernels are also timed one by one as they run inside it:
a transpose there meets the caches the conv left and the thread split of the kernel before it,
which a transpose timed alone does not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# name: (input shape, Relay body over %x), with numpy's answer
CASES = {
    "NCHW->NHWC 1x64x56x56 (conv row in)": ((1, 64, 56, 56), "transpose(%x, axes=[0, 2, 3, 1])"),
    "NHWC->NCHW 1x56x56x64 (conv row out)": ((1, 56, 56, 64), "transpose(%x, axes=[0, 3, 1, 2])"),
    "2-D 64x3136": ((64, 3136), "transpose(%x, axes=[1, 0])"),
    "2-D 3136x64": ((3136, 64), "transpose(%x, axes=[1, 0])"),
    "NCHW->NHWC 1x3x224x224 (image, 3x50176)": ((1, 3, 224, 224), "transpose(%x, axes=[0, 2, 3, 1])"),
    "2-D 128x768 (BERT hidden)": ((128, 768), "transpose(%x, axes=[1, 0])"),
    "2-D 768x3072 (BERT weight)": ((768, 3072), "transpose(%x, axes=[1, 0])"),
    "NCHW->NHWC 1x256x14x14": ((1, 256, 14, 14), "transpose(%x, axes=[0, 2, 3, 1])"),
    "k^T 12x128x64 -> 12x64x128": ((12, 128, 64), "transpose(%x, axes=[0, 2, 1])"),
    "k pack 12x128x64 -> 12x4x64x32 (reshape+transpose)": (
        (12, 128, 64),
        "transpose(reshape(%x, newshape=[12, 4, 32, 64]), axes=[0, 1, 3, 2])",
    ),
    "k pack 12x128x64 -> 12x8x64x16 (reshape+transpose)": (
        (12, 128, 64),
        "transpose(reshape(%x, newshape=[12, 8, 16, 64]), axes=[0, 1, 3, 2])",
    ),
    "odd 1x3x17x33 -> NHWC": ((1, 3, 17, 33), "transpose(%x, axes=[0, 2, 3, 1])"),
    "NHWC->NCHW 1x128x128x21 (guarded tiles: 21 classes)": ((1, 128, 128, 21), "transpose(%x, axes=[0, 3, 1, 2])"),
    "NHWC->NCHW 1x40x40x255 (guarded tiles: a YOLO head)": ((1, 40, 40, 255), "transpose(%x, axes=[0, 3, 1, 2])"),
}


# the issue-12 rows whose transposes these are: name -> (Relay source, input shapes, param shapes)
ROWS = {
    "issue-12 row: conv2d 1x64x56x56 3x3 + bias + relu": (
        "def @main(%x: Tensor[(1, 64, 56, 56), float32], %w: Tensor[(64, 64, 3, 3), float32],"
        " %b: Tensor[(64), float32]) { nn.relu(nn.bias_add(nn.conv2d(%x, %w, padding=[1, 1]), %b)) }",
        {"x": (1, 64, 56, 56)},
        {"w": (64, 64, 3, 3), "b": (64,)},
    ),
    "issue-12 row: softmax(batch_matmul 12x128x64^2)": (
        "def @main(%q: Tensor[(12, 128, 64), float32], %k: Tensor[(12, 128, 64), float32])"
        " { nn.softmax(nn.batch_matmul(%q, %k), axis=-1) }",
        {"q": (12, 128, 64), "k": (12, 128, 64)},
        {},
    ),
}


def reference(shape, body, x):
    import numpy as np

    if body.startswith("transpose(reshape"):
        new = [int(v) for v in body.split("newshape=[")[1].split("]")[0].split(",")]
        axes = [int(v) for v in body.split("axes=[")[1].split("]")[0].split(",")]
        return np.transpose(x.reshape(new), axes)
    axes = [int(v) for v in body.split("axes=[")[1].split("]")[0].split(",")]
    return np.transpose(x, axes)


def worker(threads: int) -> None:
    """Compile every case, then answer `[name, calls]` lines with the seconds of each call."""
    import numpy as np

    import lathe
    from lathe.backends.interface import aligned_empty
    from lathe.testing.timing import warm
    from lathe.textual_ir.parser import parse_relay

    rng = np.random.default_rng(0)
    compiled = {}
    for name, (shape, body) in CASES.items():
        src = f"def @main(%x: Tensor[({', '.join(map(str, shape))}), float32]) {{ {body} }}"
        cm = lathe.compile(parse_relay(src), params={}, num_threads=threads)
        x = rng.standard_normal(shape).astype(np.float32)
        y = np.asarray(cm.run(x))
        if not np.array_equal(y, reference(shape, body, x)):
            raise SystemExit(f"{name}: wrong result")
        compiled[name] = (cm, (x,), aligned_empty(y.shape, y.dtype))
    for name, (src, inputs, weights) in ROWS.items():
        params = {k: (0.05 * rng.standard_normal(v)).astype(np.float32) for k, v in weights.items()}
        module = parse_relay(src)
        args = tuple(rng.standard_normal(v).astype(np.float32) for v in inputs.values())
        want = lathe.interpret(module, params=params, **dict(zip(inputs, args)))
        cm = lathe.compile(parse_relay(src), params=params, num_threads=threads)
        y = np.asarray(cm.run(*args))
        if not np.allclose(y, np.asarray(want), rtol=1e-4, atol=1e-5):
            raise SystemExit(f"{name}: wrong result")
        compiled[name] = (cm, args, aligned_empty(y.shape, y.dtype))
    print(json.dumps({"ready": lathe.__file__}), flush=True)
    for line in sys.stdin:
        name, calls = json.loads(line)
        cm, x, y = compiled[name]
        if isinstance(calls, str):  # "kernels": each kernel of the row timed as run() leaves its caches
            cm.run(*x, out=y)
            names = [n for _, _, n in cm.executor.steps]
            runs = cm.executor.time_kernels(int(calls.split()[1]), 0.0)
            print(json.dumps({n: [r[k] for r in runs] for k, n in enumerate(names)}), flush=True)
            continue
        if calls < 0:
            warm(lambda cm=cm, x=x, y=y: cm.run(*x, out=y), -calls)
            print(json.dumps([]), flush=True)
            continue
        cm.run(*x, out=y)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            cm.run(*x, out=y)
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)


def spawn(tree: Path | None, threads: int) -> subprocess.Popen:
    """A worker on `tree` (first on its PYTHONPATH), or on the installed lathe (None)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    p = subprocess.Popen(
        [sys.executable, __file__, "--worker", "--threads", str(threads)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd="/",
    )
    ready = json.loads(p.stdout.readline())  # type: ignore[union-attr]
    print(f"# {tree}: {ready['ready']}", flush=True)
    return p


def ask(p: subprocess.Popen, name: str, calls: float | str):
    p.stdin.write(json.dumps([name, calls]) + "\n")  # type: ignore[union-attr]
    p.stdin.flush()  # type: ignore[union-attr]
    return json.loads(p.stdout.readline())  # type: ignore[union-attr]


def kernel_medians(procs: dict[str, subprocess.Popen], row: str, args) -> None:
    """The row's kernels one by one (the profiler's way: each through its own entry, in run
    order, so a transpose meets the caches and the thread split the kernel before it left):
    the median and minimum of each, per tree, the workers taking turns in blocks."""
    import numpy as np

    times: dict[str, dict[str, list[float]]] = {k: {} for k in procs}
    for _ in range(max(1, args.repeat // args.block)):
        for k, p in procs.items():
            time.sleep(0.2)
            for n, ts in ask(p, row, f"kernels {args.block}").items():
                times[k].setdefault(n, []).extend(ts)
    for n in times["new"]:
        line = f"  {n:50s} {np.median(times['new'][n]) * 1e6:7.1f}us"
        if "old" in times and n in times["old"]:
            new, old = times["new"][n], times["old"][n]
            line += f"        {np.median(old) * 1e6:7.1f}us        {np.median(new) / np.median(old):7.2f}x"
            line += f"   min {min(new) * 1e6:7.1f} / {min(old) * 1e6:7.1f}us = {min(new) / min(old):4.2f}x"
        print(line, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--block", type=int, default=5)
    ap.add_argument("--old", default="/tmp/oldtree_tr", help="directory holding an older tree as lathe/")
    ap.add_argument(
        "--new", default=None, help="directory holding the tree to measure as lathe/ (default: the installed one)"
    )
    ap.add_argument("--only", default=None)
    ap.add_argument("--kernels", action="store_true", help="under each issue-12 row, its kernels one by one")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.threads)
        return 0
    import numpy as np

    trees: dict[str, Path | None] = {"new": Path(args.new) if args.new else None}
    if args.old and (Path(args.old) / "lathe").is_dir():
        trees["old"] = Path(args.old)
    procs = {k: spawn(t, args.threads) for k, t in trees.items()}
    print(f"# load average {os.getloadavg()[0]:.2f}, {args.threads} thread(s)")
    head = f"{'transpose':52s} {'new':>9s} {'GB/s':>6s}"
    print(head + (f" {'old':>9s} {'GB/s':>6s} {'new/old':>8s}   minima new / old" if "old" in procs else ""))
    sizes = {name: 2 * 4 * int(np.prod(shape)) for name, (shape, _) in CASES.items()} | dict.fromkeys(ROWS, 0)
    for name, nbytes in sizes.items():
        if args.only and args.only not in name:
            continue
        for p in procs.values():
            ask(p, name, -1.0)
        times: dict[str, list[float]] = {k: [] for k in procs}
        for _ in range(max(1, args.repeat // args.block)):
            for k, p in procs.items():
                time.sleep(0.2)  # the other worker's pool threads go idle first
                times[k] += ask(p, name, args.block)
        med = {k: float(np.median(v)) for k, v in times.items()}
        low = {k: float(np.min(v)) for k, v in times.items()}
        row = f"{name:52s} {med['new'] * 1e6:7.1f}us {nbytes / med['new'] / 1e9:6.1f}"
        if "old" in med:
            row += f" {med['old'] * 1e6:7.1f}us {nbytes / med['old'] / 1e9:6.1f} {med['new'] / med['old']:7.2f}x"
            row += f"   min {low['new'] * 1e6:7.1f} / {low['old'] * 1e6:7.1f}us = {low['new'] / low['old']:4.2f}x"
        if not nbytes:  # a whole row: its time is what counts, not a bandwidth
            row = row.replace("    0.0", "       ")
        print(row, flush=True)
        if name in ROWS and args.kernels:
            kernel_medians(procs, name, args)
    print(f"# load average {os.getloadavg()[0]:.2f}")
    for p in procs.values():
        p.stdin.close()  # type: ignore[union-attr]
        p.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
