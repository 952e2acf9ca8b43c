"""Running another architecture's deployed library on this machine, under qemu-user.

A model compiled for `llvm -mtriple=aarch64-linux-gnu` on an x86 host is the artifact
`lathe compile -o DIR` builds (artifact.py: model.so linked by the cross compiler). What runs
it is a small C program of its own architecture, `lathe_runner`, cross-compiled once and
cached: it opens each model.so with dlopen and drives it through the C ABI of lathe_model.h,
reading inputs from files and writing outputs to files, and qemu-user runs it
(`qemu-aarch64 -L SYSROOT lathe_runner JOBS`). The runner takes a list of jobs, so one
emulator process runs a batch of models: qemu's start-up is paid once.

What this needs is named in the error where it is missing: Debian's qemu-user (qemu-aarch64),
the cross compiler (gcc-aarch64-linux-gnu) and the target's C library (libc6-dev-arm64-cross,
which also gives qemu the dynamic loader and libc to run with).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lathe.backends.interface import EmulatedRun, Emulator
from lathe.errors import LatheError

RUN_TIMEOUT_S = 1800  # one batch of runs; code under emulation is 10-100x slower than native
ERROR_LINES = 20


def packages(arch: str) -> tuple[str, ...]:
    """The Debian/Ubuntu packages that run `arch` code here: the emulator, the cross compiler
    and the target's C library (headers to build the runner, ld.so and libc to run it)."""
    from lathe.backends.llvm.artifact import cross_packages

    return ("qemu-user", *cross_packages(arch))


def install_hint(arch: str) -> str:
    return f"install them (Debian/Ubuntu: apt-get install {' '.join(packages(arch))})"


def _qemu(arch: str) -> str | None:
    return next((p for p in (shutil.which(f"qemu-{arch}"), shutil.which(f"qemu-{arch}-static")) if p), None)


def missing_tools(triple: str) -> str | None:
    """Why `triple`'s libraries cannot run here under emulation (what is missing, what to
    install), or None when qemu-user and a cross compiler are installed."""
    from lathe.backends.llvm.artifact import linker_for

    arch = triple.split("-", 1)[0]
    missing = []
    if _qemu(arch) is None:
        missing.append(f"qemu-{arch} (the user-mode emulator)")
    compiler, _ = linker_for(triple, is_host=False)
    if compiler is None:
        missing.append(f"{arch}-linux-gnu-gcc (the cross compiler)")
    if not missing:
        return None
    return f"running {triple} code on this machine needs {' and '.join(missing)}: {install_hint(arch)}"


@functools.cache
def sysroot(compiler: tuple[str, ...], arch: str) -> str:
    """Where the target's ld.so and libc are, for qemu's -L: the directory above the cross
    compiler's libc.so.6 (Debian: /usr/aarch64-linux-gnu), else the Debian default."""
    try:
        r = subprocess.run(
            [*compiler, "-print-file-name=libc.so.6"], capture_output=True, text=True, timeout=60, check=False
        )
        libc = Path(r.stdout.strip())
        if libc.is_absolute() and libc.exists():
            return str(libc.resolve().parent.parent)
    except (OSError, subprocess.SubprocessError):
        pass
    return f"/usr/{arch}-linux-gnu"


def _cache_root() -> Path:
    if os.environ.get("LATHE_CACHE", "1") != "0":
        root = os.environ.get("LATHE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "lathe")
        return Path(root) / "emulation"
    return Path(tempfile.gettempdir()) / f"lathe-emulation-{os.getuid()}"


@functools.cache
def runner(compiler: tuple[str, ...]) -> Path:
    """The runner built by `compiler` (cached by its source and the compiler's name)."""
    key = hashlib.sha256("\0".join([RUNNER_SOURCE, *compiler]).encode()).hexdigest()[:16]
    path = _cache_root() / f"lathe_runner-{key}"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lathe-runner-", dir=path.parent))
    try:
        (work / "lathe_runner.c").write_text(RUNNER_SOURCE)
        argv = [*compiler, "-std=gnu99", "-O2", "-Wall", "-o", "lathe_runner", "lathe_runner.c", "-ldl"]
        try:
            r = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as e:
            raise LatheError(f"cannot run '{compiler[0]}' to build the emulation runner: {e}") from None
        if r.returncode != 0:
            arch = compiler[0].rsplit("/", 1)[-1].split("-", 1)[0]
            raise LatheError(
                f"building the emulation runner with {compiler[0]} failed (is the target's C library installed?)",
                note="\n".join(r.stderr.splitlines()[:ERROR_LINES]) + f"\n{install_hint(arch)}",
            )
        os.replace(work / "lathe_runner", path)  # atomic: a concurrent build writes the same file
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


class QemuEmulator(Emulator):
    """Runs `triple`'s deployed libraries under qemu-user, through the cached runner."""

    def __init__(self, triple: str):
        from lathe.backends.llvm.artifact import linker_for

        why = missing_tools(triple)
        if why:
            raise LatheError(why)
        self.arch = triple.split("-", 1)[0]
        compiler, _ = linker_for(triple, is_host=False)
        self.compiler = tuple(compiler or ())
        self.qemu = _qemu(self.arch) or f"qemu-{self.arch}"
        self.sysroot = sysroot(self.compiler, self.arch)
        self.description = f"{os.path.basename(self.qemu)} -L {self.sysroot}"

    def run(self, jobs: Sequence[EmulatedRun], num_threads: int = 1) -> list[list[np.ndarray]]:
        work = Path(tempfile.mkdtemp(prefix="lathe-emulated-run-"))
        try:
            lines = [f"threads {num_threads}"]
            outputs: list[list[Path]] = []
            for n, job in enumerate(jobs):
                lines += [f"library {os.path.abspath(job.library)}", f"weights {os.path.abspath(job.weights)}"]
                for k, a in enumerate(job.inputs):
                    path = work / f"in_{n}_{k}.bin"
                    np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tofile(path)
                    lines.append(f"input {path}")
                outputs.append([work / f"out_{n}_{k}.bin" for k in range(len(job.outputs))])
                lines += [f"output {path}" for path in outputs[-1]]
                lines.append("run")
            (work / "jobs.txt").write_text("\n".join(lines) + "\n")
            argv = [self.qemu, "-L", self.sysroot, str(runner(self.compiler)), str(work / "jobs.txt")]
            try:
                r = subprocess.run(
                    argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL
                )
            except subprocess.TimeoutExpired:
                raise LatheError(
                    f"the emulated run ({self.description}) did not end within {RUN_TIMEOUT_S} s"
                ) from None
            except OSError as e:
                raise LatheError(f"cannot run {self.qemu}: {e}") from None
            if r.returncode != 0:
                shown = "\n".join((r.stderr or r.stdout).splitlines()[-ERROR_LINES:])
                raise LatheError(
                    f"the emulated run failed ({self.description}, exit status {r.returncode})", note=shown
                )
            return [
                [_read(path, shape, dtype) for path, (shape, dtype) in zip(paths, job.outputs)]
                for paths, job in zip(outputs, jobs)
            ]
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _read(path: Path, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    little = np.dtype(dtype).newbyteorder("<")
    data = np.fromfile(path, dtype=little)
    if data.size != int(np.prod(shape, dtype=np.int64)):
        raise LatheError(f"the emulated run wrote {data.size} elements to {path.name}, not {shape}")
    return data.astype(np.dtype(dtype), copy=False).reshape(shape)


# The runner: a job list on the command line's file, one `key value` per line:
#   threads N         threads for parallel loops (lathe_set_num_threads) from here on
#   library PATH      the model.so of the next runs (dlopen; the previous one is closed)
#   weights PATH      its weights file
#   input PATH        the next input's raw bytes (lathe_input_nbytes of them)
#   output PATH       where the next output's raw bytes go
#   run               create the model, set its inputs, run, write its outputs, destroy it
RUNNER_SOURCE = r"""/* lathe_runner.c: runs models compiled by Lathe through their C ABI (lathe_model.h),
 * inputs and outputs as raw files; Lathe builds it for another architecture and runs it under
 * qemu-user (backends/llvm/emulation.py). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENSORS 1024

typedef struct lathe_model lathe_model;
static struct {
    void *handle;
    lathe_model *(*create)(const char *);
    void (*destroy)(lathe_model *);
    const char *(*last_error)(void);
    int (*set_num_threads)(lathe_model *, int);
    int (*num_inputs)(void);
    int (*num_outputs)(void);
    int64_t (*input_nbytes)(int);
    int64_t (*output_nbytes)(int);
    const char *(*input_name)(int);
    int (*set_input)(lathe_model *, int, const void *);
    int (*run)(lathe_model *);
    const void *(*output)(const lathe_model *, int);
} lib;

static int die(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "lathe_runner: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    exit(1);
}

static void *symbol(const char *name, const char *path) {
    void *p = dlsym(lib.handle, name);
    if (!p) die("%s has no %s: not a Lathe model library", path, name);
    return p;
}

static void open_library(const char *path) {
    if (lib.handle) dlclose(lib.handle);
    lib.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib.handle) die("cannot open %s: %s", path, dlerror());
    *(void **)&lib.create = symbol("lathe_create", path);
    *(void **)&lib.destroy = symbol("lathe_destroy", path);
    *(void **)&lib.last_error = symbol("lathe_last_error", path);
    *(void **)&lib.set_num_threads = symbol("lathe_set_num_threads", path);
    *(void **)&lib.num_inputs = symbol("lathe_num_inputs", path);
    *(void **)&lib.num_outputs = symbol("lathe_num_outputs", path);
    *(void **)&lib.input_nbytes = symbol("lathe_input_nbytes", path);
    *(void **)&lib.output_nbytes = symbol("lathe_output_nbytes", path);
    *(void **)&lib.input_name = symbol("lathe_input_name", path);
    *(void **)&lib.set_input = symbol("lathe_set_input", path);
    *(void **)&lib.run = symbol("lathe_run", path);
    *(void **)&lib.output = symbol("lathe_output", path);
}

static void *read_file(const char *path, int64_t nbytes) {
    void *data = aligned_alloc(64, (size_t)((nbytes + 63) / 64 * 64 + 64));
    FILE *f = fopen(path, "rb");
    if (!data || !f) die("cannot read %s%s", path, "");
    if (nbytes && fread(data, 1, (size_t)nbytes, f) != (size_t)nbytes) die("%s is shorter than the input%s", path, "");
    if (fgetc(f) != EOF) die("%s is longer than the input%s", path, "");
    fclose(f);
    return data;
}

static void write_file(const char *path, const void *data, int64_t nbytes) {
    FILE *f = fopen(path, "wb");
    if (!f || (nbytes && fwrite(data, 1, (size_t)nbytes, f) != (size_t)nbytes) || fclose(f) != 0)
        die("cannot write %s%s", path, "");
}

int main(int argc, char **argv) {
    if (argc != 2) die("usage: lathe_runner JOBS%s%s", "", "");
    FILE *jobs = fopen(argv[1], "r");
    if (!jobs) die("cannot open %s%s", argv[1], "");
    static char line[8192], weights[8192];
    static char *inputs[MAX_TENSORS], *outputs[MAX_TENSORS];
    int n_in = 0, n_out = 0, threads = 1;
    while (fgets(line, sizeof line, jobs)) {
        line[strcspn(line, "\n")] = 0;
        char *value = strchr(line, ' ');
        if (value) *value++ = 0;
        if (!strcmp(line, "threads") && value) threads = atoi(value);
        else if (!strcmp(line, "library") && value) open_library(value);
        else if (!strcmp(line, "weights") && value) snprintf(weights, sizeof weights, "%s", value);
        else if (!strcmp(line, "input") && value && n_in < MAX_TENSORS) inputs[n_in++] = strdup(value);
        else if (!strcmp(line, "output") && value && n_out < MAX_TENSORS) outputs[n_out++] = strdup(value);
        else if (!strcmp(line, "run")) {
            if (!lib.handle) die("run before library%s%s", "", "");
            if (n_in != lib.num_inputs() || n_out != lib.num_outputs()) die("wrong number of inputs or outputs%s%s", "", "");
            lathe_model *m = lib.create(weights);
            if (!m) die("lathe_create: %s%s", lib.last_error(), "");
            if (lib.set_num_threads(m, threads > 0 ? threads : 1) != 0) die("%s%s", lib.last_error(), "");
            void *data[MAX_TENSORS];
            for (int i = 0; i < n_in; i++) {
                data[i] = read_file(inputs[i], lib.input_nbytes(i));
                if (lib.set_input(m, i, data[i]) != 0) die("lathe_set_input: %s%s", lib.last_error(), "");
            }
            if (lib.run(m) != 0) die("lathe_run: %s%s", lib.last_error(), "");
            for (int j = 0; j < n_out; j++) write_file(outputs[j], lib.output(m, j), lib.output_nbytes(j));
            lib.destroy(m);
            for (int i = 0; i < n_in; i++) free(data[i]), free(inputs[i]);
            for (int j = 0; j < n_out; j++) free(outputs[j]);
            n_in = n_out = 0;
        } else if (line[0]) die("unknown job line '%s'%s", line, "");
    }
    fclose(jobs);
    return 0;
}
"""
