"""The graph dialect (moving into a package by op family)."""

from lathe.dialects.graph.core import *  # noqa: F403
