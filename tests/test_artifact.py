"""Deployable artifacts (`lathe compile -o DIR`, docs/deployment.md): they give what
`lathe.compile(...).run` and the interpreter give on fresh random inputs, load and run with
numpy and the standard library alone (in a subprocess, and in a fresh virtual environment
with only numpy), build and run from C, and turn every broken or foreign artifact and every
wrong input into a LatheError, never a crash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lathe
import lathe.runtime
from lathe.api import parse_source
from lathe.errors import LatheError
from lathe.runtime import artifact

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp.lathe"
MLP_PARAMS = ROOT / "examples" / "mlp.params.npz"
from conftest import TUPLES, assert_matches, lathe_cli  # noqa: E402


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mlp") / "mlp.lathe.d"
    r = lathe_cli("compile", MLP, "--params", MLP_PARAMS, "-o", out)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def tuples_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tuples")
    (d / "t.lathe").write_text(TUPLES)
    r = lathe_cli("compile", d / "t.lathe", "-o", d / "t.d")
    assert r.returncode == 0, r.stderr
    return d / "t.d"


@pytest.fixture
def broken(tmp_path, mlp_dir):
    """A copy of the MLP's artifact to break."""
    return Path(shutil.copytree(mlp_dir, tmp_path / "copy.d"))


def edit_metadata(d: Path, change) -> None:
    meta = json.loads((d / "metadata.json").read_text())
    change(meta)
    (d / "metadata.json").write_text(json.dumps(meta))


# -- same results ---------------------------------------------------------------------------


def test_mlp_artifact_gives_what_compile_and_the_interpreter_give(mlp_dir, rng):
    files = {p.name for p in mlp_dir.iterdir()}
    assert {"model.so", "weights.bin", "metadata.json", "lathe_model.h", "example.c", "load.py"} <= files
    module, params = lathe.load(MLP), lathe.load_params(MLP_PARAMS)
    cm = lathe.compile(module, params=params)
    model = lathe.runtime.load(mlp_dir)
    assert model.input_names == ["x"]
    for _ in range(3):  # fresh inputs each run; outputs of one run are not overwritten by the next
        x = rng.standard_normal((1, 784)).astype(np.float32)
        first = model.run(x)
        again = model.run(x=x * 2)
        assert_matches(first, cm.run(x))
        assert_matches(first, lathe.interpret(module, params=params, x=x), rtol=1e-4)
        assert_matches(again, cm.run(x * 2))


def test_nested_results_come_back_as_compile_gives_them(tuples_dir, rng):
    module = parse_source(TUPLES, "t.lathe")
    cm = lathe.compile(module)
    model = lathe.runtime.load(tuples_dir, num_threads=1)
    x, y = (rng.standard_normal((4, 8)).astype(np.float32) for _ in range(2))
    got = model.run(x, y)
    assert_matches(got, cm.run(x, y))
    assert_matches(got, lathe.interpret(module, x=x, y=y))
    assert got[2] is not x and not np.shares_memory(got[3], got[0][1])  # copies, as run() makes them
    # out=: into the caller's arrays, aligned or not, nested as the results
    out = ((np.empty((4, 8), np.float32), np.empty((4, 8), np.float32)),) + tuple(
        np.empty(a.shape, a.dtype) for a in got[1:]
    )
    unaligned = np.empty(4 * 8 + 1, np.float32)[1:].reshape(4, 8)
    out = (out[0], unaligned, *out[2:])
    back = model.run(x=x, y=y, out=out)
    assert back[1] is unaligned
    assert_matches(back, cm.run(x, y))


def test_inputs_in_any_layout_or_a_castable_dtype(tuples_dir, rng):
    model = lathe.runtime.load(tuples_dir)
    module = parse_source(TUPLES, "t.lathe")
    x = rng.standard_normal((8, 4))  # float64, transposed: cast and copied
    y = np.empty(4 * 8 + 1, np.float32)[1:].reshape(4, 8)  # unaligned: the library copies it
    y[...] = rng.standard_normal((4, 8))
    assert_matches(model.run(x.T, y), lathe.interpret(module, x=x.T.astype(np.float32), y=y))


# -- the loader needs numpy and the standard library only ------------------------------------


def test_loading_and_running_imports_no_compiler(mlp_dir):
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import lathe.runtime
        m = lathe.runtime.load({str(mlp_dir)!r})
        y = m.run(np.ones((1, 784), np.float32))
        assert y.shape == (1, 10), y.shape
        loaded = sorted(k for k in sys.modules if k.split(".")[0] in ("xdsl", "lark", "llvmlite", "onnx"))
        print("compiler modules:", loaded)
        assert not loaded
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "compiler modules: []" in r.stdout


def _venv_with_numpy(where: Path) -> Path | None:
    """A fresh virtual environment with numpy alone, or None where one cannot be made here."""
    python = shutil.which("python3")
    if python is None:
        return None
    try:
        r = subprocess.run([python, "-m", "venv", str(where)], capture_output=True, timeout=300, check=False)
        if r.returncode != 0:
            return None
        r = subprocess.run(
            [str(where / "bin" / "pip"), "install", "-q", "numpy"], capture_output=True, timeout=600, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return where / "bin" / "python" if r.returncode == 0 else None


def test_artifact_runs_in_a_fresh_venv_with_only_numpy(mlp_dir, tmp_path, rng):
    python = _venv_with_numpy(tmp_path / "venv")
    if python is None:
        pytest.skip("no virtual environment with numpy can be made here (offline, or no venv module)")
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True)
    assert {line.split("==")[0].lower() for line in listed.stdout.split()} <= {"numpy", "pip", "setuptools"}
    deployed = Path(shutil.copytree(mlp_dir, tmp_path / "elsewhere" / "mlp.lathe.d"))
    x = rng.standard_normal((1, 784)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import load
        m = load.load(".")
        np.save({str(tmp_path / "y.npy")!r}, m.run(np.load({str(tmp_path / "x.npy")!r})))
        assert "lathe" not in sys.modules
        try:
            m.run(np.ones((2, 784), np.float32))
        except load.LatheError as e:
            print("error:", e)
        """
    )
    r = subprocess.run([str(python), "-c", code], cwd=deployed, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error: input 'x' has shape (2, 784)" in r.stdout
    cm = lathe.compile(lathe.load(MLP), params=lathe.load_params(MLP_PARAMS))
    assert_matches(np.load(tmp_path / "y.npy"), cm.run(x))


def test_the_c_example_builds_and_runs(mlp_dir, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    d = Path(shutil.copytree(mlp_dir, tmp_path / "c.d"))
    build = json.loads((d / "metadata.json").read_text())["example"]["build"]
    r = subprocess.run(build, shell=True, cwd=d, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["./example", "weights.bin"], cwd=d, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("output: shape (1, 10) float32 sum "), r.stdout
    total = float(r.stdout.split(" sum ")[1].split()[0])
    k = np.arange(784)
    x = (((k * 7) % 13 - 6) / 8.0).astype(np.float32).reshape(1, 784)  # example.c's inputs
    y = lathe.runtime.load(d).run(x)
    assert total == pytest.approx(float(y.astype(np.float64).sum()), rel=1e-5, abs=1e-5)
    r = subprocess.run(["./example", "no-such-weights.bin"], cwd=d, capture_output=True, text=True, check=False)
    assert r.returncode == 1 and "cannot open the weights file no-such-weights.bin" in r.stderr


# -- bad artifacts and bad inputs --------------------------------------------------------------


def test_truncated_library_is_an_error(broken):
    data = (broken / "model.so").read_bytes()
    (broken / "model.so").write_bytes(data[: len(data) // 2])
    with pytest.raises(LatheError, match="library .* has .* bytes, but .* were written"):
        lathe.runtime.load(broken)
    # and a truncated library that the metadata was edited to match: the loader refuses it too
    edit_metadata(broken, lambda m: m["library"].update(bytes=len(data) // 2))
    with pytest.raises(LatheError, match="SHA-256"):
        lathe.runtime.load(broken)
    with pytest.raises(LatheError, match="is truncated"):
        lathe.runtime.load(broken, verify=False)  # dlopen of it would die of SIGBUS


def test_changed_library_is_an_error(broken):
    data = bytearray((broken / "model.so").read_bytes())
    data[-100] ^= 0xFF
    (broken / "model.so").write_bytes(bytes(data))
    with pytest.raises(LatheError, match="does not match its SHA-256"):
        lathe.runtime.load(broken)


def test_missing_or_truncated_weights_are_errors(broken):
    data = (broken / "weights.bin").read_bytes()
    (broken / "weights.bin").write_bytes(data[:-64])
    with pytest.raises(LatheError, match="weights .* has .* bytes"):
        lathe.runtime.load(broken)
    edit_metadata(broken, lambda m: m["weights"].update(bytes=len(data) - 64))
    with pytest.raises(LatheError, match="the weights file .* has .* bytes, but the model's weights take"):
        lathe.runtime.load(broken, verify=False)  # the library's own check
    (broken / "weights.bin").unlink()
    with pytest.raises(LatheError, match="weights .* is missing"):
        lathe.runtime.load(broken)


def test_not_an_artifact_or_another_format_version_is_an_error(broken, tmp_path):
    with pytest.raises(LatheError, match="is not a Lathe artifact: it has no metadata.json"):
        lathe.runtime.load(tmp_path)
    with pytest.raises(LatheError, match="is not a directory"):
        lathe.runtime.load(tmp_path / "nowhere")
    edit_metadata(broken, lambda m: m.update(format_version=artifact.FORMAT_VERSION + 1))
    with pytest.raises(LatheError, match=f"format version {artifact.FORMAT_VERSION + 1}, and this loader reads"):
        lathe.runtime.load(broken)
    (broken / "metadata.json").write_text("{not json")
    with pytest.raises(LatheError, match="cannot read"):
        lathe.runtime.load(broken)


def test_code_for_a_cpu_this_machine_is_not_is_an_error(broken):
    arch, flags = artifact.host_arch(), artifact.cpu_flags()
    table = artifact._CPUINFO_FLAGS.get(arch)
    if flags is None or table is None:
        pytest.skip("no CPU flags to check against here")
    lacking = sorted(name for name, flag in table.items() if flag not in flags)
    if not lacking:
        pytest.skip("this CPU has every feature the loader checks")
    edit_metadata(broken, lambda m: m["target"]["features"].append("+" + lacking[0]))
    with pytest.raises(LatheError, match=f"this CPU lacks features the artifact's code uses: {lacking[0]}"):
        lathe.runtime.load(broken)
    other = "x86_64" if arch == "aarch64" else "aarch64"
    edit_metadata(broken, lambda m: m["target"].update(arch=other, triple=f"{other}-linux-gnu"))
    with pytest.raises(LatheError, match=f"compiled for {other}-linux-gnu, and this machine is {arch}"):
        lathe.runtime.load(broken)


def test_wrong_inputs_are_errors_that_name_them(mlp_dir):
    model = lathe.runtime.load(mlp_dir)
    with pytest.raises(LatheError, match=r"input 'x' has shape \(1, 783\), but \(1, 784\) float32 was expected"):
        model.run(np.zeros((1, 783), np.float32))
    with pytest.raises(LatheError, match="input 'x' has dtype complex64"):
        model.run(np.zeros((1, 784), np.complex64))
    with pytest.raises(LatheError, match="missing input"):
        model.run()
    with pytest.raises(LatheError, match="unknown input"):
        model.run(x=np.zeros((1, 784), np.float32), z=1)
    with pytest.raises(LatheError, match="out has shape"):
        model.run(np.zeros((1, 784), np.float32), out=np.zeros((2, 10), np.float32))


# -- cross-compiling, and no compiler ---------------------------------------------------------


def test_an_aarch64_artifact_links_with_a_cross_linker_or_says_what_to_install(tmp_path):
    out = tmp_path / "arm.d"
    r = lathe_cli("compile", MLP, "--params", MLP_PARAMS, "--target", "llvm -mtriple=aarch64-linux-gnu", "-o", out)
    assert r.returncode == 0, r.stderr
    assert (out / "kernels.o").read_bytes()[18:20] == (183).to_bytes(2, "little")  # ELF e_machine: AArch64
    if shutil.which("aarch64-linux-gnu-gcc"):
        assert (out / "model.so").read_bytes()[18:20] == (183).to_bytes(2, "little")
    else:
        assert "apt-get install gcc-aarch64-linux-gnu" in r.stderr
        assert not (out / "model.so").exists() and "aarch64-linux-gnu-gcc" in (out / "link.sh").read_text()
        with pytest.raises(LatheError, match="has no linked library: no C compiler to link"):
            lathe.runtime.load(out)


def test_no_compiler_for_the_host_is_a_clean_error(tmp_path):
    r = lathe_cli("compile", MLP, "-o", tmp_path / "m.d", env={**os.environ, "CC": "no-such-compiler-xyz"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no C compiler to link the model's library" in r.stderr and "no-such-compiler-xyz" in r.stderr


def test_params_need_a_deployable_artifact_and_known_names(tmp_path):
    r = lathe_cli("compile", MLP, "--params", MLP_PARAMS, "-o", tmp_path / "m.o")
    assert r.returncode == 1 and "--params is for a deployable artifact" in r.stderr
    np.savez(tmp_path / "p.npz", nope=np.zeros(3, np.float32))
    r = lathe_cli("compile", MLP, "--params", tmp_path / "p.npz", "-o", tmp_path / "m.d")
    assert r.returncode == 1 and "no parameter for: nope" in r.stderr and "Traceback" not in r.stderr
