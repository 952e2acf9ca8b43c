"""The benchmarks' timing helpers, which live in lathe.testing.timing (lathe demo times with them too),
the ONNX Runtime sessions every benchmark compares against, and the kinds a profiled kernel is
counted under (models.py's breakdown, kernel_floor.py's audit)."""

from lathe.testing.timing import fmt, interleaved_medians, warm

__all__ = ["breakdown", "fmt", "geomean", "interleaved_medians", "kernel_kind", "ort_session", "ort_sessions", "warm"]


def geomean(ratios) -> float:
    """The geometric mean: the one average of ratios that a 2x and a 0.5x cancel in."""
    import numpy as np

    return float(np.exp(np.mean(np.log(ratios))))


def ort_session(model, threads: int, spinning: bool = True):
    """ONNX Runtime as a user gets it: default session options (spinning worker threads, all
    graph optimizations), the reference every ratio is quoted against. Only the thread count
    is set, to Lathe's, so both use the same cores; `spinning=False` is the quiet variant,
    which may be printed next to the default, never instead of it."""
    import onnxruntime as ort

    blob = model if isinstance(model, bytes) else model.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])


def ort_sessions(model, threads: int):
    """The default session and the quiet one beside it (see ort_session)."""
    return ort_session(model, threads), ort_session(model, threads, spinning=False)


KINDS = ("conv", "gemm", "reduction", "elementwise", "layout", "runtime")
_CONV = {"nn.conv2d", "nn.conv2d_transpose", "nn.conv1d"}
_GEMM = {"nn.dense", "nn.contrib_dense_pack", "nn.matmul", "nn.batch_matmul", "nn.contrib_batch_matmul_pack"}
# a Winograd convolution's transforms (its GEMM counts as a GEMM): a few additions per element
# moved, as elementwise kernels do, whatever epilogue (a reduction's pattern) is fused in
_WINOGRAD = {"nn.contrib_winograd_input_transform", "nn.contrib_winograd_output_transform"}


def kernel_kind(ops: list[str]) -> str:
    """A kernel's kind from the graph ops fused into it: a convolution or a GEMM anywhere in it
    decides; else a reduction (pooling, softmax, norms, sums), else elementwise arithmetic,
    else pure data movement (a layout transform)."""
    from lathe.dialects import graph
    from lathe.dialects.graph import OpPattern

    if _CONV & set(ops):
        return "conv"
    if _GEMM & set(ops):
        return "gemm"
    if _WINOGRAD & set(ops):
        return "elementwise"
    patterns = {graph.OPS_BY_RELAY_NAME[o].PATTERN for o in ops if o in graph.OPS_BY_RELAY_NAME}
    if patterns & {OpPattern.COMM_REDUCE, OpPattern.OUT_ELEMWISE_FUSABLE, OpPattern.OPAQUE}:
        return "reduction"
    if patterns & {OpPattern.ELEMWISE, OpPattern.BROADCAST}:
        return "elementwise"
    return "layout"


def breakdown(profile, run_seconds: float) -> dict[str, float]:
    """Shares of `run_seconds` (the user-facing run()'s median) by kernel kind; what the
    kernels timed on their own do not account for is the runtime's (calls, allocations)."""
    seconds = dict.fromkeys(KINDS, 0.0)
    for row in profile.rows:
        seconds[kernel_kind([s.rsplit(" ", 1)[-1] for s in row.sources])] += row.seconds
    kernels = sum(seconds.values())
    scale = min(1.0, run_seconds / kernels) if kernels else 1.0  # kernels timed alone can sum past run()
    shares = {k: v * scale / run_seconds for k, v in seconds.items()}
    shares["runtime"] = max(0.0, 1.0 - sum(shares.values()))
    return shares
