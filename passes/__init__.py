"""Graph-level passes: graph IR in, graph IR out, for any target.

A pass is an xDSL `ModulePass` with a kebab-case `name`; its dataclass fields are its
options (`-p 'name{opt=1}'`). Which passes exist and the standard pipelines are listed
above every layer they name, in `lathe.pipelines`.
"""
