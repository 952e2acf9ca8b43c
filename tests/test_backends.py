"""The backend registry and the tools' dispatch through it (issue 10)."""

import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest

import lathe
from lathe.backends import registry
from lathe.backends.interface import split_target_string
from lathe.errors import LatheError

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "mlp.lathe"


def lathe_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "lathe.tools.lathe_cli", *map(str, args)], capture_output=True, text=True
    )


def test_lathe_backends_lists_llvm_and_c():
    r = lathe_cli("backends")
    assert r.returncode == 0, r.stderr
    names = {line.split()[0] for line in r.stdout.splitlines()[1:] if line and not line.startswith(" ")}
    assert {"llvm", "c"} <= names


@pytest.mark.parametrize(
    "spec,message",
    [
        ("bogus", "unknown target 'bogus'"),
        ("llvm -mcpu", "needs a value"),
        ("llvm mcpu=x", "is not -key=value"),
        ("llvm -mcpu=a -mcpu=b", "given twice"),
        ("c -bogus=1", "unknown option '-bogus'"),
        ("", "empty target string"),
    ],
)
def test_bad_target_strings_are_lathe_errors(spec, message):
    with pytest.raises(LatheError, match=message):
        registry.resolve_target(spec)


def test_an_unknown_target_names_what_is_installed():
    with pytest.raises(LatheError) as e:
        registry.resolve_target("npu")
    assert "llvm" in e.value.note and "c" in e.value.note


def test_a_backend_that_fails_to_load_is_reported_not_fatal(monkeypatch):
    broken = EntryPoint(name="broken", value="lathe_no_such_module:Backend", group=registry.ENTRY_POINT_GROUP)
    real = registry.entry_points

    def with_broken(group):
        return [*real(group=group), broken]

    monkeypatch.setattr(registry, "entry_points", with_broken)
    registry._discovered.cache_clear()
    try:
        row = next(b for b in registry.installed() if b.name == "broken")
        assert row.error and "ModuleNotFoundError" in row.error
        with pytest.raises(LatheError, match="failed to load"):
            registry.get_backend("broken")
        assert registry.resolve_target("llvm")[1].kind == "llvm"  # the others keep working
    finally:
        registry._discovered.cache_clear()


def test_target_strings_round_trip():
    _, t = registry.resolve_target("llvm  -mcpu=znver4   -opt-level=2")
    assert str(t) == "llvm -mcpu=znver4 -opt-level=2"
    assert split_target_string(str(t)) == ("llvm", {"-mcpu": "znver4", "-opt-level": "2"})


def test_the_target_reaches_the_schedules():
    """A narrower vector target packs and vectorizes by its own width, not AVX-512's."""
    src = "def @main(%x: Tensor[(8, 64), float32], %w: Tensor[(64, 64), float32]) { nn.dense(%x, %w) }"
    m = lathe.api.parse_source(src, "dense.lathe")
    rng = np.random.default_rng()
    w, x = rng.standard_normal((64, 64)).astype(np.float32), rng.standard_normal((8, 64)).astype(np.float32)
    cm = lathe.compile(m, target="llvm -mattr=+avx2,+fma,-avx512f", params={"w": w})
    assert cm.target.vector_lanes == 8
    assert "<8 x float>" in cm.optimized_ir and "<16 x float>" not in cm.optimized_ir
    np.testing.assert_allclose(cm.run(x), x.astype(np.float64) @ w.T, rtol=1e-4, atol=1e-4)


def test_compile_to_a_directory_writes_the_backends_artifact(tmp_path):
    out = tmp_path / "mlp.d"
    r = lathe_cli("compile", MLP, "--target", "c", "-o", out)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.iterdir()} == {"kernels.c", "kernels.h", "kernels.so"}
    assert "#include <math.h>" in (out / "kernels.c").read_text()
    r = lathe_cli("compile", MLP, "--target", "llvm -mtriple=aarch64-linux-gnu", "-o", tmp_path / "arm.d")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "arm.d" / "kernels.o").read_bytes()[:4] == b"\x7fELF"


def test_run_on_the_c_target_checks_against_the_interpreter():
    r = lathe_cli("run", MLP, "--params", ROOT / "examples" / "mlp.params.npz", "--target", "c", "--check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK" in r.stdout
