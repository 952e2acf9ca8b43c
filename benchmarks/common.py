"""The benchmarks' timing helpers, which live in lathe.testing.timing (lathe demo times with them too),
and the ONNX Runtime sessions every benchmark compares against."""

from lathe.testing.timing import fmt, interleaved_medians, warm

__all__ = ["fmt", "interleaved_medians", "ort_sessions", "warm"]


def ort_sessions(model, threads: int):
    """ONNX Runtime as a user gets it (default session options: spinning worker threads, all
    graph optimizations), and beside it the same session with spinning off.

    The default session is the reference every ratio is quoted against; the quiet one may be
    printed next to it, never instead of it. Only the thread count is set, to Lathe's, so both
    use the same cores."""
    import onnxruntime as ort

    blob = model if isinstance(model, bytes) else model.SerializeToString()
    default = ort.SessionOptions()
    default.intra_op_num_threads = threads
    quiet = ort.SessionOptions()
    quiet.intra_op_num_threads = threads
    quiet.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    return (
        ort.InferenceSession(blob, default, providers=providers),
        ort.InferenceSession(blob, quiet, providers=providers),
    )
