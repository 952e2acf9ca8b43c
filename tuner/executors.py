"""Where candidates are measured: the local worker process, or the workers of a Dask cluster.

An executor takes a batch of jobs (measure.build_and_time's input) and yields each job's
Result as it completes, so the tuner records every trial the moment it exists. Both
executors measure each candidate through a `LocalRunner` (a fresh interpreter with the
per-candidate timeout), so a crash, a hang or a wrong result is classified the same way
wherever it runs. A Dask executor runs that runner inside the cluster's workers, one
candidate per worker thread at a time (start workers with `--nthreads 1`, or candidates
share a machine's cores and time each other); a worker that dies with a candidate in
flight, or a cluster that sends nothing back within the candidate's timeout plus the
worker's start-up, costs that candidate a trial of kind "died", never a hang of the tuner.

`LATHE_TUNER_FAULT=die@TEXT` makes the Dask worker that takes a matching candidate exit,
for tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from lathe.errors import LatheError
from lathe.tuner.measure import READY_TIMEOUT_S, LocalRunner, Result, fault_for

EXECUTOR_FORMS = "local, dask://HOST:PORT, or a distributed.Client"
DASK_HINT = "pip install 'lathe[dask]'"
POLL_S = 0.5  # how often a waiting Dask executor checks its deadlines


class LocalExecutor:
    """The default: candidates one after another in one local worker process (measuring
    two at once on one machine would make each the other's noise)."""

    slots = 1

    def __init__(self, timeout_s: float = 60.0):
        self.runner = LocalRunner(timeout_s)

    def measure(self, jobs: list[dict]) -> Iterator[tuple[int, Result]]:
        for i, job in enumerate(jobs):
            yield i, self.runner.measure(job)

    def close(self) -> None:
        self.runner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_WORKER_RUNNER: LocalRunner | None = None  # one per Dask worker process, reused across candidates


def measure_on_dask_worker(job: dict, timeout_s: float) -> Result:
    """Runs in a Dask worker: the candidate in that machine's own worker process, timed out there."""
    global _WORKER_RUNNER
    if fault_for(job["config"]) == "die":
        os._exit(70)
    if _WORKER_RUNNER is None or _WORKER_RUNNER.timeout_s != timeout_s:
        if _WORKER_RUNNER is not None:
            _WORKER_RUNNER.close()
        _WORKER_RUNNER = LocalRunner(timeout_s)
    return _WORKER_RUNNER.measure(job)


class DaskExecutor:
    """Candidates on a Dask cluster's workers, as many at once as the cluster has worker
    threads, each with a deadline of the candidate's timeout plus a worker's start-up."""

    def __init__(self, client, timeout_s: float = 60.0, owns_client: bool = False):
        self.client, self.timeout_s, self.owns_client = client, timeout_s, owns_client
        self.deadline_s = timeout_s + READY_TIMEOUT_S + 30.0

    @property
    def slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def measure(self, jobs: list[dict]) -> Iterator[tuple[int, Result]]:
        from distributed import wait

        pending = list(enumerate(jobs))
        in_flight: dict = {}  # future -> (index, submitted at)
        while pending or in_flight:
            while pending and len(in_flight) < self.slots:
                i, job = pending.pop(0)
                fut = self.client.submit(measure_on_dask_worker, job, self.timeout_s, pure=False, retries=0)
                in_flight[fut] = (i, time.monotonic())
            try:
                done = wait(list(in_flight), timeout=POLL_S, return_when="FIRST_COMPLETED").done
            except TimeoutError:  # nothing completed in this poll
                done = set()
            for fut in done:
                i, _ = in_flight.pop(fut)
                yield i, self._result(fut)
            now = time.monotonic()
            for fut, (i, t0) in list(in_flight.items()):
                if now - t0 > self.deadline_s:
                    del in_flight[fut]
                    fut.cancel()
                    yield i, Result("died", error=f"no result from the cluster within {self.deadline_s:g} s")

    @staticmethod
    def _result(fut) -> Result:
        from distributed import KilledWorker

        if fut.status == "finished":
            return fut.result()
        exc = fut.exception()
        if isinstance(exc, KilledWorker):
            return Result("died", error="the Dask worker measuring it died")
        if fut.status == "cancelled":
            return Result("died", error="cancelled by the cluster")
        return Result("error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])

    def close(self) -> None:
        if self.owns_client:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_executor(spec, timeout_s: float = 60.0):
    """`None` or "local": the local worker; "dask://HOST:PORT": a Dask scheduler's cluster;
    a `distributed.Client`: its cluster (left open: the caller owns it)."""
    if spec is None or spec == "local":
        return LocalExecutor(timeout_s)
    if isinstance(spec, str) and spec.startswith("dask://"):
        try:
            from distributed import Client
        except ImportError:
            raise LatheError("the Dask executor needs dask.distributed", note=DASK_HINT) from None
        address = "tcp://" + spec.removeprefix("dask://")
        try:
            client = Client(address, timeout=30)
        except (OSError, TimeoutError) as e:
            raise LatheError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        return DaskExecutor(client, timeout_s, owns_client=True)
    if not isinstance(spec, str):
        try:
            from distributed import Client
        except ImportError:
            Client = None
        if Client is not None and isinstance(spec, Client):
            return DaskExecutor(spec, timeout_s)
    raise LatheError(f"unknown executor {spec!r}", note=f"executors: {EXECUTOR_FORMS}")
