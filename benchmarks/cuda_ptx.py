"""The CUDA backend without a GPU: every zoo model's kernels through the GPU schedules to PTX,
assembled by ptxas for each architecture, with each kernel's registers and spills.

    python benchmarks/cuda_ptx.py [--arch sm_80,sm_90] [--models resnet18,...] [--full] [-v]

Per model and architecture: kernels, launches, PTX size, the time to PTX and to a cubin,
the most registers any kernel uses, and the kernels that spill (none is the bar). -v
prints every kernel's `ptxas -v` line. Needs ptxas (the system's, or the
nvidia-cuda-nvcc-cu12 wheel's: pip install 'lathe[cuda]').
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import lathe
    from lathe.backends.cuda.codegen import module_to_nvptx_ir
    from lathe.backends.cuda.ptx import to_ptx
    from lathe.backends.cuda.ptxas import assemble, find_ptxas, ptxas_version, resource_table
    from lathe.backends.registry import resolve_target
    from lathe.pipelines import DEFAULT_OPT_LEVEL, pipeline_for, with_pass_options
    from models import ZOO

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="sm_80,sm_90")
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--full", action="store_true", help="full-size models (default: the small test variants)")
    ap.add_argument("-v", "--verbose", action="store_true", help="every kernel's registers and spills")
    args = ap.parse_args(argv)
    ptxas = find_ptxas()
    if ptxas is None:
        print("ptxas not found: pip install 'lathe[cuda]'", file=sys.stderr)
        return 1
    print(f"ptxas {ptxas} (CUDA {ptxas_version(ptxas)})")
    print(
        f"{'model':14s} {'arch':6s} {'kernels':>7s} {'launches':>8s} {'PTX KiB':>8s} {'to PTX':>7s} "
        f"{'ptxas':>7s} {'max regs':>8s}  spilling kernels"
    )
    failed = 0
    for name in args.models.split(","):
        module, _ = lathe.from_onnx(ZOO[name].build(small=not args.full, seed=1))
        backend, target = resolve_target("cuda")
        loop = lathe.lower(
            module,
            pipeline=with_pass_options(pipeline_for(DEFAULT_OPT_LEVEL, module), backend.graph_pass_options(target)),
        )
        ir, plans = module_to_nvptx_ir(loop)
        for arch in args.arch.split(","):
            t0 = time.perf_counter()
            ptx = to_ptx(ir, arch)
            t1 = time.perf_counter()
            try:
                _, rows = assemble(ptx, arch)
            except lathe.LatheError as e:
                print(f"{name:14s} {arch:6s} FAILED: {e.message}")
                failed += 1
                continue
            t2 = time.perf_counter()
            spilling = [r.name for r in rows if r.spills]
            print(
                f"{name:14s} {arch:6s} {len(plans):7d} {sum(len(p.launches) for p in plans):8d} "
                f"{len(ptx) / 1024:8.0f} {t1 - t0:6.2f}s {t2 - t1:6.2f}s {max(r.registers for r in rows):8d}  "
                f"{', '.join(spilling) or 'none'}",
                flush=True,
            )
            if args.verbose:
                print(resource_table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
