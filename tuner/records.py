"""The tuning database: one JSON object per line, one line per trial.

Every line carries the format version, the workload key (a hash of the normalised kernel
and the target, tuner/tasks.py), the target, the configuration's text and the outcome, and
the candidate's loop-program features (so that other workloads' tuning can learn from it
without lowering it again). Since format 2 a trial also carries its task's default
configuration's seconds, timed beside it in the same worker and round (`default_s`): its
ratio to the default is what compares across rounds, whose absolute seconds drift with the
load. Lines of the model check at the end of tuning (status `kept` or `default_wins`) say
whether a task's best record beat the default in the compiled model; compiling applies a
record only if no check dropped it. Format 1 lines (no `default_s`) are read as before. A
trial is appended with one `write` of one whole line to a file opened O_APPEND (after a
newline, if a killed run left the last line torn), then fsync'd: a run killed at any moment leaves at most its last line torn, which the reader
reports by line number and skips. Records of other workloads or targets are kept in the
file and ignored by whoever does not ask for them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)  # 1: before default_s and the model check; its lines read as they are
CHECK_STATUSES = ("kept", "default_wins")  # the model check's verdict on a task's best record


@dataclass(frozen=True)
class Record:
    workload: str
    target: str
    task: str  # the kernel's name, for people
    config: str
    status: str  # one of measure.STATUSES
    seconds: float | None = None
    noise: float | None = None
    flops: float = 0.0
    error: str = ""
    time: float = 0.0  # when it was measured (Unix seconds)
    features: list[float] | None = None  # of its loop program (tuner/features.py), for transfer
    features_v: int = 0  # features.VERSION they were computed by
    rotate: int = 0  # sets of buffers its runs cycled through (measure.Result.rotate); 0: not said
    # the default configuration's seconds beside it (a trial: in its worker and round; a check:
    # the default build's kernels in the model, `seconds` then being the tuned build's)
    default_s: float | None = None
    v: int = FORMAT_VERSION

    @property
    def gflops(self) -> float:
        return self.flops / self.seconds / 1e9 if self.seconds else 0.0

    @property
    def speedup(self) -> float | None:
        """Over the default timed beside it; None for a record that was not (format 1)."""
        return self.default_s / self.seconds if self.default_s and self.seconds else None

    @property
    def relative(self) -> float | None:
        """Seconds in units of the default's timed beside it (plain seconds for a format-1
        record): what ranks candidates, across rounds and loads."""
        if not self.seconds:
            return None
        return self.seconds / self.default_s if self.default_s else self.seconds


def append(path: str | os.PathLike, record: Record) -> None:
    data = dict(asdict(record))
    data["time"] = data["time"] or time.time()
    line = (json.dumps(data, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a line torn by a killed run stays one bad line
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(path: str | os.PathLike) -> None:
    """Said before tuning starts, not after its first trial."""
    from lathe.errors import LatheError

    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    except OSError as e:
        raise LatheError(f"cannot write the tuning database {path}: {e.strerror}") from None


def load(path: str | os.PathLike) -> tuple[list[Record], list[str]]:
    """Every readable record, and a note per line that is not one (a torn last write, a
    hand edit, a newer format): a corrupt database is never fatal."""
    records: list[Record] = []
    notes: list[str] = []
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return [], []
    except OSError as e:
        return [], [f"note: cannot read tuning database {path}: {e.strerror}; tuning from scratch"]
    fields = set(Record.__dataclass_fields__)
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            if data.get("v") not in READ_VERSIONS:
                raise ValueError(
                    f"format version {data.get('v')!r}, this Lathe reads {', '.join(map(str, READ_VERSIONS))}"
                )
            records.append(Record(**{k: v for k, v in data.items() if k in fields}))
        except (ValueError, TypeError) as e:
            notes.append(f"note: {path}:{n}: corrupt record skipped ({e})")
    return records, notes


def best(records: list[Record], workload: str) -> Record | None:
    """The fastest working record of `workload`: by its ratio to the default timed beside it,
    among the records that have one (seconds of different rounds do not compare: they drift
    with the load). Among format-1 records, by seconds; where some of those were timed from
    memory (on rotating buffers) only those count: the others (made before rotation, or with
    it turned off) were timed from the cache, and a memory-bound kernel looks faster there."""
    ok = [r for r in records if r.workload == workload and r.status == "ok" and r.seconds]
    paired = [r for r in ok if r.default_s]
    if paired:
        return max(paired, key=lambda r: r.speedup)  # type: ignore[arg-type,return-value]
    if any(r.rotate > 1 for r in ok):
        ok = [r for r in ok if r.rotate > 1]
    return min(ok, key=lambda r: r.seconds) if ok else None  # type: ignore[arg-type,return-value]


def runner_up(records: list[Record], workload: str, tried: set[str]) -> Record | None:
    """The best record of `workload` among the configurations not in `tried` and not dropped by
    their last model check: what the check tries next where the best lost to the default."""
    last = {r.config: r.status for r in records if r.workload == workload and r.status in CHECK_STATUSES}
    skip = tried | {c for c, status in last.items() if status == "default_wins"}
    return best([r for r in records if r.config not in skip], workload)


def verdict(records: list[Record], workload: str, config: str) -> Record | None:
    """The last model check of `config` for `workload` (status `kept` or `default_wins`), if any."""
    checks = [r for r in records if r.workload == workload and r.config == config and r.status in CHECK_STATUSES]
    return checks[-1] if checks else None


def applied(records: list[Record], workload: str) -> tuple[Record | None, Record | None]:
    """The record that compiling applies for `workload`, and the model check's verdict on it
    (None: never checked): its best, unless the best's last check says `default_wins`; then
    the record whose last check kept it with the greatest speedup in the model (an earlier
    best), if any; else none (the default schedule)."""
    top = best(records, workload)
    if top is None:
        return None, None
    check = verdict(records, workload, top.config)
    if check is None or check.status == "kept":
        return top, check
    last: dict[str, Record] = {}
    for r in records:
        if r.workload == workload and r.status in CHECK_STATUSES:
            last[r.config] = r
    kept = [c for c in last.values() if c.status == "kept"]
    if not kept:
        return None, check
    check = max(kept, key=lambda c: c.speedup or 0.0)
    return best([r for r in records if r.config == check.config], workload), check


def foreign_note(path, records: list[Record], workloads: set[str], target: str) -> str | None:
    """One note for the records that are for another target or another workload."""
    other_target = sum(1 for r in records if r.target != target)
    other_work = sum(1 for r in records if r.target == target and r.workload not in workloads)
    if not other_target and not other_work:
        return None
    parts = []
    if other_target:
        parts.append(f"{other_target} for other targets")
    if other_work:
        parts.append(f"{other_work} for workloads this model does not have")
    return f"note: {path}: ignored {' and '.join(parts)} (target here: {target})"
