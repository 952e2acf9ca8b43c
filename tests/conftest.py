import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from lathe.testing.compare import max_relative_error

os.environ.setdefault("LATHE_NUM_THREADS", "2")
# A kernel cache of the session's own, always: not the user's ~/.cache/lathe, nor a LATHE_CACHE_DIR
# they set for their own work (tests write thousands of kernels). Subprocesses inherit it.
TEST_CACHE_DIR = tempfile.mkdtemp(prefix="lathe-test-cache-")
os.environ["LATHE_CACHE_DIR"] = TEST_CACHE_DIR


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(TEST_CACHE_DIR, ignore_errors=True)


@pytest.fixture
def rng(request):
    """Fresh random inputs each run; the seed is printed when a test fails."""
    seed = secrets.randbits(32)
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: {seed}")
    return np.random.default_rng(seed)


def max_rel_err(got, ref) -> float:
    assert np.shape(got) == np.shape(ref), (np.shape(got), np.shape(ref))
    return max_relative_error(got, ref)


BIN = Path(sys.executable).parent  # the venv's console scripts (lathe, lathe-opt)

# nested results holding a kernel output twice, an input and a constant
TUPLES = """def @main(%x: Tensor[(4, 8), float32], %y: Tensor[(4, 8), float32]) {
  %0 = add(%x, %y);
  %1 = multiply(%x, %y);
  %2 = (%0, %1);
  %3 = %2.1;
  (%2, exp(%3), %x, %3, ones(shape=[3], dtype="float32"))
}"""


def lathe_cli(*args, env=None):
    return subprocess.run([str(BIN / "lathe"), *map(str, args)], capture_output=True, text=True, env=env, check=False)


def assert_matches(got, ref, rtol=2e-5):
    assert type(got) is type(ref)
    if isinstance(ref, tuple):
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            assert_matches(g, r, rtol)
        return
    assert (got.shape, got.dtype) == (ref.shape, ref.dtype)
    np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * max(1.0, float(np.abs(ref).max())))
