"""The thread pool that runs parallel loops (backends/llvm/parallel_runtime.py):
right results however the pool is shared, and a thread count per compiled module."""

import contextlib
import ctypes
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import lathe
from lathe.backends.llvm.parallel_runtime import parallel_runtime
from lathe.textual_ir.parser import parse_relay

SRC = """def @main(%x: Tensor[(64, 96), float32], %w: Tensor[(80, 96), float32]) {
  nn.relu(nn.dense(%x, %w))
}"""


def _reference(x, w):
    return np.maximum(x.astype(np.float64) @ w.T.astype(np.float64), 0)


def _inputs(rng):
    return rng.standard_normal((64, 96)).astype(np.float32), rng.standard_normal((80, 96)).astype(np.float32)


def test_modules_keep_their_own_thread_count(rng):
    one = lathe.compile(parse_relay(SRC), num_threads=1)
    two = lathe.compile(parse_relay(SRC), num_threads=2)
    x, w = _inputs(rng)
    threads = parallel_runtime()._threads
    for cm, n in ((two, 2), (one, 1), (two, 2)):  # the last module built does not decide
        np.testing.assert_allclose(cm.run(x, w), _reference(x, w), rtol=1e-4, atol=1e-4)
        assert threads.value == n


def test_runs_from_several_python_threads_share_the_pool(rng):
    """A loop entered while another thread holds the pool runs serially, not wrongly."""
    mods = [lathe.compile(parse_relay(SRC), num_threads=2) for _ in range(3)]
    data = [_inputs(rng) for _ in mods]
    errors = []

    def work(cm, x, w):
        ref = _reference(x, w)
        for _ in range(200):
            got = cm.run(x, w)
            if not np.allclose(got, ref, rtol=1e-4, atol=1e-4):
                errors.append(float(np.abs(got - ref).max()))
                return

    ts = [threading.Thread(target=work, args=(cm, *d)) for cm, d in zip(mods, data)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def test_a_forked_child_starts_its_own_workers(rng):
    cm = lathe.compile(parse_relay(SRC), num_threads=2)
    x, w = _inputs(rng)
    ref = _reference(x, w)
    cm.run(x, w)  # the parent's workers exist now; the child inherits none of them
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        ok = all(np.allclose(cm.run(x, w), ref, rtol=1e-4, atol=1e-4) for _ in range(50))
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_trip_counts_that_do_not_divide_into_chunks(rng):
    """Every iteration runs exactly once, whatever the trip count and thread count. (The rows
    are the parallel loop, each a vector loop no vector width divides; they are long enough
    that the backend finds the loop worth its threads.)"""
    for shape in ((1001, 333), (2049, 165), (4097, 117), (3, 7)):
        src = f"def @main(%a: Tensor[{shape}, float32]) {{ add(multiply(%a, 2f), 1f) }}"
        for threads in (1, 2, 3, 8):
            a = rng.standard_normal(shape).astype(np.float32)
            cm = lathe.compile(parse_relay(src), num_threads=threads)
            assert ("call void @lathe_parallel_for" in cm.source) == (shape[0] > 3)  # the pool, or not worth it
            np.testing.assert_allclose(cm.run(a), a * 2 + 1, rtol=1e-6)


def test_loops_with_little_work_stay_on_the_caller():
    """Waking a worker costs more than a tiny loop: the MLP's second layer (128 x 10 MACs)
    runs serially. (Its first, 784 x 128, is near the line: on 8-lane vectors it has twice the
    instructions of 16-lane ones, and goes parallel.)"""
    import lathe as lt

    examples = Path(__file__).parent.parent / "examples"
    cm = lt.compile(lt.load(examples / "mlp.lathe"), params=examples / "mlp.params.npz", num_threads=2)
    steps = [name for _, _, name in cm.executor.steps]
    assert steps[-1] == "fused_nn_dense_nn_bias_add_0"
    assert f"call void @lathe_parallel_for(ptr @{steps[-1]}" not in cm.source


def test_the_native_entry_marks_its_run_for_the_pool():
    """Workers stay awake between a run's kernels because the entry brackets them."""
    from lathe.backends.llvm.kernel_cache import entry_ir

    ir = entry_ir("run", [("k0__packed", [0, 1]), ("k1__packed", [1, 2])]).splitlines()
    body = [line.strip() for line in ir[ir.index("entry:") :]]
    calls = [line for line in body if line.startswith("call ")]
    assert calls == [
        "call void @lathe_run_begin()",
        "call void @k0__packed(ptr %args)",
        "call void @k1__packed(ptr %args)",
        "call void @lathe_run_end()",
    ]


def test_the_timed_entry_stamps_the_clock_around_every_kernel():
    from lathe.backends.llvm.kernel_cache import entry_ir

    ir = entry_ir("run", [("k0__packed", [0, 1]), ("k1__packed", [1, 2])], timed=True).splitlines()
    body = [line.strip() for line in ir[ir.index("entry:") :]]
    calls = [line.split("(")[0] for line in body if line.startswith("call ")]
    stamp = "call void @run.stamp"
    assert calls == [
        "call void @lathe_run_begin",
        stamp,
        "call void @k0__packed",
        stamp,
        "call void @k1__packed",
        stamp,
        "call void @lathe_run_end",
    ]
    assert "declare i32 @clock_gettime(i32, ptr)" in ir


def test_every_pool_defines_the_whole_abi():
    """The futex pool of each architecture and the serial stand-in (no futex) define the
    same symbols, so an entry or an artifact links against any of them."""
    import llvmlite.binding as llvm

    from lathe.backends.llvm.parallel_runtime import runtime_ir

    abi = {"lathe_parallel_for", "lathe_run_begin", "lathe_run_end", "lathe_pool_shutdown"}
    variables = {"lathe_num_threads", "lathe_spin_in_runs", "lathe_spin_yields", "lathe_pool_sleeps"}
    for triple in (
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "riscv64-unknown-linux-gnu",
        "x86_64-apple-darwin",
    ):
        mod = llvm.parse_assembly(runtime_ir(triple))
        mod.verify()
        assert abi <= {f.name for f in mod.functions if not f.is_declaration}, triple
        assert variables <= {g.name for g in mod.global_variables}, triple


def _parallel_module():
    src = "def @main(%a: Tensor[(2049, 165), float32]) { add(multiply(%a, 2f), 1f) }"
    cm = lathe.compile(parse_relay(src), num_threads=2)
    assert "call void @lathe_parallel_for" in cm.source
    return cm


def test_runs_are_right_with_workers_spinning_through_them_or_not(rng):
    pool = parallel_runtime()
    cm = _parallel_module()
    a = rng.standard_normal((2049, 165)).astype(np.float32)
    try:
        for spin in (False, True, False):
            pool.spin_in_runs = spin
            for _ in range(20):
                np.testing.assert_allclose(cm.run(a), a * 2 + 1, rtol=1e-6)
    finally:
        pool.spin_in_runs = False


def _pin_threads(cpus) -> None:
    """Every thread of this process (the pool's workers too) onto `cpus`."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def test_runs_are_right_with_the_caller_and_the_workers_on_one_cpu(rng):
    """What the OS does when another process holds the other core: every thread on one CPU,
    the workers' spinning yielding it to the caller (the default) or not."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        pytest.skip("no per-thread CPU affinity here")
    pool = parallel_runtime()
    cm = _parallel_module()
    a = rng.standard_normal((2049, 165)).astype(np.float32)
    cm.run(a)  # the workers exist
    mask = os.sched_getaffinity(0)
    try:
        _pin_threads({min(mask)})
        for yields in (True, False, True):
            pool.spin_yields = yields
            for _ in range(20):
                np.testing.assert_allclose(cm.run(a), a * 2 + 1, rtol=1e-6)
    finally:
        _pin_threads(mask)
        pool.spin_yields = True


def test_marked_runs_nest_and_workers_sleep_once_no_run_is_active(rng):
    """Runs may overlap (two threads, or a run inside a profile's marked loop): kernels are right
    inside nested marks, and once every run has ended an idle worker goes to sleep on the
    futex rather than spinning on (waited for up to a minute: a liveness check, not a timing)."""
    import time

    pool = parallel_runtime()
    cm = _parallel_module()
    a = rng.standard_normal((2049, 165)).astype(np.float32)
    pool.run_begin()
    pool.run_begin()
    try:
        np.testing.assert_allclose(cm.run(a), a * 2 + 1, rtol=1e-6)
    finally:
        pool.run_end()
        pool.run_end()
    before = pool.sleeps  # read before the run: a worker it wakes or finds spinning sleeps after it
    cm.run(a)
    deadline = time.monotonic() + 60
    while pool.sleeps == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.sleeps > before


def test_the_per_kernel_path_marks_its_runs(rng):
    """Kernels called one by one (the profiler, backends without an entry) are one run to the
    pool, as the native entry's are, and every mark is undone."""
    cm = _parallel_module()
    cm.run(rng.standard_normal((2049, 165)).astype(np.float32))  # binds the buffers time_kernels runs on
    marks = []
    library = cm.executor._library
    real = library.mark_run
    library.mark_run = lambda active: (marks.append(active), real(active))
    try:
        # a clock the timed native entry cannot read: the kernels are called from Python
        cm.executor.time_kernels(repeat=2, warmup_seconds=0.0, clock=lambda: time.perf_counter())
    finally:
        library.mark_run = real
    assert marks == [True, False] * 2


_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


def _claims(threads: int, trip: int, hold_s: float = 0.0) -> dict[int, list[tuple[int, int]]]:
    """Which ranges of a `trip`-iteration loop each thread ran, in the order it ran them, when
    lathe_parallel_for calls a Python body (each call holding on for `hold_s`)."""
    pool = parallel_runtime()
    parallel_for = ctypes.CFUNCTYPE(None, _BODY, ctypes.c_void_p, ctypes.c_int64)(
        pool._engine.get_function_address("lathe_parallel_for")
    )
    ran: dict[int, list[tuple[int, int]]] = {}

    def body(_ctx, begin, end):
        ran.setdefault(threading.get_ident(), []).append((begin, end))
        time.sleep(hold_s)

    keep = _BODY(body)
    before = pool._threads.value
    pool.set_num_threads(threads)
    try:
        parallel_for(keep, None, trip)
    finally:
        pool.set_num_threads(before)
    return ran


def test_each_thread_runs_one_contiguous_part_of_a_loop():
    """Each thread claims its own segment of the chunks first, and two threads take the loop
    from its two ends: the caller one run from the start, the worker one run to the end,
    wherever they met (a slow worker's share is taken by the caller, a busy one's by the
    worker), so a kernel after it finds its part in the cache its own core filled (one shared
    counter handed chunks out in arrival order, different ones every run)."""
    me = threading.get_ident()
    for trip, hold in ((1000, 0.0), (64, 0.002), (17, 0.0), (2, 0.0)):
        ran = _claims(2, trip, hold)
        assert sorted(i for rs in ran.values() for b, e in rs for i in range(b, e)) == list(range(trip))
        for who, rs in ran.items():
            rs = sorted(rs)
            assert all(a[1] == b[0] for a, b in zip(rs, rs[1:])), (who, rs)  # one contiguous run
            assert rs[0][0] == 0 if who == me else rs[-1][1] == trip, (who, rs)
        if hold:  # each call holds on long enough for the worker to wake and take its half
            assert len(ran) == 2


def test_every_iteration_runs_once_from_any_number_of_segments():
    """Threads past their own segment take from the others' (at 3 and 8 threads, where a
    thief and an owner can meet at one end)."""
    for threads in (3, 8):
        for trip, hold in ((1000, 0.0), (100, 0.001), (5, 0.0)):
            ran = _claims(threads, trip, hold)
            assert sorted(i for rs in ran.values() for b, e in rs for i in range(b, e)) == list(range(trip))
