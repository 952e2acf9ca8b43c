"""Running compiled code: the graph executor, the reference interpreter, and `load`, which
runs a deployed artifact (`lathe compile -o DIR`) with numpy, ctypes and the standard
library only. `load` is imported when first used, so that `import lathe.runtime` imports
no compiler."""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("load", "Artifact"):
        from lathe.runtime import artifact

        return getattr(artifact, name)
    raise AttributeError(f"module 'lathe.runtime' has no attribute '{name}'")
