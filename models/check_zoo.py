"""Check the model zoo end to end: Lathe against onnxruntime.

For each model: build it (seeded weights), validate it with
onnx.checker (full_check), run onnxruntime on seeded random inputs, import
it with `lathe.from_onnx`, run the reference interpreter and the compiled module, and compare both with
onnxruntime by max relative error, max|a - b| / max|b| over each output.

    python -m models.check_zoo                 # full-size models
    python -m models.check_zoo --small         # the fast test variants
    python -m models.check_zoo --only resnet18 --only bert_base

Exits 1 if any model fails a check or a comparison exceeds the tolerance.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import traceback

import numpy as np
import onnx

from lathe.testing.compare import max_relative_error

from . import ZOO
from .builder import DEFAULT_OPSET, input_specs, random_inputs, session

TOLERANCE = 1e-4


def max_rel_err(got, ref) -> float:
    """The zoo's accuracy measure; shapes must agree."""
    if np.shape(got) != np.shape(ref):
        raise ValueError(f"shape {np.shape(got)} != reference {np.shape(ref)}")
    return max_relative_error(got, ref)


def outputs_list(result) -> list[np.ndarray]:
    return list(result) if isinstance(result, tuple | list) else [result]


def worst_error(got, ref: list[np.ndarray]) -> float:
    got = outputs_list(got)
    if len(got) != len(ref):
        raise ValueError(f"{len(got)} outputs, onnxruntime gives {len(ref)}")
    return max(max_rel_err(a, b) for a, b in zip(got, ref))


def lathe_importer():
    """(lathe, lathe.from_onnx): imported late, so that building and checking the zoo with
    onnxruntime alone works in an environment without Lathe's dependencies."""
    import lathe

    return lathe, lathe.from_onnx


class Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[stage] = time.perf_counter() - start


def check_model(
    name: str, small: bool, seed: int, opset: int, repeat: int, tol: float, verbose: bool, use_lathe: bool = True
) -> dict:
    """Every stage for one model; failures are recorded in the row, not raised."""
    row = {"model": name, "ok": True, "error": ""}
    t = Timer()
    try:
        model = t("build", ZOO[name].build, small=small, seed=seed, opset=opset)
        row["params"] = int({p.key: p.value for p in model.metadata_props}["num_parameters"])
        t("check", onnx.checker.check_model, model, full_check=True)
        inputs = random_inputs(model, seed)
        sess = t("ort_session", session, model)
        ref = t("ort_run", sess.run, None, inputs)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            sess.run(None, inputs)
            times.append(time.perf_counter() - start)
        row["ort_latency"] = statistics.median(times) if times else t.seconds["ort_run"]
        bad = [o.name for o, r in zip(model.graph.output, ref) if not np.all(np.isfinite(r))]
        if bad:
            raise ValueError(f"onnxruntime gives non-finite values in {', '.join(bad)}")
        del sess

        lathe, from_onnx = lathe_importer()
        if from_onnx is not None and use_lathe:
            module, params = t("import", from_onnx, model)
            row["interp_err"] = worst_error(t("interpret", lathe.interpret, module, params=params, **inputs), ref)
            compiled = t("compile", lathe.compile, module, params=params)
            ordered = [inputs[n] for n, _, _ in input_specs(model)]
            row["compiled_err"] = worst_error(t("run", compiled.run, *ordered), ref)
            row["ok"] = row["interp_err"] <= tol and row["compiled_err"] <= tol
    except Exception as e:  # one model's failure must not hide the others'
        row["ok"] = False
        lines = [ln.strip() for ln in f"{type(e).__name__}: {e}".splitlines() if ln.strip()]
        row["error"] = " | ".join(lines)[:400]
        if verbose:
            traceback.print_exc()
    row["seconds"] = t.seconds
    return row


def format_table(rows: list[dict], tol: float, with_lathe: bool) -> str:
    def err(v):
        return f"{v:.2e}" if v is not None else "-"

    def sec(row, stage):
        v = row["seconds"].get(stage)
        return f"{v:.2f}" if v is not None else "-"

    head = ["model", "params", "ort ms"]
    if with_lathe:
        head += ["interp err", "compiled err"]
    head += ["result", "build s", "check s", "ort s"]
    if with_lathe:
        head += ["import s", "interp s", "compile s", "run s"]
    lines = [head]
    for r in rows:
        line = [
            r["model"],
            f"{r['params']:,}" if "params" in r else "-",
            f"{r['ort_latency'] * 1e3:.1f}" if "ort_latency" in r else "-",
        ]
        if with_lathe:
            line += [err(r.get("interp_err")), err(r.get("compiled_err"))]
        line += [
            "PASS" if r["ok"] else "FAIL",
            sec(r, "build"),
            sec(r, "check"),
            f"{r['seconds']['ort_session'] + r['seconds'].get('ort_run', 0):.2f}"
            if "ort_session" in r["seconds"]
            else "-",
        ]
        if with_lathe:
            line += [sec(r, s) for s in ("import", "interpret", "compile", "run")]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in lines
    ]
    out.insert(1, "-" * len(out[0]))
    for r in rows:
        if r["error"]:
            out.append(f"{r['model']}: {r['error']}")
    out.append(f"tolerance {tol:g} (max relative error vs onnxruntime)")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="the small test variants instead of full size")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(ZOO),
        metavar="NAME",
        help=f"check only this model (repeatable): {', '.join(ZOO)}",
    )
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs seed (default 0)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--repeat", type=int, default=5, help="timed onnxruntime runs for the latency (median)")
    parser.add_argument("--tol", type=float, default=TOLERANCE, help=f"relative error bound (default {TOLERANCE:g})")
    parser.add_argument(
        "--onnxruntime-only", action="store_true", help="skip Lathe: validate the models and time onnxruntime"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failures")
    args = parser.parse_args(argv)

    use_lathe = not args.onnxruntime_only
    rows = []
    for name in args.only or ZOO:
        print(f"{name} ...", end=" ", flush=True)
        row = check_model(name, args.small, args.seed, args.opset, args.repeat, args.tol, args.verbose, use_lathe)
        print("ok" if row["ok"] else f"FAIL {row['error']}", flush=True)
        rows.append(row)
        gc.collect()  # full-size models are hundreds of MB each
    print()
    print(format_table(rows, args.tol, use_lathe))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
