"""Static storage planning: intermediates whose lifetimes do not overlap share memory.

A model's intermediates live from the kernel call that writes them to the last
call that reads them, and the call order is fixed, so where each one goes can
be decided once, before the first run. As TVM's graph executor plans storage,
the buffers are placed in one arena; the placement is greedy by size (the
strategy of TFLite's arena planner, Pisarchyk and Lee 2020): the largest buffer
first, each at the lowest 64-byte-aligned offset that no placed buffer with an
overlapping lifetime occupies. Two buffers used by the same call always overlap
(a kernel reads its inputs while it writes its outputs, and its arguments are
`noalias`), so lifetimes are closed intervals of call indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lathe.backends.interface import ALIGN  # where every planned buffer starts


def aligned_size(nbytes: int, align: int = ALIGN) -> int:
    """Bytes a buffer takes in the arena: at least one alignment unit (a 0-element buffer
    still needs an address of its own), rounded up to the alignment."""
    return max(align, -(-nbytes // align) * align)


@dataclass(frozen=True)
class Lifetime:
    first: int  # the index of the call that writes the buffer
    last: int  # the index of the last call that reads it (== first if none does)

    def overlaps(self, other: Lifetime) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class MemoryPlan:
    offsets: tuple[int, ...]  # each buffer's byte offset in the arena
    arena_bytes: int  # the arena: what the planned intermediates take
    total_bytes: int  # what they would take with a buffer each
    live_peak_bytes: int  # the most bytes live at once: no plan can use less


def plan_memory(sizes: Sequence[int], lifetimes: Sequence[Lifetime], align: int = ALIGN) -> MemoryPlan:
    """Offsets for buffers of `sizes` bytes over `lifetimes`, greedy by size."""
    padded = [aligned_size(s, align) for s in sizes]
    order = sorted(range(len(padded)), key=lambda i: (-padded[i], lifetimes[i].first, i))
    offsets = [0] * len(padded)
    placed: list[int] = []
    arena = 0
    for i in order:
        busy = sorted((offsets[j], offsets[j] + padded[j]) for j in placed if lifetimes[j].overlaps(lifetimes[i]))
        best, best_gap, cursor = None, None, 0
        for start, end in busy:
            gap = start - cursor
            if gap >= padded[i] and (best_gap is None or gap < best_gap):  # the tightest gap that fits
                best, best_gap = cursor, gap
            cursor = max(cursor, end)
        offsets[i] = cursor if best is None else best
        placed.append(i)
        arena = max(arena, offsets[i] + padded[i])
    return MemoryPlan(tuple(offsets), arena, sum(padded), _live_peak(padded, lifetimes))


def _live_peak(sizes: Sequence[int], lifetimes: Sequence[Lifetime]) -> int:
    if not sizes:
        return 0
    steps = max(t.last for t in lifetimes) + 1
    live = [0] * (steps + 1)
    for size, t in zip(sizes, lifetimes):
        live[t.first] += size
        live[t.last + 1] -= size
    peak = running = 0
    for delta in live:
        running += delta
        peak = max(peak, running)
    return peak
