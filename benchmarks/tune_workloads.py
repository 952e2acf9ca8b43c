"""The tuner benchmarks' workloads (issue 11's three tasks) and their measuring loop.

    matmul  nn.dense N×N·N×N                   full: 1024³         small: 256³
    ffn     BERT FFN dense 128×768·768×3072     full: as written    small: 64×256·256×512
    conv    ResNet 3×3 conv, 64→64 channels     full: 56×56         small: 14×14

Each is tuned as the heaviest task of a one-op model with a bound weight (the layout the
compiler gives it: a packed dense, an NHWC conv).
"""

from __future__ import annotations

import os

import numpy as np

SHAPES = {
    "full": {"matmul": (1024, 1024, 1024), "ffn": (128, 768, 3072), "conv": 56},
    "small": {"matmul": (256, 256, 256), "ffn": (64, 256, 512), "conv": 14},
}
NAMES = ("matmul", "ffn", "conv")


def model(name: str, scale: str):
    """(relay source, params) of the workload at `scale`."""
    rng = np.random.default_rng(0)
    if name == "conv":
        hw = SHAPES[scale]["conv"]
        src = (
            f"def @main(%x: Tensor[(1, 64, {hw}, {hw}), float32], %w: Tensor[(64, 64, 3, 3), float32]) "
            "{ nn.conv2d(%x, %w, padding=[1, 1, 1, 1]) }"
        )
        return src, {"w": rng.standard_normal((64, 64, 3, 3)).astype(np.float32)}
    m, k, n = SHAPES[scale][name]
    src = f"def @main(%x: Tensor[({m}, {k}), float32], %w: Tensor[({n}, {k}), float32]) {{ nn.dense(%x, %w) }}"
    return src, {"w": rng.standard_normal((n, k)).astype(np.float32)}


def heaviest_task(name: str, scale: str, target: str = "llvm"):
    from lathe.textual_ir.parser import parse_relay
    from lathe.tuner.tasks import extract_tasks

    src, params = model(name, scale)
    return extract_tasks(parse_relay(src, f"{name}.lathe"), target, params)[0]


class CachedExecutor:
    """Measures each configuration once and replays its result after: searches compared on
    one table of measurements see the same numbers for the same candidate (no noise between
    them), and a configuration both find costs one measurement."""

    def __init__(self, inner):
        self.inner, self.slots = inner, inner.slots
        self.cache: dict[tuple[str, str], object] = {}
        self.measured = 0

    def measure(self, jobs: list[dict]):
        todo = [i for i, j in enumerate(jobs) if (j["module"], j["config"]) not in self.cache]
        for k, res in self.inner.measure([jobs[i] for i in todo]):
            job = jobs[todo[k]]
            self.cache[(job["module"], job["config"])] = res
            self.measured += 1
        for i, job in enumerate(jobs):
            yield i, self.cache[(job["module"], job["config"])]


def run_search(task, db: str | os.PathLike, trials: int, search: str, seed: int, executor, timing=None):
    """`trials` measurements of one task by `search`, in rounds of 8, appended to `db`; the
    task's tuner (its records in this run, its best)."""
    from lathe.tuner import records
    from lathe.tuner.measure import Timing
    from lathe.tuner.tune import TaskTuner

    known, _ = records.load(db)
    tuner = TaskTuner(task, db, known, search, seed, timing=timing or Timing())  # its own pool: no transfer
    while tuner.done < trials and not tuner.finished:
        configs = tuner.propose(min(8, trials - tuner.done))
        for j, res in executor.measure([tuner.job(c, (id(tuner), tuner.rounds)) for c in configs]):
            tuner.record(configs[j], res)
        tuner.end_round()
    return tuner
