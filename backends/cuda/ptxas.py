"""NVIDIA's PTX assembler: where it is, and what it says of each kernel (`ptxas -v`).

ptxas turns PTX into a cubin for one architecture and reports each kernel's registers,
spills, stack frame and shared memory: the check that generated PTX is valid and the
first look at how a schedule uses the machine, both without a GPU. The system's CUDA
toolkit is used where there is one; else the `nvidia-cuda-nvcc-cu12` wheel's
(`pip install 'lathe[cuda]'`), which runs on any x86-64 or aarch64 Linux.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from lathe.errors import LatheError

INSTALL_NOTE = "pip install 'lathe[cuda]' (the nvidia-cuda-nvcc-cu12 wheel has ptxas and libdevice), or a CUDA toolkit"


def toolkit_dirs() -> list[str]:
    """CUDA toolkit roots, in the order they are searched: $CUDA_HOME / $CUDA_PATH, the
    directory above a `ptxas` on PATH, /usr/local/cuda, then the nvcc wheel's."""
    roots = [os.environ.get(v, "") for v in ("CUDA_HOME", "CUDA_PATH")]
    on_path = shutil.which("ptxas")
    if on_path:
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(on_path))))
    roots.append("/usr/local/cuda")
    try:
        import nvidia.cuda_nvcc  # the wheel: a namespace package holding bin/ and nvvm/

        roots += [os.path.join(p) for p in nvidia.cuda_nvcc.__path__]
    except ImportError:
        pass
    seen: list[str] = []
    for r in roots:
        if r and os.path.isdir(r) and r not in seen:
            seen.append(r)
    return seen


@functools.cache
def find_ptxas() -> str | None:
    """$LATHE_PTXAS, else `ptxas` on PATH (the system's), else a toolkit's bin/ptxas."""
    given = os.environ.get("LATHE_PTXAS")
    if given:
        return given if os.access(given, os.X_OK) else None
    on_path = shutil.which("ptxas")
    if on_path:
        return on_path
    for root in toolkit_dirs():
        path = os.path.join(root, "bin", "ptxas")
        if os.access(path, os.X_OK):
            return path
    return None


@functools.cache
def ptxas_version(path: str) -> str:
    """`release 13.0, V13.0.88` → "13.0"; "" when it cannot say."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"release ([0-9.]+)", out)
    return m.group(1) if m else ""


@dataclass(frozen=True)
class KernelResources:
    """What `ptxas -v` reports for one kernel."""

    name: str
    registers: int = 0
    spill_stores: int = 0  # bytes
    spill_loads: int = 0  # bytes
    stack_bytes: int = 0
    shared_bytes: int = 0
    barriers: int = 0

    @property
    def spills(self) -> bool:
        return bool(self.spill_stores or self.spill_loads)


_FUNCTION = re.compile(r"Compiling entry function '([^']+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_BARRIERS = re.compile(r"used (\d+) barriers")


def parse_report(text: str) -> list[KernelResources]:
    """ptxas -v's info lines → one record per entry function, in the order compiled."""
    rows: list[dict] = []
    for line in text.splitlines():
        if m := _FUNCTION.search(line):
            rows.append({"name": m.group(1)})
        elif not rows:
            continue
        elif m := _FRAME.search(line):
            rows[-1].update(stack_bytes=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        elif m := _USED.search(line):
            rows[-1]["registers"] = int(m.group(1))
            if s := _SMEM.search(line):
                rows[-1]["shared_bytes"] = int(s.group(1))
            if b := _BARRIERS.search(line):
                rows[-1]["barriers"] = int(b.group(1))
    return [KernelResources(**r) for r in rows]


def assemble(ptx: str, arch: str, ptxas: str | None = None) -> tuple[bytes, list[KernelResources]]:
    """PTX → a cubin for `arch` (sm_80, sm_90) and each kernel's resources. A missing ptxas or
    PTX it rejects is a LatheError (the latter is a code generation bug: its message says where)."""
    ptxas = ptxas or find_ptxas()
    if ptxas is None:
        raise LatheError("ptxas (NVIDIA's PTX assembler) was not found", note=INSTALL_NOTE)
    with tempfile.TemporaryDirectory(prefix="lathe-ptxas-") as d:
        src, out = os.path.join(d, "kernels.ptx"), os.path.join(d, "kernels.cubin")
        with open(src, "w") as f:
            f.write(ptx)
        try:
            r = subprocess.run(
                [ptxas, f"-arch={arch}", "-v", "-O3", src, "-o", out], capture_output=True, text=True, timeout=600
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise LatheError(f"ptxas failed to run: {e}", note=f"ptxas: {ptxas}") from None
        if r.returncode != 0:
            raise LatheError(
                f"ptxas rejected the PTX for {arch}: " + " ".join((r.stderr or r.stdout).strip().splitlines()[:8]),
                note=f"ptxas: {ptxas}",
            )
        with open(out, "rb") as f:
            cubin = f.read()
    return cubin, parse_report(r.stdout + r.stderr)


def resource_table(rows: list[KernelResources]) -> str:
    """A text table of `assemble`'s report, one kernel a line."""
    head = f"{'kernel':40s} {'regs':>5s} {'spill st':>9s} {'spill ld':>9s} {'stack':>6s} {'smem':>7s}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.name[:40]:40s} {r.registers:5d} {r.spill_stores:9d} {r.spill_loads:9d} "
            f"{r.stack_bytes:6d} {r.shared_bytes:7d}"
        )
    return "\n".join(lines)
