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
  * opaque ops (softmax, layer_norm, ...) are kernels of their own, but for one rule of
    Lathe's, applied first: a softmax over the last axis of a packed batch_matmul, through
    the elementwise ops between them (attention's scale and mask), is one group with it,
    so the scores go from the register tiles to the rows' max, exp and sum in cache,
    never through memory (`_attention_rows`; the dense_pack template schedules it), and
    with enough heads the reshapes and transposes that pack K join it (`_weight_packing`);
  * likewise the reshapes and transposes that pack a run-time weight join a large enough
    packed dense, matmul or batch_matmul (`_gemm_packing`; attention's P.V): each thread
    packs its panels (a batch_matmul's: of its (head, panel) tasks) just before using them,
    as OpenBLAS does, instead of a kernel writing the whole packed weight first;
  * a group never grows beyond `max_depth` ops.
A value used outside the function (returned, or put into a tuple) has no
post-dominator inside it, so its producer ends a group. At opt_level 0 no
fusion happens: every op is its own kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from lathe.dialects import graph
from lathe.dialects.functions import glue_functions, is_compute
from lathe.dialects.graph import OpPattern
from lathe.passes.outline import KernelNamer, outline_group


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


class _PostDominatorTree:
    """Immediate post-dominators of a DAG (None: the function's exit), as TVM's
    DominatorTree: a node's ipdom is the LCA of its consumers in the tree built so
    far. The LCA climbs binary-lifting jump pointers, so a node costs O(consumers ·
    log depth) and the whole tree is near-linear, whatever the shape of the graph."""

    def __init__(self, nodes: list[Operation], consumers: dict[Operation, list[Operation | None]]):
        self.ipdom: dict[Operation, Operation | None] = {}
        self.depth: dict[Operation | None, int] = {None: 0}
        self.jumps: dict[Operation, list[Operation | None]] = {}  # jumps[n][k]: the 2^k-th ancestor
        for n in reversed(nodes):  # consumers come later in program order
            cs = consumers[n]
            dom: Operation | None = None
            if cs and all(c is not None for c in cs):
                dom = cs[0]
                for c in cs[1:]:
                    dom = self.lca(dom, c)
            self._attach(n, dom)

    def _attach(self, n: Operation, dom: Operation | None) -> None:
        self.ipdom[n] = dom
        self.depth[n] = self.depth[dom] + 1
        jumps: list[Operation | None] = [dom]
        while jumps[-1] is not None and len(self.jumps[jumps[-1]]) >= len(jumps):
            jumps.append(self.jumps[jumps[-1]][len(jumps) - 1])
        self.jumps[n] = jumps

    def _up(self, a: Operation | None, steps: int) -> Operation | None:
        k = 0
        while steps and a is not None:
            if steps & 1:
                a = self.jumps[a][k]
            steps >>= 1
            k += 1
        return a

    def lca(self, a: Operation | None, b: Operation | None) -> Operation | None:
        if self.depth[a] < self.depth[b]:
            a, b = b, a
        a = self._up(a, self.depth[a] - self.depth[b])
        if a is b:
            return a
        for k in reversed(range(len(self.jumps[a]))):  # type: ignore[index]
            ja, jb = self.jumps[a], self.jumps[b]  # type: ignore[index]
            if k < len(ja) and k < len(jb) and ja[k] is not jb[k]:
                a, b = ja[k], jb[k]
        return self.ipdom[a]  # type: ignore[index]


# Heads (batch entries) an attention's batch_matmul needs for its K packing to join the kernel,
# whose threads then take whole heads: fewer would leave threads without work. fuse-ops does
# not know the threads (the backend's graph_pass_options do not give them). Two heads a thread
# sufficed at 2 threads (the row alone, one process, load 2.1-2.3: 4 heads 0.56-0.64x, 6 heads
# 0.63x; 2-3 heads and one thread level), but the zoo transformer's 4-head run() with the bound
# lowered to 4 was level (0.98-1.04x, five runs of alternating blocks), so it stays.
ATTENTION_PACK_MIN_HEADS = 8
# The ops of K's packing that join the attention kernel: pure data movement, which the kernel's
# pack stage does as tile transposes in registers. Arithmetic before them (K's bias) stays in
# the epilogue of the dense that computes K, where it costs nothing extra.
PACKING_OPS = (graph.ReshapeOp, graph.TransposeOp)
# A packed dense/matmul whose weight is packed at run time takes the packing into its kernel
# with at least this many weight panels (the threads take panels: fewer leave them idle) and
# rows (each packed panel then serves several register tiles). matmul 1024^3 with both operands
# at run time, 2 threads, Zen 4: run() 0.94-0.95x of the separate pack kernel's (docs/tuning.md);
# 64 rows (64x1024x1024, 96x512x2048) 0.87-0.92x at one thread (CPU time), 32 rows 1.07-1.09x.
GEMM_PACK_MIN_PANELS = 8
GEMM_PACK_MIN_ROWS = 64
# ... and a depth of at most this: a register tile's rows of data (8 x depth, 32 KiB in f32 at
# 1024) then stay in L1 while the task's panels take turns with them, and the panels (a buffer
# on the thread's stack) stay small. 2048^3 lost 1.00-1.06x (2 threads, wall) and 1.02-1.025x
# (one thread, CPU time), where 1024^3 and 768-deep GEMMs gained.
GEMM_PACK_MAX_DEPTH = 1024


@dataclass(frozen=True)
class FuseOps(ModulePass):
    """Group compute ops by TVM's fusion rules and outline each group as a kernel."""

    name = "fuse-ops"
    max_depth: int = 256
    opt_level: int = 2
    gemm_pack: bool = True  # False: a run-time weight's packing stays a kernel of its own (_gemm_packing)
    batch_pack: bool = True  # False: likewise for a batch_matmul no softmax joins (attention's P.V)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in glue_functions(op):
            self.fuse_function(op, fn)

    def fuse_function(self, module: ModuleOp, fn: func.FuncOp) -> None:
        nodes = [o for o in fn.body.block.ops if is_compute(o)]
        node_set = set(nodes)
        consumers: dict[Operation, list[Operation | None]] = {}
        for n in nodes:
            uses = [u.operation for r in n.results for u in r.uses]
            # a use by glue (return, tuple, call) escapes: no post-dominator inside the function
            consumers[n] = [u if u in node_set else None for u in uses]
        groups = _Groups(nodes)
        if self.opt_level > 0:
            for n in nodes:
                self._attention_rows(n, consumers, groups)
            for n in nodes:
                if groups.size[groups.find(n)] == 1:  # an attention row's weight is _weight_packing's
                    for c in self._gemm_packing(n, consumers):
                        groups.union(c, n)
            ipdom = _PostDominatorTree(nodes, consumers).ipdom
            for phase in (0, 1):
                for n in nodes:
                    self._try_fuse(n, ipdom, consumers, groups, phase)
        members: dict[Operation, list[Operation]] = {}
        for n in nodes:
            members.setdefault(groups.find(n), []).append(n)
        position = {n: k for k, n in enumerate(nodes)}
        namer = KernelNamer(module)
        for ops in sorted(members.values(), key=lambda g: position[g[-1]]):
            outline_group(fn, ops, namer(ops))
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
                limit = OpPattern.BROADCAST if dom_pattern <= OpPattern.BROADCAST else None
            elif pattern <= OpPattern.BROADCAST:
                ok = dom_pattern <= OpPattern.INJECTIVE or dom_pattern == OpPattern.COMM_REDUCE
                limit = OpPattern.INJECTIVE if ok else None
            else:
                limit = None
        else:
            ok = pattern in (OpPattern.INJECTIVE, OpPattern.TUPLE) and dom_pattern <= OpPattern.INJECTIVE
            limit = OpPattern.INJECTIVE if ok else None
        if limit is None or not self._dom_ok(dom, groups, limit):
            return
        path = self._fusable_path(n, dom, consumers, groups, limit)
        if path is not None:
            for p in path:
                groups.union(p, dom)

    def _attention_rows(self, n, consumers, groups: _Groups) -> None:
        """A softmax over the last axis, the elementwise ops before it (attention's scale and
        mask) and the packed batch_matmul they start from become one group, before TVM's
        phases (which would give the mask's computation the add that reads it, when only one
        add does) and opaque to them. Each op of the chain has the softmax's shape and one
        consumer, the next; its other operands (the mask, the scale) are read, not fused.
        Attention's scores are a 12x128x128 tensor at BERT's seq 128 that a separate softmax
        reads back from memory (the write and the read cost more than the softmax's
        arithmetic; fused, the attention row's run() was 0.79-0.88x of the unfused kernels')."""
        if not isinstance(n, graph.SoftmaxOp):
            return
        scores = n.operands[0].type
        rank = len(graph.shape_of(scores))
        if rank < 2 or graph.normalize_axis("", n.attrs()["axis"], rank) != rank - 1:
            return
        chain, user = [n], n
        p = n.operands[0].owner
        while p in consumers and consumers[p] == [user] and len(chain) < self.max_depth:
            if isinstance(p, graph.BatchMatmulPackOp):
                if p.result.type == scores:
                    for c in [*chain, *self._weight_packing(p, consumers)]:
                        groups.union(c, p)
                return
            main = [v for v in p.operands if v.type == scores]
            if p.PATTERN > OpPattern.BROADCAST or len(p.results) != 1 or p.results[0].type != scores or len(main) != 1:
                return
            chain.append(p)
            user, p = p, main[0].owner

    def _weight_packing(self, bmm: graph.BatchMatmulPackOp, consumers) -> list[Operation]:
        """The reshapes and transposes that compute the packed weight of an attention's
        batch_matmul from run-time values (K's split into heads and its packing to
        [heads, n / bn, k, bn]), each with one consumer, the next, where there are at least
        ATTENTION_PACK_MIN_HEADS heads: in the attention kernel, whose threads then take whole
        heads, each packs its head's K into a local buffer that stays in its own core's cache.
        As a kernel of its own the pack wrote the packed K from both cores and the attention
        kernel read about half of it from the other core's cache (12x128x64 at two threads:
        the two kernels took 28 us more run together than their times apart). A weight bound
        at compile time is a constant by now and has no such ops. Heads, not panels as in
        _gemm_packing: a row's softmax needs every column, so the threads cannot split a head."""
        if graph.shape_of(bmm.tensor_b.type)[0] < ATTENTION_PACK_MIN_HEADS:
            return []
        return self._packing_chain(bmm, bmm.tensor_b, consumers)

    def _gemm_packing(self, n, consumers) -> list[Operation]:
        """The reshapes and transposes that pack a contraction's weight from run-time values,
        where its kernel takes them: a packed dense of 2-D data (matmul's second operand, or a
        dense's weight that is not a constant) with GEMM_PACK_MIN_ROWS rows, or a packed
        batch_matmul no softmax joins (attention's P.V, V split into heads) whose every batch
        entry has a weight of its own (one shared by all would be packed once per entry),
        either with GEMM_PACK_MIN_PANELS panels (over all heads) and a depth of at most
        GEMM_PACK_MAX_DEPTH. The dense_pack template then runs threads over the weight's
        panels (a batch_matmul's over (head, panel)), each packing its panels at the panel loop
        into a local buffer that stays in its own core's cache while every row tile reads it.
        As a kernel of its own the pack wrote the whole packed weight (4 MB at 1024^2, out of
        the cores' L2) and the GEMM read it back from L3 or the other core's cache; the pack
        kernel itself, its reads a column of 128-byte pieces 4 KB apart, did not scale to two
        threads (1024^2: 167 and 171 us alone at one and two, 1.9x a one-thread memcpy of 4
        MB; 250-310 us in the row).

        A batch_matmul needs no row bound: one process against fuse-ops{batch_pack=false},
        V [s, heads x 64] (Xeon, AVX-512), P.V at 12 heads x 128 queries 0.97-0.98x at one
        thread (CPU time) and 0.93-1.00x at two (wall, load 2.7-2.9); 1 and 16 queries
        0.66x and 0.85x at one thread, 0.59-0.67x and 0.77x at two; the zoo transformer's
        4 x 32 0.98x and 0.61x (the pack kernel's own call saved). Where V's rows lie a
        multiple of 4 KB apart it lost with few queries: 16 heads x 16 queries 1.06x at one
        thread (level at two), 4 x 512-wide heads 1.04-1.20x at 16-64 queries."""
        if isinstance(n, graph.DensePackOp) and self.gemm_pack:
            weight, rows = n.weight, graph.shape_of(n.data.type)
            if len(rows) != 2 or rows[0] < GEMM_PACK_MIN_ROWS:
                return []
        elif isinstance(n, graph.BatchMatmulPackOp) and self.batch_pack:
            weight = n.tensor_b
            if graph.shape_of(weight.type)[0] != graph.shape_of(n.result.type)[0]:
                return []
        else:
            return []
        *heads, panels, depth, _ = graph.shape_of(weight.type)
        if math.prod(heads) * panels < GEMM_PACK_MIN_PANELS or depth > GEMM_PACK_MAX_DEPTH:
            return []
        return self._packing_chain(n, weight, consumers)

    def _packing_chain(self, op: Operation, weight, consumers) -> list[Operation]:
        """The reshapes and transposes that compute `op`'s `weight`, each with one consumer
        (the next), back to the first op of another kind or the function's argument."""
        chain: list[Operation] = []
        user, p = op, weight.owner
        while isinstance(p, PACKING_OPS) and consumers.get(p) == [user] and len(chain) < self.max_depth:
            chain.append(p)
            user, p = p, p.operands[0].owner
        return chain

    @staticmethod
    def _dom_ok(dom, groups: _Groups, limit: OpPattern) -> bool:
        dom_pattern = groups.pattern[groups.find(dom)]
        return dom_pattern <= limit or (limit == OpPattern.INJECTIVE and dom_pattern == OpPattern.COMM_REDUCE)

    def _fusable_path(self, n, dom, consumers, groups: _Groups, limit: OpPattern) -> list[Operation] | None:
        """Every node on a path from n to dom (excluding dom) when all of them after n have
        pattern <= limit, none escapes, and the merged group stays within max_depth; else None.

        The walk gives up as soon as the merged group would exceed max_depth: each node it
        visits is either in dom's group (at most max_depth of them) or adds to the merged
        size, so one walk costs O(max_depth) however long the paths are (on a ladder every
        node's post-dominator is the last node, and an unbounded walk made fusion cubic)."""
        root = groups.find(dom)
        total = groups.size[root]
        counted = {root}
        seen = {dom}
        path: list[Operation] = []
        stack = [n]
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            path.append(x)
            g = groups.find(x)
            if x is not n and (groups.pattern[g] > limit or any(c is None for c in consumers[x])):
                return None
            if g not in counted:
                counted.add(g)
                total += groups.size[g]
                if total > self.max_depth:
                    return None
            stack.extend(c for c in consumers[x] if c is not None)
        return path
