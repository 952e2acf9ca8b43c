"""LLVM targets, spelled like TVM's target strings.

    llvm                                 the host (CPU name and features detected)
    llvm -mcpu=znver4                    a given CPU, host triple
    llvm -mtriple=aarch64-linux-gnu      cross-compile (object files only)
    llvm -mattr=+avx2,+fma -opt-level=2
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass

import llvmlite.binding as llvm

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
        return self.triple == llvm.get_process_triple()

    @property
    def vector_bits(self) -> int:
        """Width of the widest float vector register the features allow."""
        feats = set(self.features.split(","))
        if "+avx512f" in feats:
            return 512
        if "+avx" in feats or "+avx2" in feats:
            return 256
        return 128

    def __str__(self) -> str:
        return f"llvm -mtriple={self.triple} -mcpu={self.cpu}"

    def machine(self, jit: bool = False):
        _init()
        try:
            t = llvm.Target.from_triple(self.triple)
        except RuntimeError as e:
            raise LatheError(f"unknown target triple '{self.triple}': {e}") from None
        return t.create_target_machine(cpu=self.cpu, features=self.features, opt=self.opt_level,
                                       reloc="pic" if not jit else "default", codemodel="jitdefault", jit=jit)


def parse_target(spec: str | LLVMTarget = "llvm") -> LLVMTarget:
    if isinstance(spec, LLVMTarget):
        return spec
    _init()
    try:
        words = shlex.split(spec)
    except ValueError as e:
        raise LatheError(f"malformed target string '{spec}': {e}") from None
    if not words or words[0] != "llvm":
        raise LatheError(f"unknown target '{spec}'", note="expected 'llvm' with options -mcpu=, -mtriple=, -mattr=, -opt-level=")
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
            if value not in "0123" or len(value) != 1:
                raise LatheError(f"-opt-level must be 0..3, got '{value}'")
            opt = int(value)
        else:
            raise LatheError(f"unknown target option '{key}'", note="known: -mcpu, -mtriple, -mattr, -opt-level")
    host = triple == llvm.get_process_triple()
    if cpu is None:
        cpu = llvm.get_host_cpu_name() if host else "generic"
    if attrs is None:
        attrs = llvm.get_host_cpu_features().flatten() if host and cpu == llvm.get_host_cpu_name() else ""
    return LLVMTarget(triple, cpu, attrs, opt)
