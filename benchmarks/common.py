"""The benchmarks' timing helpers, which live in lathe.testing.timing (lathe demo times with them too),
and the ONNX Runtime sessions every benchmark compares against."""

from lathe.testing.timing import fmt, interleaved_medians, warm

__all__ = ["fmt", "interleaved_medians", "ort_session", "ort_sessions", "warm"]


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
