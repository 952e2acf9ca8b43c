"""The CUDA backend on a GPU, side by side with PyTorch (and ONNX Runtime) on the same GPU.

    python benchmarks/cuda_bench.py [--quick] [--sections matmul,resnet50,bert_base] [--json FILE]

Sections (issue 15's "On a GPU"):
  matmul     4096^3 float32 (nn.matmul): Lathe against torch.matmul with TF32 off (cuBLAS);
  resnet50   the zoo's ResNet-50, batch 1, 224x224;  bert_base: BERT-base, batch 1, seq 128.
             Lathe's result is checked against ONNX Runtime on the same ONNX model and weights;
             the times are side by side with PyTorch eager on the same architecture
             (torchvision / transformers, random weights, TF32 off) and ONNX Runtime on its
             best provider (CUDA where its build has it, else the CPU: the label says which).
For every Lathe model: `run()` (inputs copied in, results copied out: what a user times) and
the kernels alone (the executor's launches on bound buffers, synchronised), and the top
kernels by time with their achieved GFLOP/s (CompiledModule.profile()). Times are medians
after a 1 s wall-clock warm-up, contenders alternating in blocks (lathe.testing.timing).
--quick uses 1024^3 and the zoo's small models (a smoke test of the script).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROWS: list[dict] = []


def _row(**kw) -> None:
    ROWS.append(kw)
    print("  " + "  ".join(f"{k}={v}" for k, v in kw.items()), flush=True)


def _torch():
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def _torch_timer(torch, fn):
    def timed():
        fn()
        torch.cuda.synchronize()

    return timed


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _lathe_rows(name: str, compiled, inputs: dict, flops: float | None, repeat: int) -> dict:
    """run() and kernels-only medians, and the top kernels' share and rate."""
    from common import interleaved_medians

    compiled.run(**inputs)  # binds the inputs for execute()
    med = interleaved_medians(
        {"run": lambda: compiled.run(**inputs), "kernels": compiled.executor.execute}, repeat=repeat
    )
    out = {"lathe_run_s": med["run"], "lathe_kernels_s": med["kernels"]}
    if flops:
        out["lathe_tflops"] = flops / med["kernels"] / 1e12
    try:
        prof = compiled.profile(**inputs, repeat=10)
        for r in prof.rows[:5]:
            _row(section=name, kernel=r.kernel, ms=round(r.seconds * 1e3, 3), gflops=round(r.gflops or 0, 1))
    except Exception as e:  # noqa: BLE001 - the table goes on without the profile
        print(f"  profile failed: {type(e).__name__}: {e}")
    return out


def matmul(args) -> None:
    from common import fmt, interleaved_medians

    import lathe
    from lathe.api import parse_source

    torch = _torch()
    n = 1024 if args.quick else 4096
    src = f"def @main(%a: Tensor[({n}, {n}), float32], %b: Tensor[({n}, {n}), float32]) {{ nn.matmul(%a, %b) }}"
    module = parse_source(src, "matmul.lathe")
    rng = np.random.default_rng()
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    t0 = time.perf_counter()
    compiled = lathe.compile(module, target=args.target)
    compile_s = time.perf_counter() - t0
    got = compiled.run(a=a, b=b)
    ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    ref = (ta.double() @ tb.double()).cpu().numpy()
    err = _rel(got, ref)
    flops = 2.0 * n**3
    lathe_t = _lathe_rows("matmul", compiled, {"a": a, "b": b}, flops, args.repeat)
    med = interleaved_medians({"torch": _torch_timer(torch, lambda: ta @ tb)}, repeat=args.repeat)
    row = {
        "section": f"matmul {n}^3 fp32",
        "compile_s": round(compile_s, 2),
        "rel_err_vs_fp64": f"{err:.1e}",
        **{k: fmt(v) if k.endswith("_s") else round(v, 2) for k, v in lathe_t.items()},
        "torch_s": fmt(med["torch"]),
        "torch_tflops": round(flops / med["torch"] / 1e12, 2),
        "kernels_over_torch": round(lathe_t["lathe_kernels_s"] / med["torch"], 2),
    }
    _row(**row)


def _ort_session(model):
    import onnxruntime as ort

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    session = ort.InferenceSession(model.SerializeToString(), providers=providers)
    return session, session.get_providers()[0].replace("ExecutionProvider", "")


def model_section(name: str, args) -> None:
    from common import fmt, interleaved_medians

    import lathe
    from models import ZOO
    from models.builder import random_inputs

    torch = _torch()
    model = ZOO[name].build(small=args.quick, seed=1, **({"seq_len": 128} if name == "bert_base" else {}))
    inputs = random_inputs(model, seed=int(time.time()) % 10000)
    module, params = lathe.from_onnx(model)
    t0 = time.perf_counter()
    compiled = lathe.compile(module, target=args.target, params=params)
    compile_s = time.perf_counter() - t0
    session, provider = _ort_session(model)
    ort_out = session.run(None, inputs)
    got = compiled.run(**inputs)
    got = got if isinstance(got, tuple) else (got,)
    err = max(_rel(g, r) for g, r in zip(got, ort_out))
    lathe_t = _lathe_rows(name, compiled, inputs, None, args.repeat)
    contenders = {"ort": lambda: session.run(None, inputs)}
    if not args.quick:
        eager = _eager_model(torch, name)
        if eager is not None:
            contenders["torch"] = _torch_timer(torch, eager)
    med = interleaved_medians(contenders, repeat=args.repeat)
    row = {
        "section": f"{name}{' (small)' if args.quick else ''}",
        "compile_s": round(compile_s, 1),
        f"rel_err_vs_ort_{provider}": f"{err:.1e}",
        **{k: fmt(v) for k, v in lathe_t.items()},
        f"ort_{provider}_s": fmt(med["ort"]),
    }
    if "torch" in med:
        row["torch_eager_s"] = fmt(med["torch"])
        row["run_over_torch"] = round(lathe_t["lathe_run_s"] / med["torch"], 2)
    _row(**row)


def _eager_model(torch, name: str):
    """PyTorch eager on the same architecture (random weights; times only)."""
    with torch.no_grad():
        if name == "resnet50":
            import torchvision

            net = torchvision.models.resnet50().eval().cuda()
            x = torch.randn(1, 3, 224, 224, device="cuda")
            return lambda: net(x)
        if name == "bert_base":
            import transformers

            net = transformers.BertModel(transformers.BertConfig()).eval().cuda()
            ids = torch.randint(0, 30522, (1, 128), device="cuda")
            mask = torch.ones(1, 128, dtype=torch.int64, device="cuda")
            return lambda: net(input_ids=ids, attention_mask=mask)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sections", default="matmul,resnet50,bert_base")
    ap.add_argument("--target", default="cuda")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", help="write every row here")
    args = ap.parse_args(argv)
    from lathe.backends.cuda.runtime import context

    ctx = context()
    print(f"GPU: {ctx.name} ({ctx.arch}), target {args.target}, {time.strftime('%Y-%m-%d')}", flush=True)
    failed = 0
    for section in args.sections.split(","):
        print(f"== {section}", flush=True)
        try:
            matmul(args) if section == "matmul" else model_section(section, args)
        except Exception:  # noqa: BLE001 - one section's failure is reported; the others still run
            failed += 1
            traceback.print_exc()
            _row(section=section, failed=True)
    if args.json:
        Path(args.json).write_text(json.dumps(ROWS, indent=1))
    print("\n== summary")
    for r in ROWS:
        if "kernel" not in r:
            print("  " + "  ".join(f"{k}={v}" for k, v in r.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
