"""`lathe new-backend demo` writes a package that, in a fresh virtual environment and with
no edit to Lathe: installs with pip, shows in `lathe backends`, runs a model with
--target demo --check, and passes its own generated tests (issue 10's bar)."""

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from lathe.errors import LatheError
from lathe.tools.scaffold import new_backend, scaffold_files

ROOT = Path(__file__).resolve().parent.parent


def test_backend_names_must_be_identifiers(tmp_path):
    for bad in ("Demo", "my-backend", "1x", "class", ""):
        with pytest.raises(LatheError, match="lowercase identifier"):
            scaffold_files(bad)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(LatheError, match="not an empty directory"):
        new_backend("demo", str(tmp_path / "taken"))


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    """A fresh venv that sees this Lathe (and its dependencies) through a .pth file,
    with the generated package pip-installed into it."""
    tmp = tmp_path_factory.mktemp("scaffold")
    pkg = tmp / "demo"
    r = subprocess.run(
        [sys.executable, "-m", "lathe.tools.lathe_cli", "new-backend", "demo", "--dir", str(pkg)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lathe_site = next(
        p
        for p in site.getsitepackages()
        if (Path(p) / "lathe-0.1.0.dist-info").exists()
        or any(Path(p).glob("__editable__*lathe*"))
        or any(Path(p).glob("lathe*"))
    )
    Path(purelib, "lathe_env.pth").write_text(f"import site; site.addsitedir({lathe_site!r})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(pkg)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return python, pkg, env


def _lathe(demo_env, *args):
    python, _, env = demo_env
    return subprocess.run(
        [str(python), "-m", "lathe.tools.lathe_cli", *args], capture_output=True, text=True, env=env, cwd=ROOT
    )


def test_installed_package_is_listed(demo_env):
    r = _lathe(demo_env, "backends")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("demo "))
    assert "demo" in row.split()[2] and "failed" not in row


def test_a_model_runs_on_the_new_target_and_agrees(demo_env):
    r = _lathe(
        demo_env, "run", "examples/mlp.lathe", "--params", "examples/mlp.params.npz", "--target", "demo", "--check"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check: max relative error" in r.stdout and "OK" in r.stdout


def test_its_dialect_and_pass_reach_lathe_opt(demo_env):
    python, _, env = demo_env
    r = subprocess.run(
        [str(python), "-m", "lathe.tools.lathe_opt", "--list-passes"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    assert "demo-annotate-kernels" in r.stdout


def test_the_generated_tests_pass(demo_env):
    python, pkg, env = demo_env
    r = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pkg / "tests")],
        capture_output=True,
        text=True,
        env=env,
        cwd=pkg,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout
