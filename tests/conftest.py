import os
import secrets
import shutil
import tempfile

import numpy as np
import pytest

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
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = np.max(np.abs(ref)) if ref.size else 0.0
    err = np.max(np.abs(got - ref)) if ref.size else 0.0
    return err / scale if scale > 0 else err
