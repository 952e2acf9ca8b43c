import os
import secrets
import shutil
import tempfile

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
