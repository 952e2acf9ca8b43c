"""How Lathe's results are compared with a reference: one measure for the CLI's --check,
the fuzzer, the zoo check and the tests."""

from __future__ import annotations

import numpy as np


def flatten_outputs(v, name: str = "output") -> dict[str, np.ndarray]:
    """A result (an array, or nested tuples of them) as named arrays: output, output_0, ..."""
    if isinstance(v, tuple | list):
        out = {}
        for k, x in enumerate(v):
            out.update(flatten_outputs(x, f"{name}_{k}") if isinstance(x, tuple | list) else {f"{name}_{k}": x})
        return out
    return {name: v}


def max_relative_error(got, ref) -> float:
    """max |got - ref| / max |ref| over all outputs and their finite values (the absolute error
    when the reference is all zeros); inf when shapes, or where values are not finite, differ."""
    worst = 0.0
    gots, refs = flatten_outputs(got).values(), flatten_outputs(ref).values()
    if len(gots) != len(refs):
        return float("inf")
    for g, r in zip(gots, refs):
        g = np.asarray(g, dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if g.shape != r.shape or not np.array_equal(np.isfinite(g), np.isfinite(r)):
            return float("inf")
        fin = np.isfinite(r)
        scale = np.max(np.abs(r[fin])) if fin.any() else 0.0
        err = np.max(np.abs(g[fin] - r[fin])) if fin.any() else 0.0
        worst = max(worst, err / scale if scale > 0 else err)
    return float(worst)
