"""Algebraic data types: Relay's `type List[A] { Cons(A, List[A]), Nil }`, constructor calls and `match`.

What TVM's TensorArray is built from: a list of tensors is a chain of `Cons` cells ending in
`Nil`, built by recursion through global functions and taken apart by `match`. A declaration is
a module-level `graph.adt_def` (its type parameters and constructors, each a list of field
types in which `!graph.type_var<"A">` stands for a parameter); a value's type is
`!graph.adt<"List", [tensor<2xf32>]>` (the declaration's name and its type arguments). A
constructor call is `graph.construct` (the constructor's name, its fields as operands), and
`graph.match` has one region per clause: the clause's pattern is a property, and the variables
the pattern binds are the region's block arguments, in the order they are written.

Constructor names are unique in a module (as TVM requires), so a value is its constructor's name
and its fields; the tag of a constructor (its index in the declaration) is what the VM's code
tests. These ops compute nothing on tensors, so like the control ops they are not GraphOps, and a
module that has them runs on the VM.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from xdsl.dialects.builtin import ArrayAttr, BoolAttr, FunctionType, IntegerAttr, ModuleOp, StringAttr, TupleType, i1
from xdsl.ir import Attribute, Block, Operation, ParametrizedAttribute, Region, SSAValue, TypeAttribute
from xdsl.irdl import (
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    var_operand_def,
    var_region_def,
)
from xdsl.utils.exceptions import VerifyException

from lathe.dialects.graph.control import ControlOp, YieldOp, join_types, refines
from lathe.dialects.graph.core import ShapeError, tuple_type, type_str

# -- types ---------------------------------------------------------------------------------


@irdl_attr_definition
class ADTType(ParametrizedAttribute, TypeAttribute):
    """A value of a declared ADT: the declaration's name and its type arguments."""

    name = "graph.adt"
    adt: StringAttr
    args: ArrayAttr[Attribute]

    def __init__(self, adt: str, args: Iterable[Attribute] = ()):
        super().__init__(StringAttr(adt), ArrayAttr(tuple(args)))

    def __str__(self) -> str:  # the Relay spelling, which graph.type_str falls back to
        args = self.args.data
        return self.adt.data + ("[" + ", ".join(type_str(a) for a in args) + "]" if args else "")


@irdl_attr_definition
class TypeVarType(ParametrizedAttribute, TypeAttribute):
    """A declaration's type parameter, inside its constructors' field types only."""

    name = "graph.type_var"
    var: StringAttr

    def __init__(self, var: str):
        super().__init__(StringAttr(var))

    def __str__(self) -> str:
        return self.var.data


@irdl_attr_definition
class ConstructorAttr(ParametrizedAttribute):
    """One constructor of a declaration: its name and its field types."""

    name = "graph.constructor"
    ctor: StringAttr
    fields: ArrayAttr[Attribute]

    def __init__(self, ctor: str, fields: Iterable[Attribute] = ()):
        super().__init__(StringAttr(ctor), ArrayAttr(tuple(fields)))


# -- patterns --------------------------------------------------------------------------------


@irdl_attr_definition
class WildcardPattern(ParametrizedAttribute):
    """`_`: matches anything, binds nothing."""

    name = "graph.pattern_wildcard"


@irdl_attr_definition
class VarPattern(ParametrizedAttribute):
    """`%x`: matches anything and binds it (the clause's next block argument)."""

    name = "graph.pattern_var"


@irdl_attr_definition
class ConstructorPattern(ParametrizedAttribute):
    """`Cons(p, q)`: a value made by that constructor, whose fields match the sub-patterns."""

    name = "graph.pattern_constructor"
    ctor: StringAttr
    fields: ArrayAttr[Attribute]

    def __init__(self, ctor: str, fields: Iterable[Attribute] = ()):
        super().__init__(StringAttr(ctor), ArrayAttr(tuple(fields)))


@irdl_attr_definition
class TuplePattern(ParametrizedAttribute):
    """`(p, q)`: a tuple whose fields match the sub-patterns."""

    name = "graph.pattern_tuple"
    fields: ArrayAttr[Attribute]

    def __init__(self, fields: Iterable[Attribute] = ()):
        super().__init__(ArrayAttr(tuple(fields)))


PATTERNS = (WildcardPattern, VarPattern, ConstructorPattern, TuplePattern)


# -- the declaration ---------------------------------------------------------------------------


@irdl_op_definition
class ADTDefOp(ControlOp):
    """`type Name[A, ...] { C1(T, ...), C2, ... }`, at the top of a module."""

    name = "graph.adt_def"
    sym_name = prop_def(StringAttr)
    params = prop_def(ArrayAttr[StringAttr])
    constructors = prop_def(ArrayAttr[ConstructorAttr])

    @classmethod
    def build(cls, name: str, params: list[str], constructors: list[ConstructorAttr]) -> ADTDefOp:
        return cls.create(
            properties={
                "sym_name": StringAttr(name),
                "params": ArrayAttr([StringAttr(p) for p in params]),
                "constructors": ArrayAttr(constructors),
            }
        )

    @property
    def type_params(self) -> list[str]:
        return [p.data for p in self.params]

    def tag(self, ctor: str) -> int:
        return next(k for k, c in enumerate(self.constructors) if c.ctor.data == ctor)

    def verify_(self) -> None:
        params = self.type_params
        if len(set(params)) != len(params):
            raise ShapeError(f"type {self.sym_name.data}: a type parameter is declared twice")
        names = [c.ctor.data for c in self.constructors]
        if len(set(names)) != len(names):
            raise ShapeError(f"type {self.sym_name.data}: a constructor is declared twice")
        for c in self.constructors:
            for t in c.fields:
                for v in _type_vars(t):
                    if v not in params:
                        raise ShapeError(f"constructor {c.ctor.data}: the type variable {v} is not a parameter")


def _type_vars(t: Attribute) -> Iterator[str]:
    if isinstance(t, TypeVarType):
        yield t.var.data
    for p in _children(t):
        yield from _type_vars(p)


def _children(t: Attribute) -> tuple[Attribute, ...]:
    if isinstance(t, ADTType):
        return t.args.data
    if isinstance(t, TupleType):
        return t.types.data
    if isinstance(t, FunctionType):
        return (*t.inputs.data, *t.outputs.data)
    return ()


def has_type_vars(t: Attribute) -> bool:
    return next(_type_vars(t), None) is not None


def substitute(t: Attribute, mapping: dict[str, Attribute]) -> Attribute:
    """`t` with each type variable replaced by its binding in `mapping` (unbound ones kept)."""
    if isinstance(t, TypeVarType):
        return mapping.get(t.var.data, t)
    if isinstance(t, ADTType):
        return ADTType(t.adt.data, [substitute(a, mapping) for a in t.args])
    if isinstance(t, TupleType):
        return tuple_type([substitute(a, mapping) for a in t.types])
    if isinstance(t, FunctionType):
        return FunctionType.from_lists(
            [substitute(a, mapping) for a in t.inputs], [substitute(a, mapping) for a in t.outputs]
        )
    return t


def unify(general: Attribute, actual: Attribute, mapping: dict[str, Attribute]) -> bool:
    """Binds the type variables of `general` in `mapping` so that `actual` is a value of it (a
    tensor of a more specific shape is: `Tensor[(3, 4), float32]` fills a `Tensor[(?, ?), float32]`
    field, as TVM's `Any` admits); whether it can."""
    if isinstance(general, TypeVarType):
        bound = mapping.setdefault(general.var.data, actual)
        return bound == actual
    if type(general) is not type(actual) or type(general) not in (ADTType, TupleType, FunctionType):
        return refines(actual, general)
    if isinstance(general, ADTType) and general.adt != actual.adt:  # type: ignore[attr-defined]
        return False
    a, b = _children(general), _children(actual)
    return len(a) == len(b) and all(unify(x, y, mapping) for x, y in zip(a, b))


class Declarations:
    """The ADT declarations of a module, and each constructor's declaration."""

    def __init__(self, defs: Iterable[ADTDefOp] = ()):
        self.types: dict[str, ADTDefOp] = {}
        self.ctors: dict[str, ADTDefOp] = {}
        for d in defs:
            self.add(d)

    def add(self, d: ADTDefOp) -> None:
        self.types[d.sym_name.data] = d
        for c in d.constructors:
            self.ctors[c.ctor.data] = d

    @classmethod
    def of(cls, op: Operation) -> Declarations | None:
        """Those of the module `op` is in (None while it is in none: being built)."""
        top: Operation | None = op
        while top is not None and not isinstance(top, ModuleOp):
            top = top.parent_op()
        if top is None:
            return None
        return cls(d for d in top.ops if isinstance(d, ADTDefOp))

    def constructor(self, name: str) -> tuple[ADTDefOp, ConstructorAttr]:
        d = self.ctors.get(name)
        if d is None:
            raise ShapeError(f"unknown constructor {name}")
        return d, next(c for c in d.constructors if c.ctor.data == name)

    def field_types(self, name: str, t: Attribute) -> list[Attribute]:
        """The fields' types of constructor `name` in a value of type `t`."""
        d, c = self.constructor(name)
        if not isinstance(t, ADTType) or t.adt.data != d.sym_name.data:
            raise ShapeError(f"constructor {name} makes a {d.sym_name.data}, not a {type_str(t)}")
        mapping = dict(zip(d.type_params, t.args.data))
        return [substitute(f, mapping) for f in c.fields]

    def check_type(self, t: Attribute) -> None:
        """That every ADT in `t` is declared, with as many type arguments as it has parameters."""
        if isinstance(t, ADTType):
            d = self.types.get(t.adt.data)
            if d is None:
                raise ShapeError(f"unknown type {t.adt.data}")
            if len(t.args) != len(d.params):
                raise ShapeError(f"type {t.adt.data} takes {len(d.params)} type arguments, got {len(t.args)}")
        for c in _children(t):
            self.check_type(c)

    def bindings(self, pattern: Attribute, t: Attribute) -> list[Attribute]:
        """The types of the variables `pattern` binds when it matches a value of type `t`, in order."""
        if isinstance(pattern, WildcardPattern):
            return []
        if isinstance(pattern, VarPattern):
            return [t]
        if isinstance(pattern, TuplePattern):
            if not isinstance(t, TupleType) or len(t.types) != len(pattern.fields):
                raise ShapeError(f"a tuple pattern of {len(pattern.fields)} fields cannot match {type_str(t)}")
            return [b for p, f in zip(pattern.fields, t.types) for b in self.bindings(p, f)]
        assert isinstance(pattern, ConstructorPattern)
        fields = self.field_types(pattern.ctor.data, t)
        if len(fields) != len(pattern.fields):
            raise ShapeError(
                f"constructor {pattern.ctor.data} has {len(fields)} fields, its pattern {len(pattern.fields)}"
            )
        return [b for p, f in zip(pattern.fields, fields) for b in self.bindings(p, f)]

    def exhaustive(self, rows: list[list[Attribute]], types: list[Attribute]) -> bool:
        """Whether every value of `types` matches some row of patterns (the usefulness check of
        ML compilers: split on the first column's constructors, recurse on their fields)."""
        if not types:
            return bool(rows)
        first, rest = types[0], types[1:]
        if all(isinstance(row[0], WildcardPattern | VarPattern) for row in rows):  # nothing to split on
            return self.exhaustive([row[1:] for row in rows], rest)
        if isinstance(first, ADTType):
            d = self.types[first.adt.data]
            for c in d.constructors:
                arity = len(c.fields)
                fields = self.field_types(c.ctor.data, first)
                sub = []
                for row in rows:
                    p = row[0]
                    if isinstance(p, ConstructorPattern) and p.ctor.data == c.ctor.data:
                        sub.append([*p.fields, *row[1:]])
                    elif isinstance(p, WildcardPattern | VarPattern):
                        sub.append([WildcardPattern()] * arity + row[1:])
                if not self.exhaustive(sub, fields + rest):
                    return False
            return True
        if isinstance(first, TupleType):
            n, sub = len(first.types), []
            for row in rows:
                p = row[0]
                fields = list(p.fields) if isinstance(p, TuplePattern) else [WildcardPattern()] * n
                sub.append([*fields, *row[1:]])
            return self.exhaustive(sub, [*first.types, *rest])
        return self.exhaustive([row[1:] for row in rows], rest)


# -- constructing and matching -------------------------------------------------------------------


@irdl_op_definition
class ConstructOp(ControlOp):
    """`Cons(%x, %xs)`: a value of the ADT, made by the named constructor from its fields."""

    name = "graph.construct"
    fields = var_operand_def()
    result = result_def(ADTType)
    ctor = prop_def(StringAttr)

    @classmethod
    def build(cls, decls: Declarations, ctor: str, fields: list[SSAValue], t: ADTType) -> ConstructOp:
        op = cls.create(operands=list(fields), result_types=[t], properties={"ctor": StringAttr(ctor)})
        op.check(decls)
        return op

    def check(self, decls: Declarations) -> None:
        name, t = self.ctor.data, self.result.type
        decls.check_type(t)
        want = decls.field_types(name, t)
        got = [v.type for v in self.fields]
        if len(want) != len(got) or not all(map(refines, got, want)):
            raise ShapeError(
                f"constructor {name} of {type_str(t)} takes ({', '.join(map(type_str, want))}), "
                f"got ({', '.join(map(type_str, got))})"
            )

    def verify_(self) -> None:
        if (decls := Declarations.of(self)) is not None:
            self.check(decls)


@irdl_op_definition
class MatchOp(ControlOp):
    """`match (%v) { Cons(%h, %t) => ..., Nil => ... }`: the first clause whose pattern the
    value matches runs, its block arguments the variables the pattern binds. `match` must cover
    every value (checked here); `match?` need not, and a value no clause matches is an error
    when it runs."""

    name = "graph.match"
    data = operand_def()
    result = result_def()
    clauses = var_region_def("single_block")
    patterns = prop_def(ArrayAttr[Attribute])
    complete = opt_prop_def(BoolAttr, IntegerAttr(1, i1))

    @classmethod
    def build(
        cls, decls: Declarations, data: SSAValue, patterns: list[Attribute], blocks: list[Block], complete: bool
    ) -> MatchOp:
        """`blocks`: per clause, its body, whose arguments are the pattern's variables (`bindings`)."""
        if not blocks:
            raise ShapeError("match: a match has at least one clause")
        types = [_yielded(b).type for b in blocks]
        joined = types[0]
        for t in types[1:]:
            j = join_types(joined, t)
            if j is None:
                raise ShapeError(f"match: the clauses give {type_str(joined)} and {type_str(t)}")
            joined = j
        props: dict[str, Attribute] = {"patterns": ArrayAttr(patterns)}
        if not complete:
            props["complete"] = IntegerAttr(0, i1)
        op = cls.create(operands=[data], result_types=[joined], regions=[Region(b) for b in blocks], properties=props)
        op.check(decls)
        return op

    @property
    def is_complete(self) -> bool:
        return bool(self.complete.value.data) if self.complete is not None else True

    def check(self, decls: Declarations) -> None:
        t = self.data.type
        if len(self.patterns) != len(self.clauses):
            raise ShapeError(f"match: {len(self.patterns)} patterns for {len(self.clauses)} clauses")
        for k, (p, region) in enumerate(zip(self.patterns, self.clauses)):
            if not isinstance(p, PATTERNS):
                raise ShapeError(f"match: clause {k}'s pattern {p} is not a pattern")
            want = decls.bindings(p, t)
            got = [a.type for a in region.block.args]
            if want != got:
                raise ShapeError(
                    f"match: clause {k} binds ({', '.join(map(type_str, want))}) "
                    f"but its block takes ({', '.join(map(type_str, got))})"
                )
            given = _yielded(region.block).type
            if not refines(given, self.result.type):
                raise ShapeError(f"match: clause {k} gives {type_str(given)}, the match {type_str(self.result.type)}")
        if self.is_complete and not decls.exhaustive([[p] for p in self.patterns], [t]):
            raise ShapeError(f"match: the clauses do not cover every {type_str(t)} (write match? for a partial match)")

    def verify_(self) -> None:
        if (decls := Declarations.of(self)) is not None:
            self.check(decls)


def _yielded(block: Block) -> SSAValue:
    last = block.last_op
    if not isinstance(last, YieldOp) or len(last.values) != 1:
        raise VerifyException("a match clause ends with graph.yield of one value")
    return last.values[0]


def is_adt(t: Attribute) -> bool:
    """Whether a type holds an ADT value anywhere (what only the VM and the interpreter carry)."""
    return isinstance(t, ADTType) or any(is_adt(c) for c in _children(t))


ADT_OPS = [ADTDefOp, ConstructOp, MatchOp]
ADT_ATTRS = [ADTType, TypeVarType, ConstructorAttr, *PATTERNS]
