"""fuse-ops: TVM's FuseOps over the OpPattern categories, with post-dominators.

Every compute op of a glue function lands in exactly one group, and each group
is outlined as one kernel (`outline_group`), so a fused group lowers to one
loop-level function. The rules, as in TVM:

  * phase 0 — an out-elemwise-fusable op (conv2d, dense, pooling) absorbs the
    elementwise/broadcast ops up to its immediate post-dominator when every path
    there is elementwise or broadcast (conv2d + bias_add + scale + relu + a
    residual add become one kernel); an elementwise/broadcast op joins its
    post-dominator's group when that group is injective or a reduction and the
    paths are injective (a chain of injective ops joins the reduction it feeds);
  * phase 1 — injective and tuple ops join an injective post-dominator;
  * opaque ops (softmax, layer_norm, ...) are kernels of their own;
  * a group never grows beyond `max_depth` ops.
A value used outside the function (returned, or put into a tuple) has no
post-dominator inside it, so its producer ends a group. At opt_level 0 no
fusion happens: every op is its own kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from lathe.dialects import graph
from lathe.dialects.graph import OpPattern
from lathe.passes.outline import is_kernel, kernel_name, outline_group

_GLUE = (graph.ConstantOp, graph.TupleOp, graph.TupleGetItemOp)


class _Groups:
    """Union-find over ops; each root carries the group's pattern and size."""

    def __init__(self, nodes: list[Operation]):
        self.parent = {n: n for n in nodes}
        self.pattern = {n: n.PATTERN for n in nodes}  # type: ignore[attr-defined]
        self.size = {n: 1 for n in nodes}

    def find(self, n: Operation) -> Operation:
        while self.parent[n] is not n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def union(self, child: Operation, parent: Operation) -> None:
        a, b = self.find(child), self.find(parent)
        if a is b:
            return
        self.parent[a] = b
        self.pattern[b] = max(self.pattern[a], self.pattern[b])
        self.size[b] += self.size[a]


def _post_dominators(nodes: list[Operation], consumers: dict[Operation, list[Operation | None]]):
    """Immediate post-dominator of each node in the DAG (None: the function's exit)."""
    ipdom: dict[Operation, Operation | None] = {}
    depth: dict[Operation | None, int] = {None: 0}

    def lca(a: Operation | None, b: Operation | None) -> Operation | None:
        while a is not b:
            if depth[a] < depth[b]:
                b = ipdom[b]  # type: ignore[index]
            elif depth[a] > depth[b]:
                a = ipdom[a]  # type: ignore[index]
            else:
                a, b = ipdom[a], ipdom[b]  # type: ignore[index]
        return a

    for n in reversed(nodes):  # consumers come later in program order
        cs = consumers[n]
        dom: Operation | None
        if not cs or any(c is None for c in cs):
            dom = None
        else:
            dom = cs[0]
            for c in cs[1:]:
                dom = lca(dom, c)
        ipdom[n] = dom
        depth[n] = depth[dom] + 1
    return ipdom


@dataclass(frozen=True)
class FuseOps(ModulePass):
    """Group compute ops by TVM's fusion rules and outline each group as a kernel."""

    name = "fuse-ops"
    max_depth: int = 256
    opt_level: int = 2

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in [f for f in op.ops if isinstance(f, func.FuncOp) and not is_kernel(f)]:
            self.fuse_function(op, fn)

    def fuse_function(self, module: ModuleOp, fn: func.FuncOp) -> None:
        nodes = [o for o in fn.body.block.ops if isinstance(o, graph.GraphOp) and not isinstance(o, _GLUE)]
        node_set = set(nodes)
        consumers: dict[Operation, list[Operation | None]] = {}
        for n in nodes:
            uses = [u.operation for r in n.results for u in r.uses]
            # a use by glue (return, tuple, call) escapes: no post-dominator inside the function
            consumers[n] = [u if u in node_set else None for u in uses]
        groups = _Groups(nodes)
        if self.opt_level > 0:
            ipdom = _post_dominators(nodes, consumers)
            for phase in (0, 1):
                for n in nodes:
                    self._try_fuse(n, ipdom, consumers, groups, phase)
        members: dict[Operation, list[Operation]] = {}
        for n in nodes:
            members.setdefault(groups.find(n), []).append(n)
        for ops in sorted(members.values(), key=lambda g: nodes.index(g[-1])):
            outline_group(fn, ops, kernel_name(module, ops))
        for o in reversed(list(fn.body.block.ops)):  # constants and tuples now used only inside kernels
            if isinstance(o, graph.ConstantOp | graph.TupleOp) and not o.results[0].uses:
                Rewriter.erase_op(o)

    def _try_fuse(self, n, ipdom, consumers, groups: _Groups, phase: int) -> None:
        dom = ipdom[n]
        if dom is None or groups.find(n) is groups.find(dom):
            return
        pattern = groups.pattern[groups.find(n)]
        dom_pattern = groups.pattern[groups.find(dom)]
        if pattern == OpPattern.OPAQUE:
            return
        if phase == 0:
            if pattern == OpPattern.OUT_ELEMWISE_FUSABLE:
                ok = dom_pattern <= OpPattern.BROADCAST and self._path_ok(n, dom, consumers, groups, OpPattern.BROADCAST)
            elif pattern <= OpPattern.BROADCAST:
                ok = (dom_pattern <= OpPattern.INJECTIVE or dom_pattern == OpPattern.COMM_REDUCE) and self._path_ok(
                    n, dom, consumers, groups, OpPattern.INJECTIVE)
            else:
                ok = False
        else:
            ok = pattern in (OpPattern.INJECTIVE, OpPattern.TUPLE) and dom_pattern <= OpPattern.INJECTIVE and \
                self._path_ok(n, dom, consumers, groups, OpPattern.INJECTIVE)
        if ok:
            path = self._path(n, dom, consumers)
            root = groups.find(dom)
            total = groups.size[root] + sum(groups.size[groups.find(p)] for p in {groups.find(p) for p in path} if p is not root)
            if total > self.max_depth:
                return
            for p in path:
                groups.union(p, dom)

    @staticmethod
    def _path(n, dom, consumers) -> list[Operation]:
        """Every node on a path from n to dom, excluding dom."""
        seen: list[Operation] = []
        stack = [n]
        while stack:
            x = stack.pop()
            if x is dom or x in seen:
                continue
            seen.append(x)
            stack.extend(c for c in consumers[x] if c is not None)
        return seen

    def _path_ok(self, n, dom, consumers, groups: _Groups, limit: OpPattern) -> bool:
        """Every node strictly after n on the way to dom (and dom) has pattern <= limit."""
        for x in self._path(n, dom, consumers):
            if x is n:
                continue
            if groups.pattern[groups.find(x)] > limit:
                return False
            if any(c is None for c in consumers[x]):
                return False
        return groups.pattern[groups.find(dom)] <= limit or (
            limit == OpPattern.INJECTIVE and groups.pattern[groups.find(dom)] == OpPattern.COMM_REDUCE)
