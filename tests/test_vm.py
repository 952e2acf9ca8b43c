"""The VM's instruction set (runtime/vm_program.py) and memory pool (runtime/vm_pool.py): the
code a program compiles to, where registers die, that pool memory is reused across regions
and runs, and that nothing handed out of a run (its results, a closure's captured values) is
ever overwritten by a later region or run. Results are checked against the interpreter."""

import numpy as np
import pytest

import lathe
from lathe.runtime.vm_pool import ALIGN, MemoryPool, size_class
from lathe.runtime.vm_program import (
    AllocStorage,
    AllocTensor,
    Goto,
    InvokeRegion,
    JumpIfNot,
    Kill,
    Move,
    Ret,
    SpecializeRegion,
    with_kills,
)
from lathe.textual_ir.parser import parse_relay

BRANCHY = """def @main(%x: Tensor[(?, 8), float32], %flag: bool) {
  %0 = nn.relu(%x);
  %1 = if (%flag) { tanh(%0) * 2f } else { sigmoid(%x) };
  (%1 + %0, exp(%1))
}"""


def test_a_program_compiles_to_alloc_invoke_jumps_and_kills():
    cm = lathe.compile(parse_relay(BRANCHY))
    code = cm.vm.program.functions["main"].code
    kinds = {type(ins) for ins in code}
    assert {SpecializeRegion, AllocStorage, AllocTensor, InvokeRegion, JumpIfNot, Goto, Move, Kill, Ret} <= kinds
    # every tensor a region writes comes from AllocTensor over AllocStorage, shaped at run time
    invokes = [ins for ins in code if isinstance(ins, InvokeRegion)]
    allocated = {ins.dst for ins in code if isinstance(ins, AllocTensor)}
    assert invokes and all(set(ins.outs) <= allocated for ins in invokes)
    # every region output is killed after its last read (its memory back to the pool), or returned
    killed = {r for ins in code if isinstance(ins, Kill) for r in ins.regs}
    returned = {r for ins in code if isinstance(ins, Ret) for r in ins.srcs}
    for ins in invokes:
        assert set(ins.dsts) <= killed | returned, str(cm.vm.program)
        assert set(ins.outs) <= killed  # the tensors written, once their registers are copied
    assert "InvokeRegion" in str(cm.vm.program)  # prints, one instruction a line


def test_registers_die_on_each_branch_where_they_are_last_read():
    """r0 is read only on the taken side: it dies there after its read, and on the other side
    where that side starts; the condition dies on both sides."""
    code = [
        JumpIfNot(1, 4),  # 0: if not r1 goto 4
        Move(2, 0),  # 1
        Goto(5),  # 2
        Move(2, 1),  # 3 (unreachable, kept for shape)
        Move(2, 3),  # 4
        Ret((2,)),  # 5
    ]
    out = with_kills(code)
    text = [str(ins) for ins in out]
    jump = out[0]
    assert isinstance(jump, JumpIfNot)
    landing = out[jump.target]
    assert isinstance(landing, Kill) and set(landing.regs) >= {0, 1}  # r0, the cond: dead on the else side
    fall = out[1]
    assert isinstance(fall, Kill) and 1 in fall.regs, text
    move = next(k for k, ins in enumerate(out) if isinstance(ins, Move) and ins.src == 0)
    assert isinstance(out[move + 1], Kill) and 0 in out[move + 1].regs, text
    assert [type(ins) for ins in out if not isinstance(ins, Kill)] == [type(ins) for ins in code]
    goto = next(i for i in out if isinstance(i, Goto))
    assert isinstance(out[goto.target], Ret), text  # jumps follow their targets past the inserted kills


@pytest.mark.parametrize("batch", [3, 17])
def test_the_vm_matches_the_interpreter_and_reuses_pool_memory_across_runs(batch, rng):
    m = parse_relay(BRANCHY)
    cm = lathe.compile(m)
    stats = cm.vm.pool.stats
    escaped_before = 0
    for k in range(4):
        x = rng.standard_normal((batch, 8)).astype(np.float32)
        flag = np.bool_(k % 2)
        fresh, escaped = stats.fresh, stats.escaped
        got = cm.run(x, flag)
        want = lathe.interpret(m, x=x, flag=flag)
        for g, e in zip(got, want, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
        if k >= 2:  # each branch seen once: only the blocks handed out with the results are new
            assert stats.fresh - fresh <= escaped_before, (k, str(stats))
        escaped_before = stats.escaped - escaped
    assert stats.reused > 0 and stats.reused_bytes > 0


def test_results_of_a_run_are_never_overwritten_by_a_later_run(rng):
    cm = lathe.compile(parse_relay(BRANCHY))
    x = rng.standard_normal((5, 8)).astype(np.float32)
    first = cm.run(x, np.bool_(True))
    kept = [a.copy() for a in first]
    for flag in (True, False, True):
        again = cm.run(rng.standard_normal((5, 8)).astype(np.float32), np.bool_(flag))
        assert not any(np.may_share_memory(a, b) for a in first for b in again)
    for a, b in zip(first, kept):
        np.testing.assert_array_equal(a, b)


def test_a_closure_keeps_what_it_captured_while_later_regions_run(rng):
    """The captured %y is a region's output; regions run after the closure is made (and in a
    loop of calls) must not be given its memory."""
    src = """def @main(%x: Tensor[(?, 4), float32]) {
      %y = nn.relu(%x) * 3f;
      let %f = fn (%t: Tensor[(?, 4), float32]) { %t + %y };
      %a = tanh(%x) - 1f;
      %b = %f(%a);
      %c = %f(exp(%b) * 0.5f);
      (%b, %c, %f(%x))
    }"""
    m = parse_relay(src)
    cm = lathe.compile(m)
    for batch in (2, 6, 2):
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        got, want = cm.run(x), lathe.interpret(m, x=x)
        for g, e in zip(got, want, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_size_classes_are_aligned_and_waste_at_most_a_quarter():
    for n in [0, 1, 63, 64, 65, 100, 1000, 4096, 4097, 10_000, 123_457, 1 << 20]:
        c = size_class(n)
        assert c >= n and c % ALIGN == 0 and (n <= ALIGN or c <= n * 1.25 + ALIGN), (n, c)
    pool = MemoryPool()
    a = pool.storage(1000)
    assert a.ctypes.data % ALIGN == 0 and a.nbytes >= 1000
    pool.hold(a)
    pool.drop(a)
    assert pool.storage(990) is a  # same class, given back: reused
    assert pool.stats.reused == 1 and pool.stats.fresh == 1


DYNAMIC_BATCH = """def @main(%x: Tensor[(?, 4), float32], %w: Tensor[(3, 4), float32]) {
  %0 = nn.dense(%x, %w);
  (nn.relu(%0), sum(%0, axis=[0]))
}"""


def test_lathe_run_takes_inputs_of_any_size_a_question_mark_admits(tmp_path, rng):
    from conftest import lathe_cli

    model = tmp_path / "m.lathe"
    model.write_text(DYNAMIC_BATCH)
    np.savez(tmp_path / "w.npz", w=rng.standard_normal((3, 4)).astype(np.float32))
    for batch in (1, 7, 40):
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        np.savez(tmp_path / "x.npz", x=x)
        r = lathe_cli("run", model, "--inputs", tmp_path / "x.npz", "--params", tmp_path / "w.npz", "--check")
        assert r.returncode == 0 and "OK" in r.stdout, r.stderr
        assert f"output_0: shape=({batch}, 3)" in r.stdout
    r = lathe_cli("run", model, "--inputs", tmp_path / "x.npz", "--params", tmp_path / "w.npz", "--bench", "3")
    assert r.returncode == 0 and "latency: median" in r.stdout and "specialised regions" in r.stdout, r.stderr
    np.savez(tmp_path / "bad.npz", x=np.ones((2, 5), np.float32))
    r = lathe_cli("run", model, "--inputs", tmp_path / "bad.npz", "--params", tmp_path / "w.npz")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "(2, 5)" in r.stderr and "Tensor[(?, 4), float32]" in r.stderr
    r = lathe_cli("run", model, "--params", tmp_path / "w.npz")  # a ? has no size to draw random values for
    assert r.returncode != 0 and "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert "%x" in r.stderr and "Tensor[(?, 4), float32]" in r.stderr
