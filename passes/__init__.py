"""Every named pass Lathe offers, and the standard pipeline.

A pass is an xDSL `ModulePass` with a kebab-case `name`; its dataclass fields
are its options (`-p 'name{opt=1}'`).
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def lathe_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    def outline():
        from lathe.passes.outline import OutlineKernels
        return OutlineKernels

    def inline():
        from lathe.passes.outline import InlineCalls
        return InlineCalls

    def to_te():
        from lathe.lowering.graph_to_te import LowerGraphToTe
        return LowerGraphToTe

    def sched():
        from lathe.lowering.schedules import ApplyDefaultSchedule
        return ApplyDefaultSchedule

    def to_loop():
        from lathe.lowering.te_to_loop import LowerTeToLoop
        return LowerTeToLoop

    def cleanup():
        from lathe.passes.cleanup import CleanupLoops
        return CleanupLoops

    return {
        "inline-calls": inline,
        "outline-kernels": outline,
        "lower-graph-to-te": to_te,
        "apply-default-schedule": sched,
        "lower-te-to-loop": to_loop,
        "cleanup-loops": cleanup,
    }


# graph (Relay) -> te -> loop: what `lathe.compile` runs before the backend.
PIPELINE = "inline-calls,outline-kernels,lower-graph-to-te,apply-default-schedule,lower-te-to-loop,cleanup-loops"
