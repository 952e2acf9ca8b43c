"""Lathe's dialects and the xDSL dialects they are used with."""

from xdsl.context import Context


def make_context() -> Context:
    """A context that knows every dialect a Lathe IR file may contain."""
    from xdsl.dialects import arith, builtin, func, gpu, math, memref, scf

    from lathe.dialects.graph import Graph
    from lathe.dialects.loop import Loop
    from lathe.dialects.te import TE

    ctx = Context()
    for d in (builtin.Builtin, func.Func, arith.Arith, math.Math, memref.MemRef, scf.Scf, gpu.GPU, Graph, TE, Loop):
        ctx.load_dialect(d)
    return ctx
