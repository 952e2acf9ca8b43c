"""Which backends are installed: the `lathe.backends` entry-point group.

Lathe's own backends are found the same way as a third party's (pyproject.toml
declares them in the group), so nothing above `backends/` names a backend.
An entry point names a `Backend` subclass; one that fails to import is listed
with its error and named in the error of anyone who asks for it.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from lathe.backends.interface import Backend, BackendInfo, Target, split_target_string
from lathe.errors import LatheError

ENTRY_POINT_GROUP = "lathe.backends"


@functools.cache
def _discovered() -> dict[str, tuple[str, Backend | None, str | None]]:
    """name → (source, backend or None, error)."""
    found: dict[str, tuple[str, Backend | None, str | None]] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        source = f"{ep.value} ({ep.dist.name if ep.dist else 'unknown package'})"
        try:
            cls = ep.load()
            backend = cls() if isinstance(cls, type) else cls
            if not isinstance(backend, Backend):
                raise TypeError(f"{ep.value} is not a lathe Backend")
            found[ep.name] = (source, backend, None)
        except Exception as e:  # noqa: BLE001 - a broken plug-in must not break Lathe: it is reported instead
            found[ep.name] = (source, None, f"{type(e).__name__}: {e}")
    return found


def installed() -> list[BackendInfo]:
    rows = []
    for name, (source, backend, error) in _discovered().items():
        if backend is None:
            rows.append(BackendInfo(name, "?", (), "failed to load", source=source, error=error))
            continue
        try:
            status = backend.status()
        except Exception as e:  # noqa: BLE001 - a plug-in's failing status is shown, not raised
            status = f"status failed: {type(e).__name__}: {e}"
        rows.append(
            BackendInfo(name, backend.version, tuple(backend.target_kinds), status, backend.description, source)
        )
    return rows


def target_kinds() -> list[str]:
    """The target kinds of the backends that loaded, without asking any for its status (which
    may load a driver or run a compiler: a second of each lathe-opt's start went there)."""
    return sorted({k for _, b, _e in _discovered().values() if b is not None for k in b.target_kinds})


def _names() -> str:
    return ", ".join(f"{n}" + ("" if b else " (failed to load)") for n, (_, b, _e) in _discovered().items()) or "none"


def get_backend(name: str) -> Backend:
    entry = _discovered().get(name)
    if entry is None:
        raise LatheError(f"no backend named '{name}' is installed", note=f"installed: {_names()}")
    source, backend, error = entry
    if backend is None:
        raise LatheError(f"backend '{name}' failed to load: {error}", note=f"from {source}")
    return backend


def backend_for_kind(kind: str) -> Backend:
    for _, backend, _e in _discovered().values():
        if backend is not None and kind in backend.target_kinds:
            return backend
    for name, (source, backend, error) in _discovered().items():
        if backend is None and name == kind:
            raise LatheError(f"backend '{name}' for target '{kind}' failed to load: {error}", note=f"from {source}")
    raise LatheError(
        f"unknown target '{kind}'",
        note=f"installed targets: {', '.join(target_kinds()) or 'none'} (backends: {_names()})",
    )


def resolve_target(spec: str | Target = "llvm") -> tuple[Backend, Target]:
    """A target string (or Target) → the backend that owns its kind, and the parsed Target."""
    if isinstance(spec, Target):
        return backend_for_kind(spec.kind), spec
    kind, options = split_target_string(spec)
    backend = backend_for_kind(kind)
    normalised = " ".join([kind] + [f"{k}={v}" for k, v in options.items()])
    return backend, backend.parse_target(kind, options).with_(spec=normalised)
