"""The schedule builder and knob configurations every schedule template uses (CPU and GPU).

`Schedule(stage)` appends `te.split`/`te.reorder`/... ops after the kernel's last compute,
so a schedule is ordinary IR: printed, parsed back, replayed. A template declares its knobs
with `knob(...)`; a `Config` (template + knob values) is a value that prints, parses back
and replays through `apply-schedule{config=...}` or the kernel attribute
`lathe.schedule_config`. Kept apart from the templates so the CPU templates
(schedules.py, which also holds the passes) and the GPU ones (gpu_schedules.py) share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, StringAttr, i64
from xdsl.ir import Operation

from lathe.dialects import te
from lathe.errors import LatheError
from lathe.lowering.te_transforms import rfactor_axes, rfactor_extents


class Schedule:
    """Builder for the schedule of one stage (TVM's `s[stage]`)."""

    def __init__(self, stage: te.ComputeOp):
        self.stage = stage
        fn = stage.parent_op()
        assert isinstance(fn, func.FuncOp)
        self.ret = fn.body.block.last_op
        self._axes: list[str] | None = None  # once a stage-making op changed them (rfactor, cache_write)

    def _emit(self, cls: type[te.SchedulePrimitive], **props) -> Operation:
        op = cls.create(operands=[self.stage.result], properties=props)
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        return op

    @property
    def stage_value(self):
        return self.stage.result

    @property
    def axes(self) -> list[str]:
        """The stage's axes, spatial then reduce: as they will be once the stage-making ops
        emitted so far are expanded (after rfactor, the final sum's; after cache_write, the copy's)."""
        return list(self.stage.axis_names if self._axes is None else self._axes)

    def split(self, axis: str, factor: int | None = None, nparts: int | None = None) -> tuple[str, str]:
        outer, inner = f"{axis}.outer", f"{axis}.inner"
        props = {"axis": StringAttr(axis)}
        if factor is not None:
            props["factor"] = IntegerAttr(factor, i64)
        else:
            props["nparts"] = IntegerAttr(nparts, i64)
        props.update(outer=StringAttr(outer), inner=StringAttr(inner))
        self._emit(te.SplitOp, **props)
        return outer, inner

    def tile(self, x: str, y: str, x_factor: int, y_factor: int) -> tuple[str, str, str, str]:
        self._emit(
            te.TileOp,
            x_axis=StringAttr(x),
            y_axis=StringAttr(y),
            x_factor=IntegerAttr(x_factor, i64),
            y_factor=IntegerAttr(y_factor, i64),
        )
        return f"{x}.outer", f"{y}.outer", f"{x}.inner", f"{y}.inner"

    def bind(self, axis: str, thread_axis: str) -> None:
        self._emit(te.BindOp, axis=StringAttr(axis), thread_axis=StringAttr(thread_axis))

    def reorder(self, *axes: str) -> None:
        self._emit(te.ReorderOp, order=ArrayAttr([StringAttr(a) for a in axes]))

    def fuse(self, *axes: str) -> str:
        name = ".".join(axes) + ".fused"
        self._emit(te.FuseOp, fuse_axes=ArrayAttr([StringAttr(a) for a in axes]), fused=StringAttr(name))
        return name

    def vectorize(self, axis: str) -> None:
        self._emit(te.VectorizeOp, axis=StringAttr(axis))

    def parallel(self, axis: str) -> None:
        self._emit(te.ParallelOp, axis=StringAttr(axis))

    def unroll(self, axis: str) -> None:
        self._emit(te.UnrollOp, axis=StringAttr(axis))

    def compute_inline(self) -> None:
        self._emit(te.ComputeInlineOp)

    def compute_at(self, target: te.ComputeOp | Schedule, axis: str) -> None:
        """Compute this stage per iteration of `axis` of `target` (a stage, or the schedule of
        one a stage-making op will create)."""
        value = target.stage_value if isinstance(target, Schedule) else target.result
        op = te.ComputeAtOp.create(operands=[self.stage_value, value], properties={"axis": StringAttr(axis)})
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]

    def compute_root(self) -> None:
        self._emit(te.ComputeRootOp)

    def pragma(self, axis: str, pragma: str) -> None:
        self._emit(te.PragmaOp, axis=StringAttr(axis), pragma=StringAttr(pragma))

    def prefetch(self, tensor, axis: str, distance: int = 1, locality: int = 2) -> None:
        """Prefetch the block of `tensor` that iteration i + distance of loop `axis` reads while
        iteration i runs (te.prefetch)."""
        op = te.PrefetchOp.create(
            operands=[self.stage_value, tensor],
            properties={
                "axis": StringAttr(axis),
                "distance": IntegerAttr(distance, i64),
                "locality": IntegerAttr(locality, i64),
            },
        )
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]

    def storage_align(self, axis: str, factor: int, offset: int) -> None:
        self._emit(
            te.StorageAlignOp, axis=StringAttr(axis), factor=IntegerAttr(factor, i64), offset=IntegerAttr(offset, i64)
        )

    def cache_read(self, tensor, readers: list[te.ComputeOp]) -> Schedule:
        """A copy of `tensor` (a kernel argument or another stage) that `readers` read instead."""
        op = te.CacheReadOp.build(operands=[tensor, [r.result for r in readers]], result_types=[tensor.type])
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        return _CachedSchedule(self.stage, op.result, [f"ax{d}" for d in range(len(tensor.type.get_shape()))])

    def rfactor(
        self, axis: str, factor: int | None = None, nparts: int | None = None, factor_axis: int | None = None
    ) -> Schedule:
        """Partial sums over part of reduce axis `axis` (te.rfactor): indexed by its inner part
        (`factor`) or by its outer part (`nparts`: each partial one contiguous run of the axis),
        the partials' axis at dimension `factor_axis` of their buffer (default last). Returns
        the schedule of the partial-sum stage; this one's stage becomes their sum, over the
        axis named last in its `axes`."""
        t = self.stage_value.type
        shape = list(t.get_shape())  # type: ignore[union-attr]
        names = self.axes
        nsp = len(shape)
        if axis not in names[nsp:]:
            raise LatheError(f"rfactor: '{axis}' is not one of the stage's reduce axes {names[nsp:]}")
        if self._axes is not None:
            raise LatheError("rfactor of a stage made or changed by another schedule op is not supported")
        kept, _ = rfactor_extents(self.stage.reduce_extent_list[names.index(axis) - nsp], factor, nparts)
        fa = nsp if factor_axis is None else factor_axis
        rf_shape = list(shape)
        rf_shape.insert(fa, kept)
        props = {"axis": StringAttr(axis)}
        props["nparts" if nparts is not None else "factor"] = IntegerAttr(nparts if nparts is not None else factor, i64)
        if factor_axis is not None:
            props["factor_axis"] = IntegerAttr(factor_axis, i64)
        rf_type = type(t)(t.element_type, rf_shape)  # type: ignore[union-attr]
        op = te.RfactorOp.create(operands=[self.stage_value], result_types=[rf_type], properties=props)
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        spatial, reduce, kept_name = rfactor_axes(names, nsp, axis, nparts is not None, fa)
        self._axes = [*names[:nsp], kept_name]
        return _CachedSchedule(self.stage, op.result, [*spatial, *reduce])

    def cache_write(self) -> Schedule:
        """A new stage doing this stage's computation; this one becomes its copy."""
        op = te.CacheWriteOp(self.stage_value)
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        names = self.axes
        self._axes = names[: len(self.stage_value.type.get_shape())]  # type: ignore[union-attr]
        return _CachedSchedule(self.stage, op.result, names)


class _CachedSchedule(Schedule):
    """The schedule of a stage a stage-making op will create (cache_write's computation, a
    cache_read's copy, rfactor's partial sums): it is named by that op's result, and its axes
    are given, since the stage does not exist yet."""

    def __init__(self, original: te.ComputeOp, value, axes: list[str] | None = None):
        super().__init__(original)
        self.value = value
        self._axes = axes  # (None: the original's)

    @property
    def stage_value(self):
        return self.value

    def _emit(self, cls, **props):
        op = cls.create(operands=[self.value], properties=props)
        assert self.ret is not None
        self.ret.parent_block().insert_op_before(op, self.ret)  # type: ignore[union-attr]
        return op


# -- knobs and configurations -------------------------------------------------------------
# A template declares its knobs per kernel (candidates depend on the kernel's shapes); the
# default value of every knob is the schedule Lathe used before it had knobs, so the default
# configuration reproduces that IR exactly. A configuration (template + knob values) is a
# value: it prints, parses back, and replays through `apply-schedule{config=...}` or the
# kernel attribute `lathe.schedule_config`.

KnobValue = int | str
CONFIG_ATTR = "lathe.schedule_config"  # a kernel's configuration, read by apply-default-schedule


@dataclass(frozen=True)
class Knob:
    name: str
    candidates: tuple[KnobValue, ...]
    default: KnobValue


def knob(name: str, candidates, default: KnobValue) -> Knob:
    """A knob whose candidates always include its default, deduplicated in order."""
    values = tuple(dict.fromkeys([default, *candidates]))
    ints = sorted(v for v in values if isinstance(v, int))
    return Knob(name, tuple(ints) if len(ints) == len(values) else values, default)


Space = tuple[Knob, ...]


@dataclass(frozen=True)
class Config:
    """A template and knob values. Text form: `dense_pack:tile_i=8,tile_j=32` (knobs left out take their defaults)."""

    template: str
    values: tuple[tuple[str, KnobValue], ...] = ()

    def __str__(self) -> str:
        return self.template + (":" + ",".join(f"{k}={v}" for k, v in self.values) if self.values else "")

    @staticmethod
    def parse(text: str) -> Config:
        name, _, rest = text.strip().partition(":")
        if not name or not name.replace("_", "").isalnum():
            raise LatheError(
                f"schedule configuration '{text}': expected TEMPLATE[:knob=value,...]",
                note="e.g. dense_pack:tile_i=4,tile_j=32",
            )
        values = []
        for item in filter(None, (x.strip() for x in rest.split(","))):
            k, eq, v = item.partition("=")
            if not eq or not k.strip() or not v.strip():
                raise LatheError(f"schedule configuration '{text}': '{item}' is not knob=value")
            v = v.strip()
            values.append((k.strip(), int(v) if v.lstrip("-").isdigit() else v))
        return Config(name, tuple(values))

    def resolve(self, template: str, space: Space) -> dict[str, KnobValue]:
        """Every knob's value: this configuration's, else the default; a LatheError for a
        configuration of another template, an unknown knob or a value not among the candidates."""
        if self.template != template:
            raise LatheError(
                f"schedule configuration '{self}' is for template '{self.template}', the kernel's is '{template}'"
            )
        knobs = {k.name: k for k in space}
        values = {k.name: k.default for k in space}
        for name, v in self.values:
            if name not in knobs:
                raise LatheError(
                    f"template '{template}' has no knob '{name}'", note="its knobs: " + (", ".join(knobs) or "none")
                )
            if v not in knobs[name].candidates:
                raise LatheError(
                    f"knob '{name}' of template '{template}' cannot be {v}",
                    note="allowed values: " + ", ".join(str(c) for c in knobs[name].candidates),
                )
            values[name] = v
        return values


def default_config(template: str, space: Space) -> Config:
    return Config(template, tuple((k.name, k.default) for k in space))


def kernel_config(f: func.FuncOp) -> Config | None:
    attr = f.attributes.get(CONFIG_ATTR)
    if attr is None:
        return None
    if not isinstance(attr, StringAttr):
        raise LatheError(f"@{f.sym_name.data}: {CONFIG_ATTR} must be a string, got {attr}")
    return Config.parse(attr.data)


# The L2 a CPU template assumes where the target's caches are unknown (a cross target, a
# machine without sysfs): 1 MiB is the smallest per-core L2 of current x86 and Arm server
# cores (Zen 4, Graviton 3; Sapphire Rapids has 2).
FALLBACK_L2_BYTES = 1 << 20


@dataclass(frozen=True)
class CacheInfo:
    """The target's data caches as the CPU templates model them: their defaults size cache
    blocks and weight-stationary orders by them. Set from the scheduling passes' options
    (lowering may not import backends: the backend's graph_pass_options fill those in)."""

    l2_bytes: int = FALLBACK_L2_BYTES  # one core's L2


UNKNOWN_CACHES = CacheInfo()  # what a template assumes when it is told nothing of the target


def vector_registers(lanes: int) -> int:
    """The vector registers a CPU template sizes its register tiles by, from the vector width
    it is told: 32 with 16 lanes (AVX-512), else 16 (AVX2 and SSE). aarch64's NEON has 32 of 4
    lanes but is given 16: a tile that leaves registers unused costs less than one that spills."""
    return 32 if lanes >= 16 else 16


# The share of the vector registers a default register tile's accumulators may take: the rest
# hold the operands each step loads (weight vectors, a broadcast). 24 of AVX-512's 32, 12 of
# AVX2's 16, where 16 spilled (docs/performance.md, "On an AVX2 machine").
MAX_ACCUMULATOR_SHARE = 3 / 4


def max_accumulators(lanes: int) -> int:
    return int(vector_registers(lanes) * MAX_ACCUMULATOR_SHARE)


@dataclass(frozen=True)
class Template:
    """The schedule of a kernel built around one anchor stage.

    `space(anchor, out, lanes, caches)` is its knobs for that kernel (None: the template does not
    apply, and the kernel keeps the per-stage schedules); `schedule(anchor, out, lanes, knobs)`
    schedules the anchor and the kernel's output (the anchor itself, or its epilogue). Stages
    with a role in `root_roles` are computed on their own (not inlined into the anchor)."""

    name: str
    space: Callable[[te.ComputeOp, te.ComputeOp, int, CacheInfo], Space | None]
    schedule: Callable[[te.ComputeOp, te.ComputeOp, int, dict[str, KnobValue]], bool]
    root_roles: tuple[str, ...] = ()


def divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def largest_divisor(n: int, limit: int) -> int:
    return max(divisors(n, limit))
