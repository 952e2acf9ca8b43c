"""Graph-level passes: graph IR in, graph IR out, for any target.

A pass is an xDSL `ModulePass` with a kebab-case `name`; its dataclass fields are its
options (`-p 'name{opt=1}'`). Which passes exist and the standard pipelines are listed
above every layer they name, in `lathe.pipelines`.
"""

# The graph ops' canonicalization patterns are registered with the dialect when their module
# is imported; every graph pass that canonicalizes (alter-op-layout does) imports this package.
from lathe.passes import canonicalize as _canonicalize  # noqa: E402, F401
