# lit configuration for Lathe's FileCheck tests (run by `lit tests/lit` or by
# tests/test_lit.py under pytest).
import atexit
import os
import shutil
import sys
import tempfile

import lit.formats

config.name = "lathe"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".lathe"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["lit.cfg.py", "Inputs"]

bindir = os.path.dirname(sys.executable)
config.environment["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
for var in ("HOME", "LATHE_NUM_THREADS", "LATHE_CACHE_DIR"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
if "LATHE_CACHE_DIR" not in os.environ:  # run by lit itself, not under pytest: still not the user's cache
    cache = tempfile.mkdtemp(prefix="lathe-lit-cache-")
    atexit.register(shutil.rmtree, cache, True)
    config.environment["LATHE_CACHE_DIR"] = cache
if shutil.which("filecheck", path=config.environment["PATH"]) is None:
    lit_config.fatal("filecheck is not installed (pip install filecheck)")
