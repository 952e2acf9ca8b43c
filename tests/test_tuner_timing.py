"""How the tuner times candidates: rotating buffers for memory-bound ones, and the per-task ETA."""

import numpy as np
import pytest

import lathe
from lathe.api import parse_source
from lathe.tuner import measure, records
from lathe.tuner.measure import (
    MEMORY_BOUND_FLOPS_PER_BYTE,
    ROTATE_ALIGN,
    ROTATE_LLC_MULTIPLE,
    ROTATE_MAX_BYTES,
    LocalRunner,
    Timing,
    aligned_bytes,
    build_and_time,
    rotating_buffers,
    rotation_sets,
)
from lathe.tuner.search import full
from lathe.tuner.tasks import extract_tasks
from lathe.tuner.tune import format_table

QUICK = Timing(warmup_s=0.0, repeat=3, min_repeat_s=0.001, round_warmup_s=0.05)
ADD = "def @main(%x: Tensor[(64, 1024), float32], %y: Tensor[(64, 1024), float32]) { add(%x, %y) }"
GEMM = "def @main(%x: Tensor[(128, 128), float32], %w: Tensor[(128, 128), float32]) { nn.dense(%x, %w) }"


def _job(task, config=None, timing=QUICK):
    inputs = task.random_inputs()
    return dict(
        module=task.module_text(),
        config=config or str(full(task.template, task.space, task.default)),
        lanes=task.lanes,
        target=task.target,
        inputs=inputs,
        reference=task.reference(inputs),
        timing=timing,
        flops=task.flops(),
    )


@pytest.fixture
def add_task():
    (task,) = extract_tasks(parse_source(ADD, "add.lathe"), "llvm")
    return task


@pytest.fixture
def gemm_task(rng):
    w = rng.standard_normal((128, 128)).astype(np.float32)
    (task,) = extract_tasks(parse_source(GEMM, "gemm.lathe"), "llvm", {"w": w})
    return task


def test_rotation_sets_exceed_the_llc_within_the_cap():
    mib = 1 << 20
    llc = 32 * mib
    assert rotation_sets(3 * mib, 3 * mib / 12, llc) * 3 * mib >= ROTATE_LLC_MULTIPLE * llc  # an add of 3 MiB
    assert rotation_sets(3 * mib, MEMORY_BOUND_FLOPS_PER_BYTE * 3 * mib * 2, llc) == 1  # compute-bound
    assert rotation_sets(3 * mib, None, llc) == 1  # FLOPs unknown
    assert rotation_sets(40 * mib, 1.0, llc) == 1  # one set already fills the LLC
    huge_llc = 1 << 30  # the cap, not the LLC, bounds the memory
    sets = rotation_sets(1024, 10.0, huge_llc)
    assert sets * 1024 <= ROTATE_MAX_BYTES < (sets + 1) * 1024


def test_rotating_buffers_are_aligned_copies_in_one_allocation(rng):
    a = rng.standard_normal((3, 5)).astype(np.float32)  # 60 bytes: not a multiple of a line
    b = np.arange(7, dtype=np.int64)
    assert aligned_bytes(a) == aligned_bytes(b) == 64
    (ca, cb) = rotating_buffers([a, b], 4)
    for copies, src in ((ca, a), (cb, b)):
        assert len(copies) == 4 and copies[0].base.nbytes <= 4 * 64 + ROTATE_ALIGN
        assert len({c.base.ctypes.data for c in copies}) == 1  # one slab per array
        for c in copies:
            assert c.ctypes.data % ROTATE_ALIGN == 0 and c.flags.c_contiguous and c.flags.writeable
            np.testing.assert_array_equal(c, src)
    ca[1][...] = 0  # copies do not overlap
    np.testing.assert_array_equal(ca[0], a)
    np.testing.assert_array_equal(ca[2], a)


def test_memory_bound_add_rotates_and_small_gemm_keeps_one_set(add_task, gemm_task):
    with LocalRunner(timeout_s=60) as runner:
        add = runner.measure(_job(add_task))
        gemm = runner.measure(_job(gemm_task))
        fixed = runner.measure(_job(add_task, timing=Timing(0.0, 3, 0.001, rotate=False)))
    assert add.ok and add.seconds > 0, add.error
    footprint = 3 * 64 * 1024 * 4
    assert add.rotate > 1 and add.rotate * footprint > 2 * (1 << 20)  # beyond any L2
    assert add.rotate * footprint <= ROTATE_MAX_BYTES
    assert gemm.ok and gemm.rotate == 1, gemm.error
    assert fixed.ok and fixed.rotate == 1


def test_first_run_checks_the_first_set_and_the_rotation_checks_its_copies(add_task, monkeypatch):
    """The first run (the inputs as given) is checked against the reference; the timed runs
    use the copies, and the last one's outputs are checked too: copies made wrong on purpose
    are caught, which shows the runs really read them."""
    job = _job(add_task)
    monkeypatch.setenv(measure.FAULT_ENV, "wrong@vector_width")
    wrong = build_and_time(job)
    assert wrong.status == "wrong" and "rotated" not in wrong.error
    monkeypatch.delenv(measure.FAULT_ENV)

    seen = []

    def corrupted(arrays, sets):  # inputs' copies off by one (the outputs' copies are overwritten anyway)
        seen.append(sets)
        out = rotating_buffers(arrays, sets)
        for c in out[0]:
            c += 1
        return out

    monkeypatch.setattr(measure, "rotating_buffers", corrupted)
    res = build_and_time(job)
    assert seen and seen[0] > 1
    assert res.status == "wrong" and "rotated copy" in res.error


def test_tune_records_and_reports_the_sets(add_task, tmp_path):
    db = tmp_path / "add.jsonl"
    always = Timing(warmup_s=0.0, repeat=3, min_repeat_s=0.001, round_warmup_s=0.05, rotate=True)
    results = lathe.tune(parse_source(ADD, "add.lathe"), trials=2, db=db, search="random", timing=always)
    recs, _ = records.load(db)
    assert recs and all(r.rotate > 1 for r in recs if r.status == "ok")
    header, row = format_table(results).splitlines()[:2]
    assert "sets" in header.split() and str(results[0].best.rotate) in row.split()


def test_task_eta_keeps_the_share_the_task_has_had():
    from lathe.tuner.scheduler import task_eta

    # after the warm-up: 24 of the run's 48 trials, in 12 s; 64 trials left to share
    assert task_eta(24, 48, 112, 12.0, 1000, warm_up=32) == (24 + 32, 32 * 0.5)
    # its space caps it: only 5 configurations left
    assert task_eta(24, 48, 112, 12.0, 5, warm_up=32) == (29, 5 * 0.5)
    # the first task's first round of a 4-task warm-up: a quarter of the budget, not all of it
    assert task_eta(8, 8, 64, 4.0, 1000, warm_up=32) == (8 + 14, 14 * 0.5)
    assert task_eta(8, 64, 64, 4.0, 1000, warm_up=32) == (8, 0.0)  # budget spent
    assert task_eta(0, 8, 64, 0.0, 1000, warm_up=32) is None
    # a budget smaller than the warm-up: the round in progress is still the task's
    assert task_eta(1, 1, 24, 3.0, 1000, warm_up=232, round_left=7) == (8, 21.0)


def test_progress_line_shows_the_task_eta(gemm_task, tmp_path):
    from lathe.tuner.tune import TaskTuner

    tuner = TaskTuner(gemm_task, tmp_path / "db.jsonl", [], search="random", timing=QUICK)
    assert "ETA" not in tuner.progress_line(0, 64, 8)
    tuner.done, tuner.spent_s, tuner.best_s = 8, 20.0, 1e-4
    tuner.tried = {f"c{k}" for k in range(8)}
    line = tuner.progress_line(16, 64, 16)
    assert "8 of ~32 trials" in line and "ETA 01:00" in line and "GFLOP/s" in line


def test_best_compares_memory_timed_records_only_with_their_like():
    def rec(config, seconds, rotate):
        return records.Record("w", "llvm", "k", config, "ok", seconds, 0.0, 1e6, rotate=rotate)

    cached = [rec("a", 1e-6, 0), rec("b", 2e-6, 1)]  # before rotation / in place: from the cache
    assert records.best(cached, "w").config == "a"
    rotated = [rec("c", 5e-6, 682), rec("d", 4e-6, 682)]
    assert records.best(cached + rotated, "w").config == "d"
