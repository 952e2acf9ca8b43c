"""benchmarks/tune_ranking.py's two-session truth (--truth): repeatability and the agreed
pairs, on tiny synthetic record files of two small dense tasks (offline: nothing is timed)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

from lathe.api import parse_source
from lathe.tuner import records
from lathe.tuner.search import random_config
from lathe.tuner.tasks import extract_tasks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tune_ranking  # noqa: E402

CONFIGS = 6
SWAPPED = (2, 3)  # the one pair session B orders the other way


def _task(m: int, n: int, rng):
    src = f"def @main(%x: Tensor[({m}, 32), float32], %w: Tensor[({n}, 32), float32]) {{ nn.dense(%x, %w) }}"
    params = {"w": rng.standard_normal((n, 32)).astype(np.float32)}
    return next(t for t in extract_tasks(parse_source(src, "d.lathe"), "llvm", params) if t.template == "dense_pack")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two sessions (A, B) of the same 6 configurations of each of two dense tasks: B swaps one
    adjacent pair's times and misses nothing; every pair is 10% apart against 1% noise."""
    rng = np.random.default_rng(7)
    tmp = tmp_path_factory.mktemp("ranking")
    tasks = {}
    for m, n in ((8, 32), (16, 64)):
        task = _task(m, n, rng)
        rnd = random.Random(m)
        configs: list[str] = []
        while len(configs) < CONFIGS:
            c = str(random_config(task.template, task.space, rnd))
            if c not in configs:
                configs.append(c)
        tasks[task.key] = tune_ranking.TaskInfo(
            task.key, "test", task.name, task.template, task.lanes, task.module_text()
        )
        for name in ("A", "B"):
            times = [1.1**k for k in range(CONFIGS)]
            if name == "B":
                i, j = SWAPPED
                times[i], times[j] = times[j], times[i]
            for c, t in zip(configs, times):
                records.append(
                    tmp / f"{name}.jsonl",
                    records.Record(task.key, task.target, task.name, c, "ok", t * 1e-3, 0.01, 1e6, default_s=1e-3),
                )
        target = task.target
    tune_ranking.save_tasks(tmp / "tasks.json", tasks, target)
    return tmp


def test_save_tasks_round_trips(files):
    tasks = tune_ranking.load_tasks(files / "tasks.json")
    assert len(tasks) == 2 and all(t.template == "dense_pack" and "te.compute" in t.module for t in tasks.values())


def test_repeatability_and_agreed_pairs(files):
    tasks = tune_ranking.load_tasks(files / "tasks.json")
    a, b = str(files / "A.jsonl"), str(files / "B.jsonl")
    sessions = tune_ranking.load_sessions([a, b], tasks)
    truth = tune_ranking.truths(sessions, a, b)
    assert set(truth) == set(tasks)
    pairs = CONFIGS * (CONFIGS - 1) // 2
    for t in truth.values():
        assert t.configs == t.a.configs == t.b.configs and len(t.configs) == CONFIGS
        every, apart = t.repeatability()
        assert (every.right, every.total) == (pairs - 1, pairs)
        assert (apart.right, apart.total) == (pairs - 1, pairs)  # 10% apart, 1% noise: all apart
        # a model that orders as session A (or B) is right on every pair both order alike
        for values in (t.a.values, t.b.values):
            agreed, agreed_apart = tune_ranking.Pairs(), tune_ranking.Pairs()
            tune_ranking.score_truth([-v for v in values], t, agreed, agreed_apart)
            assert (agreed.accuracy, agreed.total, agreed_apart.total) == (1.0, pairs - 1, pairs - 1)
        backwards = tune_ranking.Pairs()
        tune_ranking.score_truth(list(t.a.values), t, backwards, tune_ranking.Pairs())
        assert backwards.accuracy == 0.0
    # a configuration missing from one session is left out of the truth
    one = next(iter(truth.values()))
    b_short = tune_ranking._restrict(one.b, one.configs[1:])
    short = tune_ranking.truths([one.a, b_short], one.a.name, b_short.name)
    assert short[one.a.key].configs == one.configs[1:]


def test_leave_one_task_out_with_truth(files, capsys, monkeypatch):
    a, b = str(files / "A.jsonl"), str(files / "B.jsonl")
    argv = ["tune_ranking.py", "--offline", a, b, "--truth", f"{a},{b}", "--tasks", str(files / "tasks.json")]
    argv += ["--min-configs", "4", "--cache", str(files / "cache.json")]
    monkeypatch.setattr(sys, "argv", argv)
    assert tune_ranking.main() == 0
    out = capsys.readouterr().out
    assert "repeatability" in out and out.count(f"{CONFIGS:7d} {14 / 15:6.3f} ({15:7d}) {14 / 15:6.3f} ({15:6d})") == 2
    # each held-out task's row scores its 14 agreed pairs (both sessions' 15 pairs each as "all")
    rows = [line for line in out.splitlines() if line.split()[:1] == ["test"] and line.split()[2] == "dense_pack"]
    assert len(rows) == 2 and all("(    30)" in r and "(    14)" in r for r in rows), out
    # --truth's files must be among the evaluated ones
    monkeypatch.setattr(sys, "argv", [*argv[:3], "--truth", f"{a},{b}"])
    with pytest.raises(SystemExit):
        tune_ranking.main()
