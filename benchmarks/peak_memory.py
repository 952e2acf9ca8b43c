"""Peak memory of a deployed run against issue 12's bound: weights + 1.5 × the largest live
activation set.

    python benchmarks/peak_memory.py [--models bert_base,resnet18] [--small]

Each model is compiled to an artifact (`lathe compile model.onnx -o model.lathe.d`, -O3, weights
bound) and loaded in a fresh Python process that imports only numpy and the artifact loader,
as a deployment would. That process measures its resident set before loading (the interpreter,
numpy and its random generator, which draws the inputs: not the model's), resets the kernel's high-water mark (`/proc/self/clear_refs` 5),
loads the artifact and runs it on random inputs; the model's peak is the high-water mark minus
the baseline, so it counts everything a run touches: the weights, the arena of intermediates,
input staging, outputs, the library's code (its file size is printed: on the small test
models it is most of the peak) and what the kernels allocate themselves. The
bound's terms come from the compiler's own plan (`memory_report()`): the weights' bytes and the
most bytes of intermediates live at one kernel call, which no plan can go below. Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 1 << 20

# what the child runs: python, numpy and the loader alone (lathe.runtime.artifact needs no xdsl/llvmlite)
_CHILD = r"""
import json, sys
import numpy as np

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))

import lathe.runtime.artifact as artifact
rng = np.random.default_rng(0)  # numpy.random's modules (~2.7 MiB) are the caller's, not the model's
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
m = artifact.load(sys.argv[1])
inputs = {}
for spec in m.metadata["inputs"]:
    shape, dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])
    if dtype.kind in "iu":
        inputs[spec["name"]] = rng.integers(0, 2, shape).astype(dtype)
    else:
        inputs[spec["name"]] = rng.standard_normal(shape).astype(dtype)
loaded = status("VmRSS")
m.run(**inputs)
print(json.dumps({"base": base, "loaded": loaded - base, "peak": status("VmHWM") - base}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="bert_base")
    ap.add_argument("--small", action="store_true", help="the zoo's small test variants")
    args = ap.parse_args()
    import lathe
    from models import ZOO

    print(
        f"{'model':14s} {'weights MiB':>11s} {'live MiB':>9s} {'bound MiB':>9s} {'model.so MiB':>12s} {'loaded MiB':>10s} "
        f"{'run peak MiB':>12s} {'peak/bound':>10s}"
    )
    for name in args.models.split(","):
        model = ZOO[name].build(small=args.small)
        module, params = lathe.from_onnx(model)
        report = lathe.compile(module, params=params).memory_report()
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path, out = Path(tmp) / f"{name}.onnx", Path(tmp) / f"{name}.lathe.d"
            onnx_path.write_bytes(model.SerializeToString())
            lathe_bin = Path(sys.executable).with_name("lathe")
            built = subprocess.run(
                [str(lathe_bin), "compile", str(onnx_path), "-o", str(out)], capture_output=True, text=True
            )
            if built.returncode != 0:
                print(f"{name}: lathe compile failed: {built.stderr.strip()}", flush=True)
                continue
            child = subprocess.run([sys.executable, "-c", _CHILD, str(out)], capture_output=True, text=True)
            library = (out / "model.so").stat().st_size
        if child.returncode != 0:
            print(f"{name}: the run failed: {child.stderr.strip()[-400:]}", flush=True)
            continue
        got = json.loads(child.stdout.strip().splitlines()[-1])
        bound = report.constant_bytes + 1.5 * report.live_peak_bytes
        print(
            f"{name:14s} {report.constant_bytes / MIB:11.1f} {report.live_peak_bytes / MIB:9.1f} {bound / MIB:9.1f} "
            f"{library / MIB:12.1f} {got['loaded'] / MIB:10.1f} {got['peak'] / MIB:12.1f} {got['peak'] / bound:9.3f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
