"""The CUDA backend's NVPTX IR run on the CPU, one thread after another: a numeric check of
its code generator where there is no GPU (tests/test_cuda_backend.py).

The backend's IR in its `serial_threads` form (a block's threads as loops over their
extents, barriers then needless: PoCL's work-group loops) is retargeted to the host: the
block id intrinsics read globals that a wrapper per launch sets while it runs the blocks in
turn, libdevice's `__nv_expf` is libm's `expf`, and address spaces 1 and 3 are plain memory
(x86 treats casts between them as no-ops). What this checks is what the code generator
decides: launches, grids, block guards, indexing, shared memory and scratch buffers, the
LLVM emitter's loops and arithmetic, the libdevice calls; not how a thread id is read, nor
NVPTX's own lowering (the lit tests and ptxas cover those).
"""

from __future__ import annotations

import re

import llvmlite.binding as llvm
from xdsl.dialects.builtin import ModuleOp

from lathe.backends.cuda.codegen import SREG, module_to_nvptx_ir
from lathe.backends.interface import KernelLibrary


def serial_ir(module: ModuleOp) -> tuple[str, list]:
    ir, plans = module_to_nvptx_ir(module, serial_threads=True)
    lines = []
    for reg in SREG.values():
        lines.append(f"@emu.{reg} = internal global i32 0")
        lines.append(f"define internal i32 @emu.sreg.{reg}() {{\n  %v = load i32, ptr @emu.{reg}\n  ret i32 %v\n}}")
    ir = re.sub(r"^declare i32 @llvm\.nvvm\.read\.ptx\.sreg\.\S+\(\)\n", "", ir, flags=re.MULTILINE)
    ir = ir.replace("@llvm.nvvm.read.ptx.sreg.", "@emu.sreg.").replace("@__nv_", "@")
    # without the annotations: LLVM would make the launches ptx_kernel functions, which a
    # C call may not reach (the optimiser turns such a call into a trap)
    ir = re.sub(r"^!nvvm\.annotations = .*\n", "", ir, flags=re.MULTILINE)
    wrapped: set[str] = set()  # kernels identical to an earlier one share its launches
    for plan in plans:
        for la in plan.launches:
            if la.entry not in wrapped:
                wrapped.add(la.entry)
                lines.append(_serial_wrapper(la, plan.arity))
        calls = "\n".join(f"  call void @{la.entry}__serial(ptr %args)" for la in plan.launches)
        lines.append(f"define void @{plan.name}__packed(ptr %args) {{\nentry:\n{calls}\n  ret void\n}}")
    return ir + "\n" + "\n".join(lines) + "\n", plans


def _serial_wrapper(launch, arity: int) -> str:
    """`void entry__serial(ptr args)`: the launch's blocks in turn, each a call (that runs its
    threads as loops)."""
    gx, gy, gz = launch.grid
    total = gx * gy * gz
    body = []
    for k in range(arity):
        body += [
            f"  %pp{k} = getelementptr ptr, ptr %args, i64 {k}",
            f"  %p{k} = load ptr, ptr %pp{k}",
            f"  %g{k} = addrspacecast ptr %p{k} to ptr addrspace(1)",
        ]
    body += ["  br label %head", "head:", "  %i = phi i64 [ 0, %entry ], [ %next, %run ]"]
    body += [f"  %more = icmp slt i64 %i, {total}", "  br i1 %more, label %run, label %done", "run:"]
    rest = "%i"
    for n, (reg, size) in enumerate([("ctaid.x", gx), ("ctaid.y", gy), ("ctaid.z", gz)]):
        body += [
            f"  %id{n} = urem i64 {rest}, {size}",
            f"  %q{n} = udiv i64 {rest}, {size}",
            f"  %id{n}.32 = trunc i64 %id{n} to i32",
            f"  store i32 %id{n}.32, ptr @emu.{reg}",
        ]
        rest = f"%q{n}"
    args = ", ".join(f"ptr addrspace(1) %g{k}" for k in range(arity))
    body += [
        f"  call void @{launch.entry}({args})",
        "  %next = add i64 %i, 1",
        "  br label %head",
        "done:",
        "  ret void",
    ]
    return f"define void @{launch.entry}__serial(ptr %args) {{\nentry:\n" + "\n".join(body) + "\n}"


class SerialKernels(KernelLibrary):
    """The kernels, JIT-compiled for this CPU; `address(name)` is the packed entry the
    executor calls, which runs the kernel's launches in order."""

    def __init__(self, module: ModuleOp):
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        text, self.plans = serial_ir(module)
        self.tm = tm = llvm.Target.from_default_triple().create_target_machine(opt=2, jit=True)
        mod = llvm.parse_assembly(text)
        mod.triple = llvm.get_process_triple()
        mod.data_layout = str(tm.target_data)
        mod.verify()
        pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=2))
        pb.getModulePassManager().run(mod, pb)
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()

    def address(self, name: str) -> int:
        return self.engine.get_function_address(f"{name}__packed")


def run_serially(module: ModuleOp, inputs: dict, params: dict | None = None):
    """`module` through the CUDA target's pipeline (GPU schedules, weights bound as constants,
    as lathe.compile binds them), its kernels run serially here by the graph executor."""
    from xdsl.dialects import func

    from lathe.api import lower
    from lathe.backends.registry import resolve_target
    from lathe.dialects.functions import is_kernel, param_names
    from lathe.passes.fold_constant import bind_params
    from lathe.pipelines import pipeline_for, with_pass_options
    from lathe.runtime.graph_executor import GraphExecutor

    backend, target = resolve_target("cuda")
    if params:
        module = bind_params(module.clone(), params, "main")
    main = next(f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
    pipeline = with_pass_options(pipeline_for(3, module), backend.graph_pass_options(target))
    loop = lower(module, pipeline=pipeline)
    kernels = SerialKernels(loop)
    addresses = {f.sym_name.data: kernels.address(f.sym_name.data) for f in loop.ops if is_kernel(f)}
    executor = GraphExecutor(loop, addresses, "main", {}, param_names(main), library=kernels)
    return executor.run(**inputs)
