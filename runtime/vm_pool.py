"""The VM's memory pool: storage for the tensors that kernels write, reused across regions and runs.

Storage is handed out in size classes (four per power of two, so at most a quarter is wasted
and the tensors of nearby shapes share a class: BERT served at sequence lengths 60 and 64 reuses
one block), 64-byte aligned (as every buffer Lathe allocates), keyed by (size
class, alignment). The VM counts the registers that hold a view of each block (through tuples
too); when the last dies (a `Kill` at its last use, or its frame returning) the block goes back
to its class's free list, for the next tensor of that class in this run or a later one. A block
that leaves the VM's sight (returned to the caller of a run, or captured by a closure, whose
life the VM does not know) is forgotten by the pool: it is the caller's or Python's, and no
later run writes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lathe.backends.interface import ALIGN

_STEPS = 4  # size classes per power of two


def size_class(nbytes: int) -> int:
    """The smallest class that holds `nbytes`: 64, then 4 steps per power of two, multiples of 64."""
    if nbytes <= ALIGN:
        return ALIGN
    top = 1 << (nbytes - 1).bit_length()  # the power of two at or above
    step = max(ALIGN, top // (2 * _STEPS))  # the classes between top/2 and top
    return -(-nbytes // step) * step


@dataclass
class PoolStats:
    """What the pool has handed out, in blocks and bytes (size classes, not tensor sizes)."""

    fresh: int = 0
    fresh_bytes: int = 0
    reused: int = 0
    reused_bytes: int = 0
    held_bytes: int = 0  # blocks the pool owns now, free or in use
    escaped: int = 0  # blocks given away (results of a run, captured values)

    def __str__(self) -> str:
        total = self.fresh_bytes + self.reused_bytes
        share = self.reused_bytes / total if total else 0.0
        return (
            f"{self.fresh} blocks allocated fresh ({self.fresh_bytes} bytes), {self.reused} reused "
            f"({self.reused_bytes} bytes, {share:.0%} of all bytes handed out), {self.held_bytes} bytes held, "
            f"{self.escaped} given away"
        )


@dataclass(eq=False)
class _Block:
    block: np.ndarray  # what AllocStorage gives: uint8, aligned
    size: int  # its class
    views: list = field(default_factory=list)  # the arrays handed out over it (kept alive, so their ids stay theirs)
    holders: int = 0  # registers holding one of them


@dataclass(eq=False)
class MemoryPool:
    free: dict[tuple[int, int], list[np.ndarray]] = field(default_factory=dict)
    # every array handed out over a block in use, by id (the block itself and its tensors): the
    # VM's registers hold exactly these objects (kernels write them through run(out=...)), so
    # a register's value is found with one lookup
    live: dict[int, _Block] = field(default_factory=dict)
    stats: PoolStats = field(default_factory=PoolStats)

    def storage(self, nbytes: int) -> np.ndarray:
        """A block of at least `nbytes` (uint8, 64-byte aligned), held by no register yet."""
        cls = size_class(nbytes)
        free = self.free.get((cls, ALIGN))
        if free:
            block = free.pop()
            self.stats.reused += 1
            self.stats.reused_bytes += cls
        else:
            raw = np.empty(cls + ALIGN, np.uint8)
            offset = -raw.ctypes.data % ALIGN
            block = raw[offset : offset + cls]
            self.stats.fresh += 1
            self.stats.fresh_bytes += cls
            self.stats.held_bytes += cls
        self.live[id(block)] = _Block(block, cls, [block])
        return block

    def view(self, block: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A tensor of `shape` and `dtype` over a block from `storage`."""
        tensor = np.ndarray(shape, dtype, buffer=block)
        entry = self.live[id(block)]
        entry.views.append(tensor)
        self.live[id(tensor)] = entry
        return tensor

    def tensor(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A tensor over a fresh or reused block."""
        return self.view(self.storage(math.prod(shape) * dtype.itemsize), shape, dtype)

    def hold(self, value) -> None:
        """One more register holds `value` (an array, a tuple of them, or anything else)."""
        entry = self.live.get(id(value))
        if entry is not None:
            entry.holders += 1
        elif type(value) is tuple:
            for v in value:
                self.hold(v)

    def drop(self, value) -> None:
        """A register that held `value` died: a block no register holds goes back to its free list."""
        entry = self.live.get(id(value))
        if entry is not None:
            entry.holders -= 1
            if entry.holders <= 0:
                self._forget(entry)
                self.free.setdefault((entry.size, ALIGN), []).append(entry.block)
        elif type(value) is tuple:
            for v in value:
                self.drop(v)

    def give_away(self, value) -> None:
        """`value` leaves the VM's sight: the pool forgets its blocks (never handed out again)."""
        entry = self.live.get(id(value))
        if entry is not None:
            self._forget(entry)
            self.stats.escaped += 1
            self.stats.held_bytes -= entry.size
        elif type(value) is tuple:
            for v in value:
                self.give_away(v)

    def _forget(self, entry: _Block) -> None:
        for v in entry.views:
            del self.live[id(v)]
        entry.views.clear()
