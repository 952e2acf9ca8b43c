"""Build one-op modules and compare compiled code with the reference interpreter.

The builders, input samplers, comparison and tolerances live in
`lathe.testing.op_cases`, shared with the backend conformance suite."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

import lathe
from lathe.testing.op_cases import (  # noqa: F401  (re-exported for the tests)
    ELEMWISE_RTOL,
    REDUCE_RTOL,
    one_op_module,
    random_inputs,
    rel_err,
)


def check_op(module: ModuleOp, inputs: dict, rtol: float) -> None:
    ref = lathe.interpret(module, **inputs)
    got = lathe.compile(module).run(**inputs)
    refs = ref if isinstance(ref, tuple) else (ref,)
    gots = got if isinstance(got, tuple) else (got,)
    assert len(refs) == len(gots)
    for g, r in zip(gots, refs):
        e = rel_err(g, r)
        assert e <= rtol, f"relative error {e:.3e} > {rtol:g}"
