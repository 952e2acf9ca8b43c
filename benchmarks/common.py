"""The benchmarks' timing helpers, which live in lathe.testing.timing (lathe demo times with them too)."""

from lathe.testing.timing import fmt, interleaved_medians, warm

__all__ = ["fmt", "interleaved_medians", "warm"]
