"""The system C compiler: found once, probed once, and its shared libraries cached on disk.

The compiler is `$CC` (which may carry flags: CC="gcc -m64"), else the first of
cc, gcc, clang on PATH. Whether it can build with OpenMP (and load the result:
a compiler without its runtime library fails there), with -fopenmp-simd, and
with -march=native is asked once per process, by compiling a few lines.

A shared library is cached under the LLVM kernel cache's directory (`c/`
inside `$LATHE_CACHE_DIR` or ~/.cache/lathe; LATHE_CACHE=0 disables it), named
by a hash of the source, the flags and the compiler's identity, so a model
compiled before loads without running the compiler.

Floating point: `-ffp-contract=fast` allows what `contract` allows the LLVM
backend (a*b+c fused); `-fno-math-errno` and `-fno-trapping-math` say what
LLVM assumes by default. Nothing of -ffast-math that changes results on NaN,
inf or signed zeros (-ffinite-math-only, -fno-signed-zeros) is used: the
interpreter's NaN propagation must hold. The one freedom of `reassoc` that
matters, reordering a sum, is given per loop by `#pragma omp simd`.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lathe.backends.llvm.kernel_cache import cache_dir
from lathe.errors import LatheError

CANDIDATES = ("cc", "gcc", "clang")
BASE_FLAGS = ("-std=c99", "-fPIC", "-shared", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math")
COMPILE_TIMEOUT_S = 900
ERROR_LINES = 20  # how much of the compiler's complaint a LatheError shows

_PROBE_OPENMP = """#include <omp.h>
int lathe_probe(void) { int s = 0;
#pragma omp parallel for reduction(+:s)
for (int i = 0; i < 8; i++) s += i;
return s + omp_get_max_threads() * 0; }
"""
_PROBE_PLAIN = "int lathe_probe(void) { return 28; }\n"
_PROBE_MVEC = """#include <math.h>
float expf(float) __attribute__((simd("notinbranch")));
void lathe_loop(float *restrict a) { for (int i = 0; i < 64; i++) a[i] = expf(a[i]); }
int lathe_probe(void) { float a[64] = {0}; lathe_loop(a); return (int)a[0] + 27; }
"""


@dataclass(frozen=True)
class CCompiler:
    argv: tuple[str, ...]
    version: str  # the first line of `--version`
    openmp: bool  # -fopenmp builds, and the library it needs loads
    openmp_simd: bool  # -fopenmp-simd (honours `#pragma omp simd` without the runtime)
    march_native: bool
    float16: bool  # the compiler has _Float16 (else halves go through float helpers)
    mvec: bool = False  # glibc's vector math links (-lmvec), for vectorized exp, tanh, erf, ...

    def describe(self) -> str:
        features = [
            ("OpenMP" if self.openmp else "no OpenMP"),
            ("_Float16" if self.float16 else "no _Float16: halves computed through float"),
            ("vector libm (libmvec)" if self.mvec else "scalar libm"),
        ]
        return f"{' '.join(self.argv)}: {self.version}; " + ", ".join(features)

    def parallel_flags(self) -> list[str]:
        return ["-fopenmp"] if self.openmp else ["-fopenmp-simd"] if self.openmp_simd else []

    def libraries(self) -> list[str]:
        """What the kernels link with (after the source: the order matters to the linker)."""
        return ["-lm", "-lmvec"] if self.mvec else ["-lm"]


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _builds(
    argv: tuple[str, ...], flags: list[str], source: str, load: bool = False, libraries: tuple[str, ...] = ()
) -> bool:
    with tempfile.TemporaryDirectory(prefix="lathe-cc-probe-") as d:
        src, out = Path(d) / "probe.c", Path(d) / "probe.so"
        src.write_text(source)
        r = _run([*argv, *BASE_FLAGS, *flags, "-o", str(out), str(src), *libraries])
        if r is None or r.returncode != 0 or not out.exists():
            return False
        if load:
            try:
                return ctypes.CDLL(str(out)).lathe_probe() == 28
            except OSError:
                return False
        return True


def _defines(argv: tuple[str, ...], macro: str) -> bool:
    r = _run([*argv, "-std=c99", "-dM", "-E", "-x", "c", os.devnull])
    return r is not None and r.returncode == 0 and f"#define {macro} " in r.stdout


def _probe(argv: tuple[str, ...]) -> CCompiler | None:
    r = _run([*argv, "--version"])
    if r is None or r.returncode != 0:
        return None
    version = (r.stdout.strip().splitlines() or ["unknown version"])[0]
    openmp = _builds(argv, ["-fopenmp"], _PROBE_OPENMP, load=True)
    simd = openmp or _builds(argv, ["-fopenmp-simd"], _PROBE_PLAIN)
    native = _builds(argv, ["-march=native"], _PROBE_PLAIN)
    mvec = _builds(
        argv, ["-O3"] + (["-march=native"] if native else []), _PROBE_MVEC, load=True, libraries=("-lm", "-lmvec")
    )
    return CCompiler(argv, version, openmp, simd, native, _defines(argv, "__FLT16_MAX__"), mvec)


def candidates() -> list[tuple[str, ...]]:
    cc = os.environ.get("CC", "").strip()
    if cc:
        try:
            return [tuple(shlex.split(cc))]
        except ValueError as e:
            raise LatheError(f"cannot read $CC='{cc}': {e}") from None
    return [(name,) for name in CANDIDATES]


@functools.cache
def _find(tried: tuple[tuple[str, ...], ...]) -> CCompiler | None:
    for argv in tried:
        if shutil.which(argv[0]) is None:
            continue
        found = _probe(argv)
        if found is not None:
            return found
    return None


def find_compiler() -> CCompiler:
    """The C compiler, or a LatheError that says which were tried."""
    tried = tuple(candidates())
    found = _find(tried)
    if found is None:
        names = ", ".join(" ".join(a) for a in tried)
        where = "$CC" if os.environ.get("CC", "").strip() else "PATH"
        raise LatheError(
            f"the C backend found no working C compiler (tried {names} from {where})",
            note="install gcc or clang, or set CC to a C99 compiler",
        )
    return found


def compiler_flags(cc: CCompiler, opt_level: int, arch_flags: list[str]) -> list[str]:
    return [f"-O{opt_level}", *BASE_FLAGS, *cc.parallel_flags(), *arch_flags, *([] if cc.mvec else ["-DLATHE_NO_MVEC"])]


def _build(source: str, flags: list[str], cc: CCompiler) -> tuple[Path, Path | None]:
    """A shared library of `source`, from the cache or freshly compiled, and the temporary
    directory to remove once it is read (None when it lives in the cache)."""
    ident = "\0".join([*cc.argv, cc.version, *flags, *cc.libraries(), source])
    key = hashlib.sha256(ident.encode()).hexdigest()[:24]
    directory = cache_dir()
    cached = directory / "c" / f"{key}.so" if directory is not None else None
    if cached is not None and cached.exists():
        return cached, None
    work = Path(tempfile.mkdtemp(prefix="lathe-c-"))
    src, out = work / "kernels.c", work / f"{key}.so"
    src.write_text(source)
    r = _run([*cc.argv, *flags, "-o", str(out), str(src), *cc.libraries()], timeout=COMPILE_TIMEOUT_S)
    if r is None or r.returncode != 0 or not out.exists():
        shown = "\n".join((r.stderr if r is not None else "it did not run or timed out").splitlines()[:ERROR_LINES])
        raise LatheError(
            f"the C compiler '{' '.join(cc.argv)}' failed on the generated source (kept at {src})",
            note=f"{' '.join(cc.argv)} {' '.join(flags)}:\n{shown}",
        )
    if cached is None:
        return out, work
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".so.tmp")
        os.close(fd)
        shutil.copyfile(out, tmp)
        os.replace(tmp, cached)
    except OSError:
        return out, work  # a read-only or full cache directory only costs the next compile
    shutil.rmtree(work, ignore_errors=True)
    return cached, None


def build(source: str, flags: list[str], cc: CCompiler) -> bytes:
    """The shared library's bytes (for `lathe compile -o`)."""
    path, temporary = _build(source, flags, cc)
    try:
        return path.read_bytes()
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def load(source: str, flags: list[str], cc: CCompiler) -> ctypes.CDLL:
    """The shared library, compiled (or cached) and loaded into this process."""
    path, temporary = _build(source, flags, cc)
    try:
        return ctypes.CDLL(str(path))
    except OSError as e:
        raise LatheError(f"cannot load the compiled kernels {path}: {e}") from None
    finally:
        if temporary is not None:  # loaded: the file is no longer needed
            shutil.rmtree(temporary, ignore_errors=True)
