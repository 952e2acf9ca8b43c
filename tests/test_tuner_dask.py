"""The tuner's Dask executor on a LocalCluster of 2 worker processes: candidates are measured
in the workers, a worker that dies costs its candidate a trial of kind "died" (never a
hang), and `lathe tune --executor dask://HOST:PORT` reaches a scheduler by address. Tiny
shapes and few trials; nothing asserts a timing."""

import os

import numpy as np
import pytest

import lathe
from lathe.api import parse_source
from lathe.tuner import executors, records
from lathe.tuner.measure import FAULT_ENV, Timing
from lathe.tuner.tasks import extract_tasks

distributed = pytest.importorskip("distributed")

DENSE = """def @main(%x: Tensor[(16, 64), float32], %w: Tensor[(48, 64), float32]) {
  nn.dense(%x, %w)
}"""
QUICK = Timing(warmup_s=0.0, repeat=3, min_repeat_s=0.001, round_warmup_s=0.05)
# partial configurations: the searches spell every knob out, so they never contain these texts
DIES, CRASHES, WRONG = "dense_pack:unroll_k=2", "dense_pack:unroll_k=4", "dense_pack:unroll_k=8"


@pytest.fixture(scope="module")
def client():
    import dask

    saved = os.environ.get(FAULT_ENV)
    os.environ[FAULT_ENV] = f"die@{DIES};crash@{CRASHES};wrong@{WRONG}"  # the workers inherit it
    try:
        # a candidate whose worker died is not retried on another (it would kill that one too)
        with (
            dask.config.set({"distributed.scheduler.allowed-failures": 0}),
            distributed.LocalCluster(
                n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as c,
        ):
            yield c
    finally:
        if saved is None:
            os.environ.pop(FAULT_ENV, None)
        else:
            os.environ[FAULT_ENV] = saved


@pytest.fixture
def dense():
    rng = np.random.default_rng(0)
    return parse_source(DENSE, "dense.lathe"), {"w": rng.standard_normal((48, 64)).astype(np.float32)}


def test_dask_workers_measure_and_faults_are_classified(client, dense):
    task = next(t for t in extract_tasks(dense[0], "llvm", dense[1]) if t.template == "dense_pack")
    inputs = task.random_inputs()
    reference = task.reference(inputs)

    def job(config):
        return dict(
            module=task.module_text(),
            config=config,
            lanes=task.lanes,
            target=task.target,
            inputs=inputs,
            reference=reference,
            timing=QUICK,
        )

    configs = [DIES, CRASHES, WRONG, "dense_pack:tile_i=4", "dense_pack:tile_i=2"]
    ex = executors.make_executor(client, timeout_s=30)
    assert ex.slots == 2
    got = {configs[i]: res for i, res in ex.measure([job(c) for c in configs])}
    assert sorted(got) == sorted(configs)
    assert got[DIES].status == "died"
    assert got[CRASHES].status == "crash" and "exit code" in got[CRASHES].error
    assert got[WRONG].status == "wrong"
    assert got["dense_pack:tile_i=4"].ok and got["dense_pack:tile_i=2"].ok
    assert got["dense_pack:tile_i=4"].features
    # measured in the workers' own runners, not in this process
    assert executors._WORKER_RUNNER is None
    assert any(
        client.run(lambda: __import__("lathe.tuner.executors").tuner.executors._WORKER_RUNNER is not None).values()
    )
    client.wait_for_workers(2, timeout=60)  # the Nanny restarts the worker that died


def test_tune_on_a_client_then_compile_with_the_records(client, dense, tmp_path):
    module, params = dense
    db = tmp_path / "t.jsonl"
    results = lathe.tune(
        module, params=params, trials=6, db=db, search="random", timing=QUICK, executor=client, check=None
    )
    assert sum(r.trials for r in results) == 6
    # the best is chosen by its ratio to the default timed beside it, the default's being 1
    assert all(r.best is not None and r.best.speedup >= r.default.speedup == 1.0 for r in results)
    recs, notes = records.load(db)
    assert len(recs) == 6 and not notes
    assert all(r.features and r.features_v for r in recs if r.status == "ok")
    x = np.random.default_rng(1).standard_normal((16, 64)).astype(np.float32)
    cm = lathe.compile(module, params=params, tuning_db=db)
    np.testing.assert_allclose(cm.run(x=x), x @ params["w"].T, rtol=1e-4, atol=1e-4)


def test_cli_executor_by_address(client, dense, tmp_path):
    from lathe.tools.lathe_cli import main

    module, params = dense
    src = tmp_path / "d.lathe"
    src.write_text(DENSE)
    np.savez(tmp_path / "d.npz", **params)
    db = tmp_path / "d.jsonl"
    address = client.scheduler.address.removeprefix("tcp://")
    argv = ["tune", str(src), "--params", str(tmp_path / "d.npz"), "--trials", "3", "--db", str(db)]
    assert main([*argv, "--search", "random", "--executor", f"dask://{address}"]) == 0
    assert len([r for r in records.load(db)[0] if r.status not in records.CHECK_STATUSES]) == 3  # the trials
