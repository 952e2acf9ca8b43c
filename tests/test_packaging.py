"""What a user installs is what the repository holds: a built wheel carries every
package and data file that the editable install reads from the source tree."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOT_SHIPPED = {"tests", "benchmarks", "build", "dist", "docs", "examples"}


def _source_files() -> set[str]:
    """Every module and data file of every package under the root, as the wheel names it."""
    files = set()
    for init in ROOT.rglob("__init__.py"):
        pkg = init.parent
        rel = pkg.relative_to(ROOT)
        if rel.parts and (rel.parts[0] in NOT_SHIPPED or rel.parts[0].startswith(".")):
            continue
        for f in pkg.iterdir():
            if f.is_file() and f.suffix in (".py", ".lark"):
                files.add("/".join(("lathe",) + f.relative_to(ROOT).parts))
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    src = build / "src"  # a copy: setuptools' build/ directory in the checkout would carry stale files
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__"))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(build), "TMPDIR": str(build)},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("lathe-*.whl")
    return zipfile.ZipFile(whl)


def test_wheel_holds_every_package_and_data_file(wheel):
    shipped = {n for n in wheel.namelist() if n.startswith("lathe/")}
    missing = sorted(_source_files() - shipped)
    assert not missing, f"the wheel lacks {missing}: list their packages in pyproject.toml"
    assert "lathe/textual_ir/relay.lark" in shipped
    assert "lathe/models/resnet.py" in shipped


def test_wheel_declares_the_import_dependencies(wheel):
    meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(":", 1)[1].strip()
        for line in wheel.read(meta).decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    names = {r.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip().lower() for r in requires}
    assert {"xdsl", "numpy", "llvmlite", "lark", "onnx"} <= names  # `lathe import` needs onnx
