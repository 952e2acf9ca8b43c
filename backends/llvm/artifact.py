"""A whole model as a shared library with a C ABI, for `lathe compile -o DIR`.

The library holds what a run needs and nothing of Lathe: the kernels, the thread pool
(parallel_runtime.py), one entry that calls the kernels in order (`entry_ir`, as the JIT
builds it) and a small C file, `lathe_model.c`, with the run's plan baked in as tables:
which slot of the address table each weight, intermediate, staging copy and default
output buffer takes in one block of memory, allocated once by `lathe_create`. LLVM writes
one object file (kernels.o); the system C compiler builds the C file and links both, as
the C backend finds it (`$CC`, else cc, gcc, clang), or `<triple>-gcc` for another
architecture. A version script exports the ABI alone, so two models loaded in one process
keep their own pools and kernels. The ABI is declared in `lathe_model.h`
(docs/deployment.md); `example.c` runs a model from C.
"""

from __future__ import annotations

import math
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from lathe.backends.interface import ALIGN, ARGUMENT_ALIGN, RunProgram
from lathe.backends.llvm.target import LLVMTarget
from lathe.errors import LatheError

ABI_VERSION = 1
ENTRY = "lathe_model_run"  # void lathe_model_run(void **slots): the kernels in order
LIBRARY = "model.so"
HEADER = "lathe_model.h"
WRAPPER = "lathe_model.c"
VERSION_SCRIPT = "lathe_model.map"
NOT_LINKED = "NOT_LINKED.txt"  # why there is no LIBRARY, when there is none
C_FLAGS = ("-std=gnu99", "-O2", "-fPIC", "-Wall")
LINK_FLAGS = ("-shared", f"-Wl,--version-script={VERSION_SCRIPT}", f"-Wl,-soname,{LIBRARY}", "-Wl,-z,noexecstack")
LIBRARIES = ("-lm", "-lpthread")
LINK_TIMEOUT_S = 900
ERROR_LINES = 20

# The exported functions, as lathe_model.h declares them: (return type, name, parameters, what it does).
ABI: tuple[tuple[str, str, str, str], ...] = (
    ("int", "lathe_abi_version", "void", "the version of this interface (1)"),
    (
        "lathe_model *",
        "lathe_create",
        "const char *weights_path",
        "a model, its memory allocated once and its weights read from weights_path (NULL where it has none); "
        "NULL on failure (lathe_last_error says why)",
    ),
    ("void", "lathe_destroy", "lathe_model *m", "frees the model's memory"),
    ("const char *", "lathe_last_error", "void", "why the last call that failed on this thread failed"),
    (
        "int",
        "lathe_set_num_threads",
        "lathe_model *m, int n",
        "threads for parallel loops (default: $LATHE_NUM_THREADS, else the cores the process may use)",
    ),
    ("int", "lathe_num_inputs", "void", ""),
    ("int", "lathe_num_outputs", "void", "flat: a tuple result counts its leaves"),
    ("const char *", "lathe_input_name", "int i", ""),
    ("const char *", "lathe_input_dtype", "int i", "numpy's name: float32, int64, bool, ..."),
    ("int", "lathe_input_ndim", "int i", ""),
    ("const int64_t *", "lathe_input_shape", "int i", ""),
    ("int64_t", "lathe_input_nbytes", "int i", ""),
    ("const char *", "lathe_output_name", "int j", "output, or output_0, output_1_0, ... as results nest"),
    ("const char *", "lathe_output_dtype", "int j", ""),
    ("int", "lathe_output_ndim", "int j", ""),
    ("const int64_t *", "lathe_output_shape", "int j", ""),
    ("int64_t", "lathe_output_nbytes", "int j", ""),
    (
        "int",
        "lathe_set_input",
        "lathe_model *m, int i, const void *data",
        f"input i for the next runs: used in place when {ARGUMENT_ALIGN}-byte aligned (keep it alive and unchanged while "
        "running), else copied now",
    ),
    (
        "int",
        "lathe_bind_output",
        "lathe_model *m, int j, void *dst",
        f"where runs write output j: kernels write dst directly when it is {ARGUMENT_ALIGN}-byte aligned, else it is copied "
        "there after each run; NULL: the model's own buffer again",
    ),
    ("int", "lathe_run", "lathe_model *m", "runs the model on the inputs set; 0, or -1 (lathe_last_error)"),
    (
        "const void *",
        "lathe_output",
        "const lathe_model *m, int j",
        "where output j is after a run (the bound buffer, or the model's own, valid until the next run)",
    ),
    ("int", "lathe_get_output", "const lathe_model *m, int j, void *dst", "copies output j to dst"),
)


def build(module: ModuleOp, program: RunProgram, llvm_target: LLVMTarget, vector_bits: int) -> dict[str, bytes]:
    """The library's files: kernels.ll and kernels.o (kernels, pool and entry), the C file,
    header, version script and example, and model.so where a linker for the target exists
    (else NOT_LINKED.txt, which says what to install)."""
    from lathe.backends.llvm.codegen import module_to_llvm_ir
    from lathe.backends.llvm.jit import emit_object
    from lathe.backends.llvm.kernel_cache import entry_ir

    ir = module_to_llvm_ir(module, vector_bits=vector_bits, runtime_for=llvm_target.triple)
    entry = entry_ir(ENTRY, [(f"{name}__packed", args) for name, args in program.calls])
    # the packed kernels are defined in this module: entry_ir's declarations of them go
    ir += "\n".join(line for line in entry.splitlines() if not line.startswith("declare "))
    files = {
        "kernels.ll": ir.encode(),
        "kernels.o": emit_object(ir, llvm_target),
        WRAPPER: wrapper_source(program).encode(),
        HEADER: header_source().encode(),
        VERSION_SCRIPT: version_script().encode(),
        "example.c": EXAMPLE.encode(),
    }
    compiler, missing = linker_for(llvm_target.triple, llvm_target.is_host)
    if compiler is None:
        if llvm_target.is_host:
            raise LatheError(missing)
        files[NOT_LINKED] = (missing + "\n").encode()
        compiler = [f"{llvm_target.triple.split('-', 1)[0]}-linux-gnu-gcc"]
    else:
        files[LIBRARY] = link(compiler, files)
    files["link.sh"] = f'#!/bin/sh\ncd "$(dirname "$0")" &&\n{shlex.join(link_command(compiler))}\n'.encode()
    return files


def linker_for(triple: str, is_host: bool) -> tuple[list[str] | None, str]:
    """The C compiler that builds and links for `triple`, or None and what to install."""
    from lathe.backends.c.compiler import candidates

    arch = triple.split("-", 1)[0]
    if is_host:
        tried = [list(c) for c in candidates()]
        how = "install gcc or clang, or set CC to a C compiler"
    else:
        tried = [[f"{triple}-gcc"], [f"{arch}-linux-gnu-gcc"]]
        how = f"install one (Debian/Ubuntu: apt-get install {' '.join(cross_packages(arch))}), then rerun lathe compile"
    for argv in tried:
        if shutil.which(argv[0]):
            return argv, ""
    names = ", ".join(dict.fromkeys(" ".join(a) for a in tried))
    return None, f"no C compiler to link the model's library for {triple} (tried {names}): {how}"


_DEBIAN_ARCH = {"aarch64": "arm64", "x86_64": "amd64", "arm": "armhf"}


def cross_packages(arch: str) -> tuple[str, ...]:
    """Debian's packages of a cross compiler for `arch` that links: gcc and the target's C library."""
    return (f"gcc-{arch}-linux-gnu", f"libc6-dev-{_DEBIAN_ARCH.get(arch, arch)}-cross")


def link_command(compiler: list[str]) -> list[str]:
    """The build line of model.so from the files in its directory (also in README.txt)."""
    return [*compiler, *C_FLAGS, *LINK_FLAGS, "-o", LIBRARY, WRAPPER, "kernels.o", *LIBRARIES]


def link(compiler: list[str], files: dict[str, bytes]) -> bytes:
    work = Path(tempfile.mkdtemp(prefix="lathe-link-"))
    try:
        for name in (WRAPPER, HEADER, VERSION_SCRIPT, "kernels.o"):
            (work / name).write_bytes(files[name])
        argv = link_command(compiler)
        try:
            r = subprocess.run(
                argv, cwd=work, capture_output=True, text=True, timeout=LINK_TIMEOUT_S, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise LatheError(f"cannot run '{argv[0]}' to link the model's library: {e}") from None
        if r.returncode != 0 or not (work / LIBRARY).exists():
            shown = "\n".join(r.stderr.splitlines()[:ERROR_LINES])
            raise LatheError(f"linking the model's library failed ({' '.join(argv)})", note=shown)
        return (work / LIBRARY).read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def version_script() -> str:
    return "{\n  global:\n" + "".join(f"    {name};\n" for _, name, _, _ in ABI) + "  local: *;\n};\n"


def header_source() -> str:
    lines = [
        "/* lathe_model.h: the C ABI of a model compiled by Lathe (docs/deployment.md).",
        " * A model's inputs and outputs are dense C-contiguous arrays of the dtypes and shapes",
        " * the queries give; calls that return int return 0, or -1 with lathe_last_error() set. */",
        "#ifndef LATHE_MODEL_H",
        "#define LATHE_MODEL_H",
        "#include <stdint.h>",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        "typedef struct lathe_model lathe_model;",
        "",
    ]
    for ret, name, params, doc in ABI:
        if doc:
            lines.append(f"/* {doc} */")
        lines.append(f"{ret}{'' if ret.endswith('*') else ' '}{name}({params});")
    lines += ["", "#ifdef __cplusplus", "}", "#endif", "#endif", ""]
    return "\n".join(lines)


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _table(rows: list[str], empty: str) -> str:
    """A C initialiser with one sentinel row: C has no empty arrays."""
    return "{\n" + "".join(f"    {r},\n" for r in [*rows, empty]) + "}"


def wrapper_source(program: RunProgram) -> str:
    """lathe_model.c: the ABI over the run's tables."""
    shapes: list[int] = []

    def info(name: str, dtype: str, shape, slot: int, offset: int, written: bool) -> str:
        at = len(shapes)
        shapes.extend(shape)
        nbytes = math.prod(shape) * _ITEMSIZE[dtype]
        return (
            f"{{{_c_string(name)}, {_c_string(dtype)}, {len(shape)}, SHAPES + {at}, {slot}, "
            f"{nbytes}LL, {offset}LL, {int(written)}}}"
        )

    inputs = [info(i.name, i.dtype, i.shape, i.slot, i.staging, False) for i in program.inputs]
    results = [info(r.name, r.dtype, r.shape, r.slot, r.offset, r.written) for r in program.results]
    placed = [f"{{{slot}, {offset}LL}}" for slot, offset in program.placed]
    return (
        WRAPPER_TEMPLATE.replace("@NUM_SLOTS@", str(program.num_slots))
        .replace("@NUM_INPUTS@", str(len(program.inputs)))
        .replace("@NUM_RESULTS@", str(len(program.results)))
        .replace("@NUM_PLACED@", str(len(program.placed)))
        .replace("@WEIGHTS_BYTES@", f"{program.weights_bytes}LL")
        .replace("@BLOCK_BYTES@", f"{max(ALIGN, program.block_bytes)}LL")
        .replace("@ALIGN@", str(ALIGN))
        .replace("@ARGUMENT_ALIGN@", str(ARGUMENT_ALIGN))
        .replace("@ABI_VERSION@", str(ABI_VERSION))
        .replace("@ENTRY@", ENTRY)
        .replace("@SHAPES@", "{" + ", ".join(f"{d}LL" for d in [*shapes, 0]) + "}")
        .replace("@INPUTS@", _table(inputs, '{"", "", 0, SHAPES, 0, 0, 0, 0}'))
        .replace("@RESULTS@", _table(results, '{"", "", 0, SHAPES, 0, 0, 0, 0}'))
        .replace("@PLACED@", _table(placed, "{0, 0}"))
    )


_ITEMSIZE = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "float16": 2,
    "float32": 4,
    "float64": 8,
}


WRAPPER_TEMPLATE = r"""/* lathe_model.c: the C ABI of one model compiled by Lathe, over its run's plan
 * (generated by lathe compile; docs/deployment.md). Build line: README.txt. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lathe_model.h"

#define NUM_SLOTS @NUM_SLOTS@
#define NUM_INPUTS @NUM_INPUTS@
#define NUM_RESULTS @NUM_RESULTS@
#define NUM_PLACED @NUM_PLACED@
#define WEIGHTS_BYTES @WEIGHTS_BYTES@
#define BLOCK_BYTES @BLOCK_BYTES@
#define ALIGN @ALIGN@ /* the block's start */
#define ARGUMENT_ALIGN @ARGUMENT_ALIGN@ /* what kernels assume of a buffer argument: a caller's array so aligned is used in place */

void @ENTRY@(void **slots); /* kernels.o: every kernel in order, arguments read from slots */
extern int32_t lathe_num_threads; /* kernels.o: the thread pool's width */
void lathe_pool_shutdown(void);

typedef struct {
    const char *name, *dtype;
    int32_t ndim;
    const int64_t *shape;
    int32_t slot;
    int64_t nbytes;
    int64_t offset; /* in the block: an input's staging copy, a written result's own buffer */
    int32_t written; /* a result a kernel writes (else it is read from its slot after a run) */
} tensor_info;

static const int64_t SHAPES[] = @SHAPES@;
static const tensor_info INPUTS[NUM_INPUTS + 1] = @INPUTS@;
static const tensor_info RESULTS[NUM_RESULTS + 1] = @RESULTS@;
static const int64_t PLACED[NUM_PLACED + 1][2] = @PLACED@; /* slot, offset in the block */

struct lathe_model {
    unsigned char *block;
    void *slots[NUM_SLOTS + 1];
    void *copy_to[NUM_RESULTS + 1];
    int32_t bound[NUM_INPUTS + 1];
    int32_t num_threads;
};

static __thread char last_error[512];

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *lathe_last_error(void) { return last_error; }
int lathe_abi_version(void) { return @ABI_VERSION@; }

__attribute__((destructor)) static void unload(void) { lathe_pool_shutdown(); } /* no worker outlives the code */

static int32_t default_threads(void) {
    const char *env = getenv("LATHE_NUM_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}

static int read_weights(unsigned char *dst, const char *path) {
    if (WEIGHTS_BYTES == 0) return 0;
    if (!path) return fail("the model has %lld bytes of weights: give the path of its weights file", WEIGHTS_BYTES);
    FILE *f = fopen(path, "rb");
    if (!f) return fail("cannot open the weights file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (long long)st.st_size != WEIGHTS_BYTES) {
        fclose(f);
        return fail("the weights file %s has %lld bytes, but the model's weights take %lld (truncated, or another "
                    "model's?)", path, (long long)st.st_size, WEIGHTS_BYTES);
    }
    size_t got = fread(dst, 1, (size_t)WEIGHTS_BYTES, f);
    fclose(f);
    if ((long long)got != WEIGHTS_BYTES) return fail("cannot read the weights file %s", path);
    return 0;
}

lathe_model *lathe_create(const char *weights_path) {
    lathe_model *m = calloc(1, sizeof *m);
    if (!m) return fail("out of memory"), NULL;
    if (posix_memalign((void **)&m->block, ALIGN, (size_t)BLOCK_BYTES) != 0) {
        free(m);
        return fail("cannot allocate the model's %lld bytes", BLOCK_BYTES), NULL;
    }
    if (read_weights(m->block, weights_path) != 0) {
        free(m->block);
        free(m);
        return NULL;
    }
    for (int k = 0; k < NUM_PLACED; k++) m->slots[PLACED[k][0]] = m->block + PLACED[k][1];
    for (int j = 0; j < NUM_RESULTS; j++)
        if (RESULTS[j].written) m->slots[RESULTS[j].slot] = m->block + RESULTS[j].offset;
    m->num_threads = default_threads();
    return m;
}

void lathe_destroy(lathe_model *m) {
    if (!m) return;
    free(m->block);
    free(m);
}

int lathe_set_num_threads(lathe_model *m, int n) {
    if (n < 1) return fail("lathe_set_num_threads: %d threads (at least 1)", n);
    m->num_threads = n;
    return 0;
}

int lathe_num_inputs(void) { return NUM_INPUTS; }
int lathe_num_outputs(void) { return NUM_RESULTS; }

#define QUERY(table, count, what, field, type, none)                      \
    type lathe_##what##_##field(int i) { return i >= 0 && i < count ? table[i].field : none; }
QUERY(INPUTS, NUM_INPUTS, input, name, const char *, NULL)
QUERY(INPUTS, NUM_INPUTS, input, dtype, const char *, NULL)
QUERY(INPUTS, NUM_INPUTS, input, ndim, int, -1)
QUERY(INPUTS, NUM_INPUTS, input, shape, const int64_t *, NULL)
QUERY(INPUTS, NUM_INPUTS, input, nbytes, int64_t, -1)
QUERY(RESULTS, NUM_RESULTS, output, name, const char *, NULL)
QUERY(RESULTS, NUM_RESULTS, output, dtype, const char *, NULL)
QUERY(RESULTS, NUM_RESULTS, output, ndim, int, -1)
QUERY(RESULTS, NUM_RESULTS, output, shape, const int64_t *, NULL)
QUERY(RESULTS, NUM_RESULTS, output, nbytes, int64_t, -1)

int lathe_set_input(lathe_model *m, int i, const void *data) {
    if (i < 0 || i >= NUM_INPUTS) return fail("lathe_set_input: no input %d (the model has %d)", i, NUM_INPUTS);
    const tensor_info *t = &INPUTS[i];
    if (!data && t->nbytes) return fail("lathe_set_input: input '%s' is NULL", t->name);
    if ((uintptr_t)data % ARGUMENT_ALIGN == 0) {
        m->slots[t->slot] = (void *)data;
    } else {
        memcpy(m->block + t->offset, data, (size_t)t->nbytes);
        m->slots[t->slot] = m->block + t->offset;
    }
    m->bound[i] = 1;
    return 0;
}

int lathe_bind_output(lathe_model *m, int j, void *dst) {
    if (j < 0 || j >= NUM_RESULTS) return fail("lathe_bind_output: no output %d (the model has %d)", j, NUM_RESULTS);
    const tensor_info *t = &RESULTS[j];
    m->copy_to[j] = NULL;
    if (t->written) m->slots[t->slot] = m->block + t->offset;
    if (!dst) return 0;
    if (t->written && (uintptr_t)dst % ARGUMENT_ALIGN == 0) m->slots[t->slot] = dst;
    else m->copy_to[j] = dst;
    return 0;
}

int lathe_run(lathe_model *m) {
    for (int i = 0; i < NUM_INPUTS; i++)
        if (!m->bound[i]) return fail("input '%s' is not set (lathe_set_input)", INPUTS[i].name);
    __atomic_store_n(&lathe_num_threads, m->num_threads, __ATOMIC_RELAXED);
    @ENTRY@(m->slots);
    for (int j = 0; j < NUM_RESULTS; j++)
        if (m->copy_to[j]) memcpy(m->copy_to[j], m->slots[RESULTS[j].slot], (size_t)RESULTS[j].nbytes);
    return 0;
}

const void *lathe_output(const lathe_model *m, int j) {
    return j >= 0 && j < NUM_RESULTS ? m->slots[RESULTS[j].slot] : NULL;
}

int lathe_get_output(const lathe_model *m, int j, void *dst) {
    if (j < 0 || j >= NUM_RESULTS) return fail("lathe_get_output: no output %d (the model has %d)", j, NUM_RESULTS);
    memcpy(dst, m->slots[RESULTS[j].slot], (size_t)RESULTS[j].nbytes);
    return 0;
}
"""

EXAMPLE = r"""/* example.c: runs the model once on made-up inputs and prints a line per output.
 * Build and run (in this directory; README.txt has the line for this artifact):
 *     cc -O2 -o example example.c ./model.so -Wl,-rpath,'$ORIGIN' && ./example weights.bin
 * Input element k is ((k * 7) % 13 - 6) / 8, converted to the input's dtype. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lathe_model.h"

static int64_t count(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

static void fill(const char *dtype, void *p, int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        double v = (double)((k * 7) % 13 - 6) / 8.0;
        if (!strcmp(dtype, "float32")) ((float *)p)[k] = (float)v;
        else if (!strcmp(dtype, "float64")) ((double *)p)[k] = v;
        else if (!strcmp(dtype, "int32")) ((int32_t *)p)[k] = (int32_t)v;
        else if (!strcmp(dtype, "int64")) ((int64_t *)p)[k] = (int64_t)v;
        else if (!strcmp(dtype, "int8")) ((int8_t *)p)[k] = (int8_t)v;
        else if (!strcmp(dtype, "bool")) ((unsigned char *)p)[k] = v != 0;
        else return; /* other dtypes: zeros (the buffer was calloc'ed) */
    }
}

static double element(const char *dtype, const void *p, int64_t k) {
    if (!strcmp(dtype, "float32")) return ((const float *)p)[k];
    if (!strcmp(dtype, "float64")) return ((const double *)p)[k];
    if (!strcmp(dtype, "int32")) return ((const int32_t *)p)[k];
    if (!strcmp(dtype, "int64")) return (double)((const int64_t *)p)[k];
    if (!strcmp(dtype, "int8")) return ((const int8_t *)p)[k];
    if (!strcmp(dtype, "uint8") || !strcmp(dtype, "bool")) return ((const unsigned char *)p)[k];
    return NAN;
}

int main(int argc, char **argv) {
    lathe_model *m = lathe_create(argc > 1 ? argv[1] : "weights.bin");
    if (!m) {
        fprintf(stderr, "lathe_create: %s\n", lathe_last_error());
        return 1;
    }
    int n_in = lathe_num_inputs();
    void **inputs = calloc((size_t)n_in + 1, sizeof *inputs);
    for (int i = 0; i < n_in; i++) {
        inputs[i] = calloc(1, (size_t)lathe_input_nbytes(i) + 1);
        fill(lathe_input_dtype(i), inputs[i], count(lathe_input_ndim(i), lathe_input_shape(i)));
        if (lathe_set_input(m, i, inputs[i]) != 0) {
            fprintf(stderr, "lathe_set_input: %s\n", lathe_last_error());
            return 1;
        }
    }
    if (lathe_run(m) != 0) {
        fprintf(stderr, "lathe_run: %s\n", lathe_last_error());
        return 1;
    }
    for (int j = 0; j < lathe_num_outputs(); j++) {
        const void *p = lathe_output(m, j);
        int64_t n = count(lathe_output_ndim(j), lathe_output_shape(j));
        double sum = 0;
        for (int64_t k = 0; k < n; k++) sum += element(lathe_output_dtype(j), p, k);
        printf("%s: shape (", lathe_output_name(j));
        for (int d = 0; d < lathe_output_ndim(j); d++) printf(d ? ", %lld" : "%lld", (long long)lathe_output_shape(j)[d]);
        printf(") %s sum %.9g first %.9g\n", lathe_output_dtype(j), sum, n ? element(lathe_output_dtype(j), p, 0) : 0.0);
    }
    for (int i = 0; i < n_in; i++) free(inputs[i]);
    free(inputs);
    lathe_destroy(m);
    return 0;
}
"""
