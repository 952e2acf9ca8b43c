"""The thread pool that runs parallel loops, written in LLVM IR.

Why not libgomp: GOMP_parallel chunks a loop statically over its team and
ends in a barrier, so one worker that the OS has not scheduled (another
process holds its core) stalls the whole run for a time slice: a 40 µs model
ran at 32 ms under one busy competitor. Here the calling thread takes work
itself, chunks are claimed dynamically (each thread first from its own
contiguous segment, then from its neighbours'), and the caller
waits only for chunks that a worker has already started; a worker that wakes
late finds nothing left and goes back to sleep.

Idle workers spin briefly (one round of SPIN_ITERATIONS) and then sleep on a
futex. While spinning they yield the CPU every YIELD_EVERY `pause`s
(`lathe_spin_yields`, on by default): when another process holds one of two
cores, the OS runs the caller and the worker on the other, and a worker that
spun out its round there kept the caller from its next (often serial) kernel.
EfficientNet-B0's run() with all threads pinned to one CPU took 13.4-13.7 ms
with a non-yielding spin, 10.3-11.1 ms yielding, 10.4-11.6 ms compiled for one
thread (same process, alternating; mobilenet_v3 0.70x and efficientnet_b0 0.86x
under the real load of other processes). With `lathe_spin_in_runs` set, while a run is active (the native entry
brackets the kernels with lathe_run_begin/end) they keep spinning between kernels, yielding the core once per spin round, for
up to RUN_SPIN_ROUNDS rounds, as ONNX Runtime's intra-op pool spins through a
session run. A run's serial kernels are where workers used to fall asleep, and
the parallel kernel after one paid a futex wake-up, on a VM an inter-processor
interrupt through the hypervisor: tens of µs of a kernel run by the caller
alone. Spinning must not take a core that another thread wants: a worker whose
round (and the yield after it) took more wall time than CPU time waited for a
core (WAITED_PARTS), and goes to sleep as it would outside a run; the bound on rounds puts
it to sleep during a long serial stretch, where one wake-up is cheap next to
the stretch. It is off by default: on the shared 2-core VM, with more runnable
threads than cores, a worker spinning through a run still took time from the
caller (benchmarks/contention.py's BERT attention and conv rows, 1.3-2.8x the
median of the sleeping pool, in one process), and on an idle machine workers
rarely slept inside a run anyway (docs/performance.md, "Runtime share").

The pool is process-wide and created lazily; how many threads a loop may use
is `lathe_num_threads`, which the module being run sets (so the thread count
belongs to a compiled module, not to whichever was built last). A loop entered
while another thread holds the pool runs serially instead of waiting.

ABI, shared by the JIT and by object files:
    void lathe_parallel_for(void (*body)(void *ctx, i64 begin, i64 end), void *ctx, i64 trip)
    i32  lathe_num_threads          (0 or 1: loops run serially on the caller)
    void lathe_run_begin(void), lathe_run_end(void)  (bracket a run; runs may nest or overlap)
    i32  lathe_spin_in_runs         (1: workers stay awake while a run is active; 0, the default)
    i32  lathe_spin_yields          (1, the default: spinning workers yield the CPU every YIELD_EVERY pauses)
    i64  lathe_pool_sleeps          (how many times a worker has gone to sleep on the futex)
    void lathe_pool_shutdown(void)  (ends the workers; the JIT calls it at exit)
"""

from __future__ import annotations

import atexit
import ctypes
import functools
from dataclasses import dataclass

import llvmlite.binding as llvm

CHUNKS_PER_THREAD = 8  # more chunks: a late or preempted worker delays the caller by less
SPIN_ITERATIONS = (
    4000  # one spin round: 4000 `pause`s, ~100 µs on Sapphire/Emerald Rapids and on this Zen 4 VM (25 ns each)
)
# An idle worker spinning yields its CPU every YIELD_EVERY `pause`s (6 us here; a power of 2):
# on a busy machine the OS may have put it on the caller's CPU, and a worker spinning out its
# round there held the caller off for up to a round after every parallel kernel.
YIELD_EVERY = 256
RUN_SPIN_ROUNDS = 20  # rounds an idle worker keeps spinning while a run is active: ~2 ms on Intel
# A worker that spent more than 1/WAITED_PARTS of a spin round (and the yield after it) waiting
# for a CPU, rather than running, shares its core with another thread: the machine is
# oversubscribed, and spinning on would take time from the caller or a competitor, so it sleeps.
WAITED_PARTS = 8
MAX_WORKERS = 256
# A loop with less work than this (instructions, dialects/loop.static_work) runs on the caller
# alone: waking and joining a worker costs a few microseconds, about 10-20k instructions, and a
# parallel region is worth it only for several times that.
PARALLEL_MIN_WORK = 1 << 16
PARALLEL_FOR_DECL = "declare void @lathe_parallel_for(ptr, ptr, i64)"


@dataclass(frozen=True)
class _Arch:
    futex: int  # the futex syscall number
    spin_hint: str | None  # one instruction that tells the core we are spinning


_ARCHES = {
    "x86_64": _Arch(202, "call void @llvm.x86.sse2.pause()"),
    "aarch64": _Arch(98, "call void @llvm.aarch64.hint(i32 1)"),
    "riscv64": _Arch(98, None),
}
_HINT_DECLS = {
    "x86_64": "declare void @llvm.x86.sse2.pause()",
    "aarch64": "declare void @llvm.aarch64.hint(i32)",
}


def worth_threads(loop) -> bool:
    """Whether a parallel-annotated loop has enough work to be worth the pool."""
    from lathe.dialects.loop import static_work

    work = static_work(loop)
    return work is None or work >= PARALLEL_MIN_WORK


def _arch(triple: str) -> str:
    return triple.split("-", 1)[0]


def runtime_ir(triple: str) -> str:
    """The pool for `triple`; where there is no futex (not Linux, an unknown
    architecture) parallel loops run serially on the caller."""
    arch = _ARCHES.get(_arch(triple)) if "linux" in triple else None
    if arch is None:
        return _SERIAL_IR
    hint = arch.spin_hint or ""
    return (
        _POOL_IR.replace("@FUTEX@", str(arch.futex))
        .replace("@HINT@", hint)
        .replace("@HINT_DECL@", _HINT_DECLS.get(_arch(triple), ""))
        .replace("@CHUNKS@", str(CHUNKS_PER_THREAD))
        .replace("@SPIN@", str(SPIN_ITERATIONS))
        .replace("@YIELD_MASK@", str(YIELD_EVERY - 1))
        .replace("@RUN_ROUNDS@", str(RUN_SPIN_ROUNDS))
        .replace("@WAIT_PARTS@", str(WAITED_PARTS))
        .replace("@MAX_WORKERS@", str(MAX_WORKERS))
        .replace("@SEGMENTS@", str(MAX_WORKERS + 1))
    )


_SERIAL_IR = """
@lathe_num_threads = global i32 0

define void @lathe_parallel_for(ptr %f, ptr %cx, i64 %trip) {
entry:
  call void %f(ptr %cx, i64 0, i64 %trip)
  ret void
}

@lathe_spin_in_runs = global i32 0
@lathe_spin_yields = global i32 1
@lathe_pool_sleeps = global i64 0

define void @lathe_run_begin() {
entry:
  ret void
}

define void @lathe_run_end() {
entry:
  ret void
}

define void @lathe_pool_shutdown() {
entry:
  ret void
}
"""

# Each thread's segment of a job's chunks has a claim word, (job id << 32) | front
# << 16 | back, claimed from either end (take_chunk says which). A worker
# holding a stale view of the job can never claim a chunk of the next one: a stale
# word is exhausted (front == back), and a compare-exchange against one fails. The
# job's fields are written only after every chunk of the previous job has finished,
# so a successful claim always read the fields of its job. Claiming one's own
# segment first gives every thread the same part of every loop, run after run: the
# part its own core's cache holds from the kernel before (one shared counter handed
# chunks out in arrival order, so which core held which rows changed every run and
# a memory-bound kernel read half its data from the other core's cache).
_POOL_IR = """
declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_detach(i64)
declare i64 @syscall(i64, ...)
declare i32 @sched_yield()
declare i32 @getpid()
declare i32 @usleep(i32)
declare i32 @clock_gettime(i32, ptr)
@HINT_DECL@

@lathe_num_threads = global i32 0
@lathe_spin_in_runs = global i32 0
@lathe_spin_yields = global i32 1
@lathe_pool_sleeps = global i64 0

@runs = internal global i32 0  ; runs in progress (lathe_run_begin minus lathe_run_end)
@claims = internal global [@SEGMENTS@ x i64] zeroinitializer  ; per thread: job << 32 | front << 16 | back
@job_id = internal global i64 0
@finished = internal global i64 0
@job_fn = internal global ptr null
@job_ctx = internal global ptr null
@job_trip = internal global i64 0
@job_chunk = internal global i64 0
@job_chunks = internal global i64 0
@job_workers = internal global i32 0
@busy = internal global i32 0
@wake = internal global i32 0
@sleepers = internal global i32 0
@started = internal global i32 0
@alive = internal global i32 0
@stop = internal global i32 0
@owner_pid = internal global i32 0
@worker_ids = internal global [@MAX_WORKERS@ x i32] zeroinitializer  ; worker k's argument: &worker_ids[k]

; Claim and run one chunk of the current job; false when none is left for `who`
; (-1: the caller, always invited; k: worker k, invited when k < job_workers). A thread
; claims from its own segment first (the caller the first, worker k the (k+2)-th): from its
; front in an even segment, from its back in an odd one; then from the others' in turn, at
; the end nearest its own. Two threads thus take the loop from its two ends, and each
; runs one contiguous part of it wherever they meet.
define internal i1 @take_chunk(i32 %who) {
entry:
  %lim = load atomic i32, ptr @job_workers monotonic, align 4
  %invited = icmp slt i32 %who, %lim
  br i1 %invited, label %start, label %none
start:
  %lim64 = sext i32 %lim to i64
  %nseg = add i64 %lim64, 1
  %who64 = sext i32 %who to i64
  %home = add i64 %who64, 1
  br label %segments
segments:
  %k = phi i64 [ 0, %start ], [ %k1, %next ]
  %more = icmp ult i64 %k, %nseg
  br i1 %more, label %segment, label %none
segment:
  %s0 = add i64 %home, %k
  %wrap = icmp uge i64 %s0, %nseg
  %s1 = sub i64 %s0, %nseg
  %seg = select i1 %wrap, i64 %s1, i64 %s0
  %word = getelementptr inbounds [@SEGMENTS@ x i64], ptr @claims, i64 0, i64 %seg
  %own = icmp eq i64 %k, 0
  %odd = and i64 %seg, 1
  %even = icmp eq i64 %odd, 0
  %right = icmp ugt i64 %seg, %home
  %up = select i1 %own, i1 %even, i1 %right  ; which end: the owner's, or the one nearest the thief
  br label %retry
retry:
  %s = load atomic i64, ptr %word acquire, align 8
  %front16 = lshr i64 %s, 16
  %front = and i64 %front16, 65535
  %back = and i64 %s, 65535
  %left = icmp ult i64 %front, %back
  br i1 %left, label %claim_it, label %next
next:
  %k1 = add i64 %k, 1
  br label %segments
claim_it:
  %f = load atomic ptr, ptr @job_fn monotonic, align 8
  %cx = load atomic ptr, ptr @job_ctx monotonic, align 8
  %ch = load atomic i64, ptr @job_chunk monotonic, align 8
  %t = load atomic i64, ptr @job_trip monotonic, align 8
  %last = sub i64 %back, 1
  %c = select i1 %up, i64 %front, i64 %last
  %step = select i1 %up, i64 65536, i64 -1
  %s2 = add i64 %s, %step
  %r = cmpxchg ptr %word, i64 %s, i64 %s2 acq_rel acquire
  %ok = extractvalue { i64, i1 } %r, 1
  br i1 %ok, label %run, label %retry
run:
  %b = mul i64 %c, %ch
  %e0 = add i64 %b, %ch
  %fits = icmp slt i64 %e0, %t
  %e = select i1 %fits, i64 %e0, i64 %t
  call void %f(ptr %cx, i64 %b, i64 %e)
  %old = atomicrmw add ptr @finished, i64 1 release
  ret i1 true
none:
  ret i1 false
}

define internal i64 @clock_ns(i32 %clock) {
entry:
  %ts = alloca { i64, i64 }, align 8
  %rc = call i32 @clock_gettime(i32 %clock, ptr %ts)
  %sp = getelementptr inbounds { i64, i64 }, ptr %ts, i32 0, i32 0
  %np = getelementptr inbounds { i64, i64 }, ptr %ts, i32 0, i32 1
  %sec = load i64, ptr %sp, align 8
  %nsec = load i64, ptr %np, align 8
  %ns = mul i64 %sec, 1000000000
  %t = add i64 %ns, %nsec
  ret i64 %t
}

define internal ptr @worker_main(ptr %arg) {
entry:
  %idx = load i32, ptr %arg, align 4
  br label %loop
loop:
  %w = load atomic i32, ptr @wake seq_cst, align 4
  br label %work
work:
  %did = call i1 @take_chunk(i32 %idx)
  br i1 %did, label %work, label %idle
idle:
  %stopv = load atomic i32, ptr @stop acquire, align 4
  %stopping = icmp ne i32 %stopv, 0
  br i1 %stopping, label %exit, label %round_start
round_start:  ; the clocks at the start of a spin round: wall time, and this thread's CPU time
  %round = phi i32 [ 0, %idle ], [ %round1, %yield ]
  %t0 = call i64 @clock_ns(i32 1)  ; CLOCK_MONOTONIC
  %c0 = call i64 @clock_ns(i32 3)  ; CLOCK_THREAD_CPUTIME_ID
  br label %spin
spin:
  %i = phi i32 [ 0, %round_start ], [ %i1, %spin_more ]
  %w2 = load atomic i32, ptr @wake acquire, align 4
  %changed = icmp ne i32 %w2, %w
  br i1 %changed, label %loop, label %spin_next
spin_next:
  @HINT@
  %i1 = add i32 %i, 1
  %lap = and i32 %i1, @YIELD_MASK@
  %lapped = icmp eq i32 %lap, 0
  br i1 %lapped, label %spin_lap, label %spin_more
spin_lap:  ; a lap of spinning: let a thread that shares this CPU (the caller, on a busy machine) run
  %yon = load atomic i32, ptr @lathe_spin_yields monotonic, align 4
  %yes = icmp ne i32 %yon, 0
  br i1 %yes, label %spin_yield, label %spin_more
spin_yield:
  %sy = call i32 @sched_yield()
  br label %spin_more
spin_more:
  %more = icmp ult i32 %i1, @SPIN@
  br i1 %more, label %spin, label %round_done
round_done:  ; a round of spinning found no work: sleep, unless a run is active
  %active = load atomic i32, ptr @runs monotonic, align 4
  %policy = load atomic i32, ptr @lathe_spin_in_runs monotonic, align 4
  %running = icmp sgt i32 %active, 0
  %wanted = icmp ne i32 %policy, 0
  %round1 = add i32 %round, 1
  %young = icmp ult i32 %round1, @RUN_ROUNDS@
  %stay0 = and i1 %running, %wanted
  %stay = and i1 %stay0, %young
  br i1 %stay, label %yield, label %sleep
yield:  ; the round and a yield: if the thread waited for a CPU, another thread wants one
  %y = call i32 @sched_yield()
  %t1 = call i64 @clock_ns(i32 1)
  %c1 = call i64 @clock_ns(i32 3)
  %wall = sub i64 %t1, %t0
  %cpu = sub i64 %c1, %c0
  %waited = sub i64 %wall, %cpu
  %waited8 = mul i64 %waited, @WAIT_PARTS@
  %alone = icmp slt i64 %waited8, %wall
  br i1 %alone, label %round_start, label %sleep
sleep:
  %a = atomicrmw add ptr @sleepers, i32 1 seq_cst
  %w3 = load atomic i32, ptr @wake seq_cst, align 4
  %moved = icmp ne i32 %w3, %w
  br i1 %moved, label %awake, label %wait
wait:
  %slept = atomicrmw add ptr @lathe_pool_sleeps, i64 1 monotonic
  %fw = call i64 (i64, ...) @syscall(i64 @FUTEX@, ptr @wake, i32 128, i32 %w, ptr null)
  br label %awake
awake:
  %d = atomicrmw sub ptr @sleepers, i32 1 seq_cst
  br label %loop
exit:
  %x = atomicrmw sub ptr @alive, i32 1 seq_cst
  ret ptr null
}

; Start workers until `want` exist (again after a fork: the child has none).
define internal void @ensure_workers(i32 %want) {
entry:
  %pid = call i32 @getpid()
  %owner = load i32, ptr @owner_pid, align 4
  %same = icmp eq i32 %pid, %owner
  br i1 %same, label %check, label %forked
forked:
  store i32 %pid, ptr @owner_pid, align 4
  store atomic i32 0, ptr @started seq_cst, align 4
  store atomic i32 0, ptr @alive seq_cst, align 4
  store atomic i32 0, ptr @sleepers seq_cst, align 4
  br label %check
check:
  %capped = icmp slt i32 %want, @MAX_WORKERS@
  %goal = select i1 %capped, i32 %want, i32 @MAX_WORKERS@
  br label %more
more:
  %have = load i32, ptr @started, align 4
  %short = icmp slt i32 %have, %goal
  br i1 %short, label %spawn, label %done
spawn:
  %tid = alloca i64, align 8
  %h64 = sext i32 %have to i64
  %arg = getelementptr inbounds [@MAX_WORKERS@ x i32], ptr @worker_ids, i64 0, i64 %h64
  store i32 %have, ptr %arg, align 4
  %rc = call i32 @pthread_create(ptr %tid, ptr null, ptr @worker_main, ptr %arg)
  %ok = icmp eq i32 %rc, 0
  br i1 %ok, label %detach, label %done
detach:
  %t = load i64, ptr %tid, align 8
  %dr = call i32 @pthread_detach(i64 %t)
  %a = atomicrmw add ptr @alive, i32 1 seq_cst
  %h1 = add i32 %have, 1
  store i32 %h1, ptr @started, align 4
  br label %more
done:
  ret void
}

define void @lathe_parallel_for(ptr %f, ptr %cx, i64 %trip) {
entry:
  %nt = load atomic i32, ptr @lathe_num_threads monotonic, align 4
  %one = icmp sle i32 %nt, 1
  %small = icmp sle i64 %trip, 1
  %serial_only = or i1 %one, %small
  br i1 %serial_only, label %serial, label %lock
lock:
  %l = cmpxchg ptr @busy, i32 0, i32 1 acquire monotonic
  %got = extractvalue { i32, i1 } %l, 1
  br i1 %got, label %setup, label %serial
serial:
  call void %f(ptr %cx, i64 0, i64 %trip)
  ret void
setup:
  %workers = sub i32 %nt, 1
  call void @ensure_workers(i32 %workers)
  %nt64 = sext i32 %nt to i64
  %want = mul i64 %nt64, @CHUNKS@
  %few = icmp slt i64 %trip, %want
  %nc0 = select i1 %few, i64 %trip, i64 %want
  %t1 = add i64 %trip, %nc0
  %t2 = sub i64 %t1, 1
  %ch = sdiv i64 %t2, %nc0
  %t3 = add i64 %trip, %ch
  %t4 = sub i64 %t3, 1
  %nc = sdiv i64 %t4, %ch
  store atomic ptr %f, ptr @job_fn monotonic, align 8
  store atomic ptr %cx, ptr @job_ctx monotonic, align 8
  store atomic i64 %trip, ptr @job_trip monotonic, align 8
  store atomic i64 %ch, ptr @job_chunk monotonic, align 8
  store atomic i64 %nc, ptr @job_chunks monotonic, align 8
  store atomic i32 %workers, ptr @job_workers monotonic, align 4
  store atomic i64 0, ptr @finished monotonic, align 8
  %job = load i64, ptr @job_id, align 8
  %job1 = add i64 %job, 1
  store i64 %job1, ptr @job_id, align 8
  %tag = shl i64 %job1, 32
  br label %segment
segment:  ; thread g's segment: chunks [g * nc / nt, (g + 1) * nc / nt)
  %g = phi i64 [ 0, %setup ], [ %g1, %segment ]
  %lo0 = mul i64 %g, %nc
  %lo = udiv i64 %lo0, %nt64
  %g1 = add i64 %g, 1
  %hi0 = mul i64 %g1, %nc
  %hi = udiv i64 %hi0, %nt64
  %lo16 = shl i64 %lo, 16
  %tagged = or i64 %tag, %lo16
  %fresh = or i64 %tagged, %hi
  %slot = getelementptr inbounds [@SEGMENTS@ x i64], ptr @claims, i64 0, i64 %g
  store atomic i64 %fresh, ptr %slot release, align 8
  %all_set = icmp eq i64 %g1, %nt64
  br i1 %all_set, label %wake, label %segment
wake:
  %w = atomicrmw add ptr @wake, i32 1 seq_cst
  %sl = load atomic i32, ptr @sleepers seq_cst, align 4
  %any = icmp sgt i32 %sl, 0
  br i1 %any, label %wake_up, label %work
wake_up:
  %fw = call i64 (i64, ...) @syscall(i64 @FUTEX@, ptr @wake, i32 129, i32 2147483647)
  br label %work
work:
  %did = call i1 @take_chunk(i32 -1)
  br i1 %did, label %work, label %wait
wait:
  %i = phi i32 [ 0, %work ], [ %i1, %spin ], [ %i1, %give ]
  %fin = load atomic i64, ptr @finished acquire, align 8
  %all = icmp eq i64 %fin, %nc
  br i1 %all, label %exit, label %spin
spin:
  @HINT@
  %i1 = add i32 %i, 1
  %lap = and i32 %i1, @YIELD_MASK@
  %yield = icmp eq i32 %lap, 0
  br i1 %yield, label %give, label %wait
give:
  %y = call i32 @sched_yield()
  br label %wait
exit:
  store atomic i32 0, ptr @busy release, align 4
  ret void
}

define void @lathe_run_begin() {
entry:
  %r = atomicrmw add ptr @runs, i32 1 monotonic
  ret void
}

define void @lathe_run_end() {
entry:
  %r = atomicrmw sub ptr @runs, i32 1 monotonic
  ret void
}

define void @lathe_pool_shutdown() {
entry:
  store atomic i32 1, ptr @stop seq_cst, align 4
  %w = atomicrmw add ptr @wake, i32 1 seq_cst
  %fw = call i64 (i64, ...) @syscall(i64 @FUTEX@, ptr @wake, i32 129, i32 2147483647)
  br label %wait
wait:
  %k = phi i32 [ 0, %entry ], [ %k1, %nap ]
  %n = load atomic i32, ptr @alive seq_cst, align 4
  %gone = icmp sle i32 %n, 0
  %late = icmp sge i32 %k, 2000
  %end = or i1 %gone, %late
  br i1 %end, label %exit, label %nap
nap:
  %u = call i32 @usleep(i32 100)
  %k1 = add i32 %k, 1
  br label %wait
exit:
  ret void
}
"""


class ParallelRuntime:
    """The pool, JIT-compiled once per process; its symbols resolve for every kernel engine."""

    def __init__(self, target_machine):
        mod = llvm.parse_assembly(runtime_ir(llvm.get_process_triple()))
        mod.verify()
        self._engine = llvm.create_mcjit_compiler(mod, target_machine)
        self._engine.finalize_object()
        address = self._engine.get_function_address
        for name in ("lathe_parallel_for", "lathe_run_begin", "lathe_run_end", "lathe_pool_shutdown"):
            llvm.add_symbol(name, address(name))
        variable = self._engine.get_global_value_address
        self._threads = ctypes.c_int32.from_address(variable("lathe_num_threads"))
        self._spin_in_runs = ctypes.c_int32.from_address(variable("lathe_spin_in_runs"))
        self._spin_yields = ctypes.c_int32.from_address(variable("lathe_spin_yields"))
        self._sleeps = ctypes.c_int64.from_address(variable("lathe_pool_sleeps"))
        self.run_begin = ctypes.CFUNCTYPE(None)(address("lathe_run_begin"))
        self.run_end = ctypes.CFUNCTYPE(None)(address("lathe_run_end"))
        self._shutdown = ctypes.CFUNCTYPE(None)(address("lathe_pool_shutdown"))
        atexit.register(self._shutdown)  # workers must not outlive the code they run

    def set_num_threads(self, n: int) -> None:
        self._threads.value = n

    @property
    def spin_in_runs(self) -> bool:
        """Whether idle workers stay awake while a run is active, or sleep after one spin round
        as between runs (the default): the switch benchmarks/run_spin.py and contention.py
        compare the two with."""
        return bool(self._spin_in_runs.value)

    @spin_in_runs.setter
    def spin_in_runs(self, on: bool) -> None:
        self._spin_in_runs.value = int(on)

    @property
    def spin_yields(self) -> bool:
        """Whether spinning workers yield their CPU every YIELD_EVERY pauses (the default), the
        switch that compares the two in one process."""
        return bool(self._spin_yields.value)

    @spin_yields.setter
    def spin_yields(self, on: bool) -> None:
        self._spin_yields.value = int(on)

    @property
    def sleeps(self) -> int:
        """How many times a worker has gone to sleep on the futex in this process: each one
        costs the parallel loop that next needs it a wake-up."""
        return self._sleeps.value


@functools.cache
def parallel_runtime() -> ParallelRuntime:
    from lathe.backends.llvm.target import parse_target

    return ParallelRuntime(parse_target("llvm").machine(jit=True))
