"""Measurement fidelity (issue 11): the default timed beside every candidate, ranking by that
ratio, rotating buffers only past the cache the model evicts from, and the model check that
keeps only the records that beat the default in the compiled model. Nothing here asserts a
timing: the slow configuration below is slow by construction (threads woken for a 16-row
dense), and the worker is made to report it 100x faster than it ran."""

import json

import numpy as np

import lathe
from lathe.tuner import measure, records
from lathe.tuner.check import ModelCheck
from lathe.tuner.measure import LocalRunner, Timing, evicted_from
from lathe.tuner.tasks import extract_tasks
from lathe.tuner.tune import TaskTuner, best_configs, format_table

QUICK = Timing(warmup_s=0.0, repeat=3, min_repeat_s=0.001, round_warmup_s=0.05)
CHECK = ModelCheck(blocks=3, repeat=5, warmup_s=0.1, block_warmup_s=0.02)
# threads woken for 16 rows, k split into blocks: many times the default's time in any state of the machine
SLOW = "dense_pack:tile_i=8,tile_j=16,cache_i=4,cache_j=2,tile_k=32,order=ij,unroll_k=4,parallel=fused,block_k=0"


def test_rotation_evicts_from_the_cache_the_model_evicts_from():
    mib = 1 << 20
    caches = (48 << 10, 2 * mib, 300 * mib)
    assert evicted_from(caches, 1 * mib) is None  # the activations fit L2: in place
    assert evicted_from(caches, 100 * mib) == 2 * mib  # they fit the L3: from the L3
    assert evicted_from(caches, 400 * mib) == 300 * mib  # beyond it: from memory
    assert evicted_from(caches, None) == 300 * mib  # the model unknown: from memory, as before
    assert evicted_from((), 1 * mib) == measure.FALLBACK_LLC_BYTES
    # the sets then exceed the chosen cache, as they exceed the LLC
    sets = measure.rotation_sets(768 << 10, (768 << 10) / 12, evicted_from(caches, 100 * mib))
    assert 2 * 2 * mib <= sets * (768 << 10) < 300 * mib


def test_best_ranks_by_the_ratio_to_the_default_beside_it_and_reads_format_1(tmp_path):
    def rec(config, seconds, default_s):
        return records.Record("w", "llvm", "k", config, "ok", seconds, 0.0, 1e6, rotate=1, default_s=default_s)

    # "a" ran in a quiet round, "b" in a loaded one: fewer seconds, but the smaller gain over the default
    recs = [rec("default", 2e-6, 2e-6), rec("a", 1e-6, 1.2e-6), rec("b", 3e-6, 6e-6)]
    assert records.best(recs, "w").config == "b" and records.best(recs, "w").speedup == 2.0
    db = tmp_path / "t.jsonl"
    with open(db, "w") as f:  # a format-1 line: no default_s
        f.write(json.dumps(dict(v=1, workload="w", target="llvm", task="k", config="old", status="ok", seconds=1e-9)))
        f.write("\n")
    records.append(db, recs[2])
    got, notes = records.load(db)
    assert not notes and [r.config for r in got] == ["old", "b"] and got[0].default_s is None
    assert records.best(got, "w").config == "b"  # the paired record, not the format-1 one's seconds
    assert records.best(got[:1], "w").config == "old"


def test_worker_times_the_default_beside_each_candidate_in_place_in_a_small_model(dense):
    (task,) = extract_tasks(*dense[:1], "llvm", dense[1])
    tuner = TaskTuner(task, "unused.jsonl", [], "random", timing=QUICK)
    other = SLOW.replace("parallel=fused", "parallel=outer")
    with LocalRunner(timeout_s=60) as runner:
        default = runner.measure(tuner.job(tuner.default, "round 1"))
        candidate = runner.measure(tuner.job(other, "round 1"))
    assert default.ok and default.default_s == default.seconds  # the default is its own reference
    assert candidate.ok and candidate.default_s and candidate.default_s != candidate.seconds
    assert task.activations < 1 << 20 and candidate.rotate == 1  # the model's activations fit L2: in place


def test_model_check_drops_a_record_that_looks_fast_in_the_worker_only(dense, tmp_path, monkeypatch, capsys):
    module, params = dense
    (task,) = extract_tasks(module, "llvm", params)
    db = tmp_path / "t.jsonl"
    monkeypatch.setenv(measure.FAULT_ENV, "fast@" + SLOW.split(":")[1])
    tuner = TaskTuner(task, db, [], "random", timing=QUICK)
    with LocalRunner(timeout_s=60) as runner:
        for config in (tuner.default, SLOW):
            tuner.record(config, runner.measure(tuner.job(config, "round 1")))
    recs, _ = records.load(db)
    assert records.best(recs, task.key).config == SLOW  # the worker's (forged) timing makes it the best
    # no trials: the run only checks the database's best records in the model
    (result,) = lathe.tune(module, params=params, trials=0, db=db, timing=QUICK, check=CHECK)
    assert result.best.config == SLOW and result.check is not None
    assert result.check.status == "default_wins" and result.check.seconds > result.check.default_s
    assert result.verdict.startswith("default wins") and "default wins" in format_table([result])
    capsys.readouterr()
    x = np.random.default_rng(1).standard_normal((16, 64)).astype(np.float32)
    cm = lathe.compile(module, params=params, tuning_db=db)
    err = capsys.readouterr().err
    assert "ran faster in the model" in err and task.name in err
    np.testing.assert_allclose(cm.run(x=x), lathe.interpret(module, x=x, **params), rtol=1e-5, atol=1e-5)
    # the check's verdict is what compiling reads: no configuration for the kernel
    from lathe.dialects import make_context
    from lathe.passes.fold_constant import bind_params
    from lathe.pipelines import GRAPH_PIPELINES, build_pipeline

    te_level = bind_params(module.clone(), params, "main")
    build_pipeline(GRAPH_PIPELINES[3] + ",lower-graph-to-te").apply(make_context(), te_level)
    chosen, _ = best_configs(te_level, db, task.target)
    assert chosen == {}
    # a record an earlier check kept (an earlier best) is applied where the best's default won
    other = SLOW.replace("parallel=fused", "parallel=outer")
    trial = records.Record(task.key, task.target, task.name, other, "ok", 1e-6, 0.0, 1.0, rotate=1, default_s=1.1e-6)
    records.append(db, trial)
    records.append(
        db, records.Record(task.key, task.target, task.name, other, "kept", 1e-6, None, 0.0, default_s=1.2e-6)
    )
    assert records.best(records.load(db)[0], task.key).config == SLOW
    assert best_configs(te_level, db, task.target)[0] == {n: other for n in task.kernels}
    # a record that wins in the model is applied: a check of it kept says so
    records.append(db, records.Record(task.key, task.target, task.name, SLOW, "kept", 1e-6, None, 0.0, default_s=2e-6))
    assert best_configs(te_level, db, task.target)[0] == {n: SLOW for n in task.kernels}


def test_model_check_tries_the_runner_up_where_the_best_lost(dense, tmp_path):
    module, params = dense
    (task,) = extract_tasks(module, "llvm", params)
    default = TaskTuner(task, "unused.jsonl", [], "random").default
    runner_up = SLOW.replace("parallel=fused", "parallel=outer")
    db = tmp_path / "t.jsonl"

    def trial(config, speedup):  # the worker's word for each: SLOW the best, runner_up second
        return records.Record(
            task.key, task.target, task.name, config, "ok", 1e-6, 0.0, 1.0, rotate=1, default_s=speedup * 1e-6
        )

    for config, speedup in ((default, 1.0), (SLOW, 100.0), (runner_up, 1.5)):
        records.append(db, trial(config, speedup))
    (result,) = lathe.tune(module, params=params, trials=0, db=db, timing=QUICK, check=CHECK)
    recs, _ = records.load(db)
    assert records.verdict(recs, task.key, SLOW).status == "default_wins"  # slow by construction
    second = records.verdict(recs, task.key, runner_up)
    assert second is not None  # checked in the second round, whatever the model said of it
    assert records.verdict(recs, task.key, default) is None  # the default is never checked against itself
    kept = second.status == "kept"
    assert result.verdict.startswith("runner-up kept" if kept else "default wins")
    applied, _ = records.applied(recs, task.key)
    assert (applied.config if applied else None) == (runner_up if kept else None)
    # again: the best is checked again and loses; a runner-up the model dropped is not tried twice
    lathe.tune(module, params=params, trials=0, db=db, timing=QUICK, check=CHECK)
    again = [r for r in records.load(db)[0] if r.status in records.CHECK_STATUSES]
    assert sum(r.config == runner_up for r in again) == 1 + kept


def test_table_tells_a_task_the_budget_never_reached_from_one_whose_trials_all_failed(dense):
    from lathe.tuner.tune import TaskResult

    module, params = dense
    (task,) = extract_tasks(module, "llvm", params)
    untried = TaskResult(task, trials=0, failures={}, best=None, default=None)
    failed = TaskResult(task, trials=3, failures={"timeout": 3}, best=None, default=None)
    rows = format_table([untried, failed]).splitlines()[1:]
    assert rows[0].endswith("(no trials: the budget ran out first)")
    assert rows[1].endswith("(none worked)") and "3 timeout" in rows[1]
