"""LLVM targets, spelled like TVM's target strings.

    llvm                                 the host (CPU name and features detected)
    llvm -mcpu=znver4                    a given CPU, host triple
    llvm -mtriple=aarch64-linux-gnu      cross-compile (object files, artifacts; run under qemu-user)
    llvm -mattr=+avx2,+fma -opt-level=2

CPU and feature names are checked against the linked LLVM's own tables (an unknown
name made LLVM abort the process); JIT code for a named CPU keeps to the features
this machine has.
"""

from __future__ import annotations

import difflib
import functools
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, replace

import llvmlite.binding as llvm

from lathe.backends.interface import parse_opt_level
from lathe.errors import LatheError


@functools.cache
def _init() -> None:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


@dataclass(frozen=True)
class LLVMTarget:
    triple: str
    cpu: str
    features: str
    opt_level: int = 3

    @property
    def is_host(self) -> bool:
        return same_machine(self.triple, llvm.get_process_triple())

    @property
    def vector_bits(self) -> int:
        """Width of the widest float vector register the CPU and features allow: read from the
        features where they name it, else from the register LLVM picks for the CPU (a named CPU
        such as znver4 implies AVX-512 without listing it)."""
        feats = set(self.features.split(","))
        if "-avx512f" not in feats and "+avx512f" in feats:
            return 512
        if "-avx" not in feats and ("+avx" in feats or "+avx2" in feats) and "-avx512f" in feats:
            return 256
        return _register_bits(self.triple, self.cpu, self.features)

    def __str__(self) -> str:
        return f"llvm -mtriple={self.triple} -mcpu={self.cpu}"

    def runnable_here(self) -> LLVMTarget:
        """The target that JIT code for this machine is built for: a CPU named with -mcpu tunes
        the code, but only features this machine has are used (code for -mcpu=diamondrapids died
        of SIGILL on an Emerald Rapids). A feature that -mattr asks for and it lacks is an error."""
        host = llvm.get_host_cpu_features()
        given = {f[1:]: f[0] for f in filter(None, self.features.split(","))}
        missing = sorted(name for name, sign in given.items() if sign == "+" and host.get(name) is False)
        if missing:
            raise LatheError(
                f"this machine cannot run code for {self} -mattr={self.features}: it lacks " + ", ".join(missing),
                note="lathe compile -o FILE.o writes code for a machine that has it",
            )
        lacking = [f"-{name}" for name, has in host.items() if not has and name not in given]
        return replace(self, features=",".join([self.features, *lacking]).strip(",")) if lacking else self

    def machine(self, jit: bool = False):
        _init()
        try:
            t = llvm.Target.from_triple(self.triple)
        except RuntimeError as e:
            raise LatheError(f"unknown target triple '{self.triple}': {e}") from None
        return t.create_target_machine(
            cpu=self.cpu,
            features=self.features,
            opt=self.opt_level,
            reloc="pic" if not jit else "default",
            codemodel="jitdefault",
            jit=jit,
        )


_OPERATING_SYSTEMS = ("linux", "windows", "darwin", "macos", "freebsd", "none")
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64"}


def same_machine(a: str, b: str) -> bool:
    """Whether two triples name one kind of machine, as spelt with or without the vendor:
    `aarch64-linux-gnu` is the `aarch64-unknown-linux-gnu` that LLVM reports on an ARM Linux
    host (it ran there under emulation, not natively, when the spellings were compared)."""

    def parts(triple: str) -> tuple[str, ...]:
        arch, *rest = triple.lower().split("-")
        if rest and rest[0] not in _OPERATING_SYSTEMS and len(rest) > 1:
            rest = rest[1:]  # the vendor: unknown, pc, apple, ...
        return (_ARCH_ALIASES.get(arch, arch), *rest)

    return parts(a) == parts(b)


# LLVM prints its CPU and feature tables for the CPU name "help"; for an unknown name it
# only warns, and later aborts the whole process ("LLVM ERROR: 64-bit code requested ..."),
# as it does for a feature without + or -. So names are checked first, against the
# tables of the LLVM actually linked, read in a child process.
_PRINT_TABLES = (
    "import sys, llvmlite.binding as llvm; llvm.initialize_all_targets(); "
    "llvm.Target.from_triple(sys.argv[1]).create_target_machine(cpu='help')"
)
_TABLE_ROW = re.compile(r"^  (\S+)\s+- ", re.MULTILINE)


@functools.cache
def known_names(triple: str) -> tuple[frozenset[str], frozenset[str]]:
    """The CPU and feature names LLVM knows for `triple`'s architecture (empty when the tables
    could not be read: then nothing is rejected)."""
    try:
        r = subprocess.run(
            [sys.executable, "-c", _PRINT_TABLES, triple], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return frozenset(), frozenset()
    text = r.stderr + r.stdout
    cpus, _, feats = text.partition("Available features for this target:")
    return frozenset(_TABLE_ROW.findall(cpus)), frozenset(_TABLE_ROW.findall(feats))


@functools.cache
def _register_bits(triple: str, cpu: str, features: str) -> int:
    """Compile one <16 x float> add for the target and see which registers hold it."""
    _init()
    mod = llvm.parse_assembly(
        "define <16 x float> @f(<16 x float> %a, <16 x float> %b) {\n"
        "  %c = fadd <16 x float> %a, %b\n  ret <16 x float> %c\n}\n"
    )
    try:
        tm = llvm.Target.from_triple(triple).create_target_machine(cpu=cpu, features=features, opt=2)
        asm = tm.emit_assembly(mod)
    except RuntimeError:
        return 128
    if re.search(r"%?zmm\d", asm):
        return 512
    if re.search(r"%?ymm\d", asm):
        return 256
    return 128


def _unknown(what: str, name: str, known: frozenset[str], triple: str) -> LatheError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return LatheError(f"unknown {what} '{name}' for {triple}", note=f"{hint}known {what}s: {', '.join(sorted(known))}")


def check_names(triple: str, cpu: str | None, attrs: str | None) -> None:
    """Reject what LLVM would abort on: an unknown CPU, an unknown feature, a feature not
    spelled +name or -name."""
    cpus, feats = known_names(triple)
    if cpu is not None and cpus and cpu not in cpus:
        raise _unknown("CPU", cpu, cpus, triple)
    for item in filter(None, (attrs or "").split(",")):
        if item[0] not in "+-":
            raise LatheError(f"-mattr: feature '{item}' must be spelled +{item} (enable) or -{item} (disable)")
        if feats and item[1:] not in feats:
            raise _unknown("feature", item[1:], feats, triple)


def parse_target(spec: str | LLVMTarget = "llvm") -> LLVMTarget:
    if isinstance(spec, LLVMTarget):
        return spec
    _init()
    try:
        words = shlex.split(spec)
    except ValueError as e:
        raise LatheError(f"malformed target string '{spec}': {e}") from None
    if not words or words[0] != "llvm":
        raise LatheError(
            f"unknown target '{spec}'", note="expected 'llvm' with options -mcpu=, -mtriple=, -mattr=, -opt-level="
        )
    triple, cpu, attrs, opt = llvm.get_process_triple(), None, None, 3
    for w in words[1:]:
        key, _, value = w.partition("=")
        if not value:
            raise LatheError(f"target option '{w}' needs a value", note="e.g. -mcpu=znver4")
        if key == "-mtriple":
            triple = value
        elif key == "-mcpu":
            cpu = value
        elif key == "-mattr":
            attrs = value
        elif key == "-opt-level":
            opt = parse_opt_level(value)
        else:
            raise LatheError(f"unknown target option '{key}'", note="known: -mcpu, -mtriple, -mattr, -opt-level")
    try:
        llvm.Target.from_triple(triple)
    except RuntimeError as e:
        raise LatheError(f"unknown target triple '{triple}': {str(e).strip()}") from None
    if cpu is not None or attrs is not None:
        check_names(triple, cpu, attrs)
    host = same_machine(triple, llvm.get_process_triple())
    if cpu is None:
        cpu = llvm.get_host_cpu_name() if host else "generic"
    if attrs is None:
        attrs = llvm.get_host_cpu_features().flatten() if host and cpu == llvm.get_host_cpu_name() else ""
    return LLVMTarget(triple, cpu, attrs, opt)
