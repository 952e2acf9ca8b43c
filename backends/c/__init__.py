"""The portable C backend (see backend.py)."""

from lathe.backends.c.backend import CBackend

__all__ = ["CBackend"]
