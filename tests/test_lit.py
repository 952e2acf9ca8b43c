"""Runs the FileCheck suite (tests/lit) under pytest, so one command runs everything."""

import subprocess
import sys
from pathlib import Path


def test_lit_suite():
    lit_dir = Path(__file__).parent / "lit"
    lit = Path(sys.executable).parent / "lit"
    r = subprocess.run([str(lit), "-q", "--no-progress-bar", str(lit_dir)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
