"""Relay text → graph-dialect module.

The Lark grammar (relay.lark) gives a parse tree with positions; this module
walks it, building `func.func`/`func.call`/graph ops through each op's type
inference, so every error — syntax, unknown op, bad attribute, shape mismatch,
undefined variable, a wrong `/* ty=... */` annotation — is reported at the
file:line:col it comes from.
"""

from __future__ import annotations

import difflib
import functools
import math
from decimal import Decimal
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    FileLineColLoc,
    FunctionType,
    IntAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    TupleType,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import VerifyException

from lathe.dialects import dtypes, graph
from lathe.dialects.functions import set_param_names
from lathe.dialects.reference import constant_value as reference_value
from lathe.errors import LatheError, location_in
from lathe.textual_ir.metadata import CONSTANT_KEY, MetadataError, read_constants
from lathe.textual_ir.printer import OPERAND_ATTRIBUTES
from lathe.textual_ir.source import RELAY, check_text, location_at, split_relay

# Every suffix relay.lark's SCALAR lexes, and the dtype TVM gives it: the printer's own
# suffixes, TVM's spelled-out f32 and i32, and two that name a dtype Lathe lacks (an error).
_SCALAR_SUFFIX = {
    **{d.relay_suffix: d.name for d in dtypes.TABLE if d.relay_suffix},
    "f32": "float32",
    "i32": "int32",
    "i": "int32",
    "i16": "int16",
    "u8": "uint8",
}
# Infix operators (TVM's op table) are calls of these ops; the grammar names each rule after its op.
_INFIX = (
    "equal",
    "not_equal",
    "less",
    "less_equal",
    "greater",
    "greater_equal",
    "add",
    "subtract",
    "multiply",
    "divide",
)
_LITERALS = ("scalar", "int_scalar", "float_scalar")
_INT64 = (-(2**63), 2**63 - 1)  # integer attributes are i64

# How an error names a token class the parser expected; fixed strings ('(', '->', 'if') are
# read from the grammar itself, so a new keyword or operator needs no entry here.
_TOKEN_CLASSES = {
    "LOCAL": "a variable (%name)",
    "GLOBAL": "a function name (@name)",
    "OPNAME": "an operator name",
    "NAME": "a name",
    "INT": "an integer",
    "SIGNED_INT": "an integer",
    "STRING": "a string",
    "TY_ANNOT": "a type annotation",
    "SCALAR": "a constant",
    "FLOAT": "a float",
    "FLOAT_SUFFIXED": "a float",
    "SIGNED_FLOAT": "a float",
}


GRAMMAR_PATH = Path(__file__).parent / "relay.lark"


@functools.cache
def _lark() -> Lark:
    """Lark's tables come from its cache (a file in the temp directory, keyed by the grammar, the
    options and Lark's version) after the first build: the build took 0.45 s of each lathe-opt
    or lathe run, a process of about 1 s, and the lit suite starts about a hundred."""
    grammar = GRAMMAR_PATH.read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True, cache=True)


@functools.cache
def _token_names() -> dict[str, str]:
    return {
        t.name: repr(t.pattern.value) if isinstance(t.pattern, PatternStr) else _TOKEN_CLASSES.get(t.name, t.name)
        for t in _lark().terminals
    }


def _describe_expected(expected: set[str]) -> str:
    names = sorted({_token_names().get(e, e) for e in expected})
    return "expected " + (names[0] if len(names) == 1 else "one of: " + ", ".join(names))


class RelayParser:
    def __init__(self, text: str, filename: str = "<string>"):
        self.text = text
        self.file = filename
        self.signatures: dict[str, FunctionType] = {}
        self.func_trees: dict[str, Tree] = {}
        self.funcs: dict[str, func.FuncOp] = {}
        self._in_progress: set[str] = set()
        self.metadata: str | None = None
        self.metadata_at = 0
        self._constants: list[tuple[str, object]] | None = None
        self.decls = graph.Declarations()
        self.type_arity: dict[str, int] = {}  # every declared ADT, before its constructors are read
        self.type_vars: set[str] = set()  # the type parameters in scope (a declaration's)

    # -- errors ---------------------------------------------------------------
    def error(self, msg: str, node: Tree | Token | None, note: str | None = None) -> LatheError:
        if node is None:
            return LatheError(msg, None, note)
        line = node.line if isinstance(node, Token) else node.meta.line
        col = node.column if isinstance(node, Token) else node.meta.column
        return LatheError(msg, location_in(self.text, self.file, line, col), note)

    # -- entry ----------------------------------------------------------------
    def parse(self) -> ModuleOp:
        source = split_relay(self.text, self.file)
        self.metadata, self.metadata_at = source.metadata, source.metadata_at
        check_text(source.program, self.file, RELAY)
        try:
            tree = _lark().parse(source.program)
        except UnexpectedInput as e:
            raise self._syntax_error(e) from None
        adts = self._declare_types(tree)
        for fn in tree.find_data("function"):
            name_tok = fn.children[0]
            name = name_tok[1:]
            if name in self.func_trees:
                raise self.error(f"function @{name} is defined twice", name_tok)
            self.func_trees[name] = fn
        for name in self.func_trees:
            self._build_function(name)
        return ModuleOp([*adts, *(self.funcs[n] for n in self.func_trees)])

    def _declare_types(self, tree: Tree) -> list[graph.ADTDefOp]:
        """`type` declarations: every name and arity first (they may refer to each other), then
        each constructor's field types, the declaration's parameters in scope."""
        defs = list(tree.find_data("type_def"))
        for d in defs:
            name_tok, params = d.children[0], d.children[1]
            if str(name_tok) in self.type_arity:
                raise self.error(f"type {name_tok} is declared twice", name_tok)
            self.type_arity[str(name_tok)] = len(params.children) if params is not None else 0
        out = []
        for d in defs:
            name_tok, params, *ctors = d.children
            names = [str(p) for p in params.children] if params is not None else []
            if len(set(names)) != len(names):
                raise self.error(f"type {name_tok}: a type parameter is declared twice", params)
            self.type_vars = set(names)
            try:
                made = []
                for c in (c for c in ctors if c is not None):
                    ctor_tok, *fields = c.children
                    name = str(ctor_tok)
                    if name in self.decls.ctors or any(m.ctor.data == name for m in made):
                        raise self.error(f"constructor {name} is declared twice", ctor_tok)
                    if name in self.type_arity:
                        raise self.error(f"constructor {name} has the name of a type", ctor_tok)
                    made.append(graph.ConstructorAttr(name, [self.build_type(f) for f in fields if f is not None]))
            finally:
                self.type_vars = set()
            op = graph.ADTDefOp.build(str(name_tok), names, made)
            self.decls.add(op)
            out.append(op)
        return out

    def _syntax_error(self, e: UnexpectedInput) -> LatheError:
        loc = location_in(self.text, self.file, e.line if e.line > 0 else 1, e.column if e.column > 0 else 1)
        if isinstance(e, UnexpectedCharacters):
            ch = self.text[e.pos_in_stream] if e.pos_in_stream < len(self.text) else "end of file"
            return LatheError(f"unexpected character {ch!r}", loc, _describe_expected(set(e.allowed or ())))
        if isinstance(e, UnexpectedEOF):
            lines = self.text.splitlines() or [""]
            loc = location_in(self.text, self.file, len(lines), len(lines[-1]) + 1)
            return LatheError("unexpected end of file", loc, _describe_expected(set(e.expected)))
        if isinstance(e, UnexpectedToken):
            tok = e.token
            what = "end of file" if tok.type == "$END" else repr(str(tok))
            return LatheError(f"unexpected {what}", loc, _describe_expected(set(e.expected)))
        return LatheError(str(e), loc)

    # -- types ----------------------------------------------------------------
    def build_type(self, t: Tree) -> Attribute:
        if t.data == "scalar_type" and t.children[0] == "_":
            raise self.error("the type _ (infer it) is allowed only on let", t, "write the type here")
        if t.data == "fn_type":
            *params, ret = t.children
            return FunctionType.from_lists(
                [self.build_type(p) for p in params if p is not None], [self.build_type(ret)]
            )
        if t.data == "tensor_type":
            dims_tree, dtype_tok = t.children
            dims = [_dim(d) for d in dims_tree.children] if dims_tree is not None else []
            if any(d > _INT64[1] for d in dims):
                raise self.error("tensor dimension out of range", t, f"expected at most {_INT64[1]}")
            if str(dtype_tok) not in graph.DTYPES:
                raise self.error(
                    f"unknown dtype '{dtype_tok}'", dtype_tok, "expected one of: " + ", ".join(graph.DTYPES)
                )
            if any(d < 0 and d != DYNAMIC_INDEX for d in dims):
                raise self.error("tensor dimensions must be non-negative", t)
            return TensorType(graph.DTYPES[str(dtype_tok)], dims)
        if t.data == "adt_type":
            name_tok, *args = t.children
            return self._adt_type(name_tok, [self.build_type(a) for a in args], t)
        if t.data == "scalar_type":
            name = str(t.children[0])
            if name in self.type_vars:
                return graph.TypeVarType(name)
            if name in self.type_arity:
                return self._adt_type(t.children[0], [], t)
            return self.build_type(Tree("tensor_type", [None, t.children[0]], t.meta))
        assert t.data == "tuple_type"
        return TupleType(ArrayAttr(tuple(self.build_type(c) for c in t.children)))

    def _adt_type(self, name_tok: Token, args: list[Attribute], at: Tree) -> graph.ADTType:
        name = str(name_tok)
        if name not in self.type_arity:
            known = ", ".join(self.type_arity) or "none is declared"
            raise self.error(f"unknown type {name}", name_tok, f"declared types: {known}")
        if len(args) != self.type_arity[name]:
            raise self.error(f"type {name} takes {self.type_arity[name]} type arguments, got {len(args)}", at)
        return graph.ADTType(name, args)

    # -- functions --------------------------------------------------------------
    def signature(self, name: str, at: Token) -> FunctionType:
        if name not in self.func_trees:
            raise self.error(
                f"call to undefined function @{name}",
                at,
                "defined functions: " + ", ".join("@" + n for n in self.func_trees),
            )
        if name not in self.signatures:
            if name in self._in_progress:
                raise self.error(f"recursive call to @{name} needs a declared return type", at)
            self._build_function(name)
        return self.signatures[name]

    def _build_function(self, name: str) -> None:
        if name in self.funcs:
            return
        self._in_progress.add(name)
        fn = self.func_trees[name]
        name_tok, type_params, *rest = fn.children
        if type_params is not None:
            raise self.error(
                f"@{name} is generic ([{', '.join(type_params.children)}]), which Lathe does not support yet",
                type_params,
                "write it for the types it is called with",
            )
        params = [c for c in rest if isinstance(c, Tree) and c.data == "param"]
        ret_tree = rest[-2]
        body = rest[-1]
        arg_types = [self.build_type(p.children[1]) for p in params]
        declared_ret = self.build_type(ret_tree) if ret_tree is not None else None
        if declared_ret is not None:
            self.signatures[name] = FunctionType.from_lists(arg_types, [declared_ret])
        block = Block(arg_types=arg_types)
        scope: dict[str, SSAValue] = {}
        for p, arg in zip(params, block.args):
            pname = str(p.children[0])[1:]
            if pname in scope:
                raise self.error(f"parameter %{pname} is declared twice", p.children[0])
            arg.name_hint = pname if not pname[0].isdigit() else None
            scope[pname] = arg
        self.block = block
        result = self._body(body, scope, declared_ret)
        if declared_ret is not None and result.type != declared_ret:
            raise self.error(
                f"@{name} is declared to return {graph.type_str(declared_ret)} "
                f"but its body gives {graph.type_str(result.type)}",
                body.children[-1],
            )
        if isinstance(result.type, FunctionType):  # xDSL prints `-> () -> T`, which no MLIR parser reads back
            raise self.error(
                f"@{name} returns a function value, which Lathe does not support yet",
                body.children[-1],
                "return its result instead, or a tuple holding the function",
            )
        block.add_op(func.ReturnOp(result))
        f = func.FuncOp(name, FunctionType.from_lists(arg_types, [result.type]), Region(block))
        set_param_names(f, [str(p.children[0])[1:] for p in params])
        self.signatures[name] = f.function_type
        self.funcs[name] = f
        self._in_progress.discard(name)

    def _body(self, body: Tree, scope: dict[str, SSAValue], expected: Attribute | None = None) -> SSAValue:
        """The bindings of a body into the current block, then its value (of the `expected`
        type where the context says, which is what types a `Nil`)."""
        if body.data != "body":  # a match clause's single expression
            return self.expr(body, scope, expected)
        for b in body.children[:-1]:
            self._binding(b, scope)
        return self.expr(body.children[-1], scope, expected)

    def _region(
        self, body: Tree, scope: dict[str, SSAValue], expected: Attribute | None = None, block: Block | None = None
    ) -> tuple[Block, SSAValue]:
        """A nested body (an if branch, a fn body, a match clause) as a block of its own: it
        sees the enclosing scope, and what it binds is not seen outside it."""
        outer, block = self.block, Block() if block is None else block
        self.block = block
        try:
            value = self._body(body, scope, expected)
            block.add_op(graph.YieldOp.create(operands=[value]))
        finally:
            self.block = outer
        return block, value

    def _fn_literal(self, t: Tree, scope: dict[str, SSAValue]) -> SSAValue:
        *items, ret_tree, body = t.children
        params = [c for c in items if isinstance(c, Tree) and c.data == "param"]
        inner = dict(scope)
        arg_types = [self.build_type(p.children[1]) for p in params]
        block = Block(arg_types=arg_types)
        for p, arg in zip(params, block.args):
            name = str(p.children[0])[1:]
            if name in inner and inner[name] in block.args:
                raise self.error(f"parameter %{name} is declared twice", p.children[0])
            arg.name_hint = name if not name[0].isdigit() else None
            inner[name] = arg
        declared = self.build_type(ret_tree) if ret_tree is not None else None
        block, value = self._region(body, inner, declared, block)
        if declared is not None and declared != value.type:
            raise self.error(
                f"fn is declared to return {graph.type_str(declared)} but its body gives {graph.type_str(value.type)}",
                body.children[-1],
            )
        op = graph.FnOp.build(block)
        op.location = self.location(t)
        return self.add(op)

    def _if_else(self, t: Tree, scope: dict[str, SSAValue], expected: Attribute | None) -> SSAValue:
        cond_tree, then_tree, else_tree = t.children
        cond = self.expr(cond_tree, scope)
        then_block, _ = self._region(then_tree, dict(scope), expected)
        else_block, _ = self._region(else_tree, dict(scope), expected)
        try:
            op = graph.IfOp.build(cond, then_block, else_block)
        except graph.ShapeError as e:
            raise self.error(str(e), t) from None
        op.location = self.location(t)
        return self.add(op)

    def _call_value(self, t: Tree, scope: dict[str, SSAValue], expected: Attribute | None) -> SSAValue:
        callee_tree, *args = t.children
        if isinstance(callee_tree, Tree) and callee_tree.data == "constructor":  # add(...), Cons(...)
            name_tok = callee_tree.children[0]
            if name_tok in self.decls.ctors:
                return self._construct(name_tok, [a for a in args if a is not None], scope, expected, t)
            return self._call(Tree("call", [Tree("callee", [name_tok]), *args], t.meta), scope)
        callee = self.expr(callee_tree, scope)
        if any(isinstance(a, Tree) and a.data == "kwarg" for a in args):
            raise self.error("calls of function values take no attributes", t)
        operands = [self.expr(a, scope) for a in args if a is not None]
        try:
            op = graph.CallValueOp.build(callee, operands)
        except graph.ShapeError as e:
            raise self.error(str(e), t) from None
        op.location = self.location(t)
        return self.add(op)

    def _construct(
        self, name_tok: Token, args: list, scope: dict[str, SSAValue], expected: Attribute | None, at: Tree
    ) -> SSAValue:
        """`Cons(%x, %xs)`, `Nil`: the type arguments are read off the fields, left to right, and
        off the type the context expects (so `Cons(%x, Nil)` types its `Nil` from `%x`)."""
        name = str(name_tok)
        if name not in self.decls.ctors:
            note = "declared constructors: " + (", ".join(self.decls.ctors) or "none")
            raise self.error(f"unknown constructor or operator '{name}'", name_tok, note)
        decl, ctor = self.decls.constructor(name)
        if len(args) != len(ctor.fields):
            raise self.error(f"constructor {name} takes {len(ctor.fields)} fields, got {len(args)}", at)
        general = graph.ADTType(decl.sym_name.data, [graph.TypeVarType(p) for p in decl.type_params])
        mapping: dict[str, Attribute] = {}
        if isinstance(expected, graph.ADTType):
            graph.adt.unify(general, expected, mapping)
        fields = []
        for arg, field_t in zip(args, ctor.fields):
            want = graph.adt.substitute(field_t, mapping)
            value = self.expr(arg, scope, None if graph.adt.has_type_vars(want) else want)
            if not graph.adt.unify(want, value.type, mapping):
                raise self.error(
                    f"constructor {name}: a field of type {graph.type_str(want)} is given {graph.type_str(value.type)}",
                    arg,
                )
            fields.append(value)
        missing = [p for p in decl.type_params if p not in mapping]
        if missing:
            raise self.error(
                f"cannot tell the type {', '.join(missing)} of {name} here",
                at,
                f"annotate it: {name} /* ty={decl.sym_name.data}[...] */, or bind it with let %x: T = ...",
            )
        t = graph.adt.substitute(general, mapping)
        try:
            op = graph.ConstructOp.build(self.decls, name, fields, t)  # type: ignore[arg-type]
        except graph.ShapeError as e:
            raise self.error(str(e), at) from None
        op.location = self.location(at)
        return self.add(op)

    def _match(self, t: Tree, scope: dict[str, SSAValue], expected: Attribute | None) -> SSAValue:
        kw, data_tree, *clauses = t.children
        data = self.expr(data_tree, scope)
        patterns, blocks = [], []
        for clause in (c for c in clauses if c is not None):
            pattern_tree, body = clause.children
            variables: list[tuple[Token, Tree | None]] = []
            pattern = self._pattern(pattern_tree, variables)
            try:
                types = self.decls.bindings(pattern, data.type)
            except graph.ShapeError as e:
                raise self.error(f"match: {e}", pattern_tree) from None
            block, inner = Block(arg_types=types), dict(scope)
            for (tok, declared), arg in zip(variables, block.args):
                name = str(tok)[1:]
                if declared is not None and (dt := self.build_type(declared)) != arg.type:
                    raise self.error(
                        f"%{name} is declared as {graph.type_str(dt)} but matches {graph.type_str(arg.type)}", declared
                    )
                if inner.get(name) in block.args:
                    raise self.error(f"%{name} is bound twice in one pattern", tok)
                arg.name_hint = name if not name[0].isdigit() else None
                inner[name] = arg
            self._region(body, inner, expected, block)
            patterns.append(pattern)
            blocks.append(block)
        try:
            op = graph.MatchOp.build(self.decls, data, patterns, blocks, complete=str(kw) == "match")
        except graph.ShapeError as e:
            raise self.error(str(e), t) from None
        op.location = self.location(t)
        return self.add(op)

    def _pattern(self, t: Tree, variables: list) -> Attribute:
        """A pattern attribute; the variables it binds (with their declared types) to `variables`."""
        if t.data == "pattern_var":
            variables.append((t.children[0], t.children[1]))
            return graph.VarPattern()
        if t.data == "pattern_tuple":
            return graph.TuplePattern([self._pattern(c, variables) for c in t.children if c is not None])
        name_tok, *subs = t.children
        if t.data == "pattern_name" and name_tok == "_":
            return graph.WildcardPattern()
        if name_tok not in self.decls.ctors:
            note = "declared constructors: " + (", ".join(self.decls.ctors) or "none")
            raise self.error(f"unknown constructor {name_tok} in a pattern", name_tok, note)
        return graph.ConstructorPattern(str(name_tok), [self._pattern(c, variables) for c in subs if c is not None])

    def _binding(self, b: Tree, scope: dict[str, SSAValue]) -> None:
        if b.data == "sequence":  # `e1; e2` is TVM's `let %_ = e1; e2`
            self.expr(b.children[0], scope)
            return
        if b.data == "binding":  # %x = expr
            (var_tok, expr), declared = b.children, None
        else:  # let %x : ty = expr
            var_tok, declared, expr = b.children
            if declared is not None and declared.data == "scalar_type" and declared.children[0] == "_":
                declared = None  # TVM's incomplete type: whatever the value is
        dt = self.build_type(declared) if declared is not None else None
        value = self.expr(expr, scope, dt)
        if declared is not None and dt != value.type:
            raise self.error(
                f"%{var_tok[1:]} is declared as {graph.type_str(dt)} but is {graph.type_str(value.type)}",
                declared,
            )
        name = var_tok[1:]
        if name in scope and isinstance(scope[name].owner, Operation):
            raise self.error(f"%{name} is bound twice", var_tok)
        if not name[0].isdigit() and value.name_hint is None:
            value.name_hint = name
        scope[name] = value

    def _check_annotation(self, annot: Token | None, value: SSAValue, at) -> None:
        if annot is None:
            return
        t = self._annotation_type(annot)
        if t != value.type:
            raise self.error(
                f"type annotation says {graph.type_str(t)} but the inferred type is {graph.type_str(value.type)}",
                annot,
            )

    def _annotation_type(self, annot: Token) -> Attribute:
        inner = str(annot)[2:-2].strip()[3:].strip()  # strip /* ty= */
        inner = inner.split(" span=")[0].strip()  # TVM may add the source span after the type
        try:
            check_text(inner, self.file, RELAY)
        except LatheError as e:
            raise self.error(f"type annotation: {e.message}", annot, e.note) from None
        try:
            t_tree = _type_parser().parse(inner)
        except UnexpectedInput:
            raise self.error(
                f"malformed type annotation '{inner}'", annot, "expected /* ty=Tensor[(d0, d1, ...), dtype] */"
            ) from None
        return self.build_type(t_tree)

    # -- expressions --------------------------------------------------------------
    def add(self, op: Operation) -> SSAValue:
        self.block.add_op(op)
        return op.results[0]

    def expr(self, t: Tree | Token, scope: dict[str, SSAValue], expected: Attribute | None = None) -> SSAValue:
        """The value of expression `t`; `expected`, where the context knows it, is the type it
        must have: it gives a constructor the type arguments its fields do not (`Nil`)."""
        if isinstance(t, Token):
            raise self.error(f"unexpected {t!r}", t)
        kind = t.data
        if kind == "var":
            tok = t.children[0]
            name = tok[1:]
            if name not in scope:
                close = difflib.get_close_matches(name, scope.keys(), n=3)
                note = ("did you mean " + ", ".join("%" + c for c in close) + "?") if close else None
                raise self.error(f"undefined variable %{name}", tok, note)
            return scope[name]
        if kind == "call":
            return self._call(t, scope)
        if kind == "call_value":
            return self._call_value(t, scope, expected)
        if kind == "fn_literal":
            return self._fn_literal(t, scope)
        if kind == "if_else":
            return self._if_else(t, scope, expected)
        if kind == "match":
            return self._match(t, scope, expected)
        if kind == "constructor":
            return self._construct(t.children[0], [], scope, expected, t)
        if kind == "annotated":
            value = self.expr(t.children[0], scope, self._annotation_type(t.children[1]))
            self._check_annotation(t.children[1], value, t)
            return value
        if kind in _INFIX:
            operands = [self.expr(c, scope) for c in t.children]
            return self._op_call(Token("NAME", kind), operands, [], t)
        if kind == "negative":
            if (literal := self._negated_literal(t)) is not None:
                return literal
            return self._op_call(Token("NAME", "negative"), [self.expr(t.children[0], scope)], [], t)
        if kind in ("true_scalar", "false_scalar"):
            return self.add(graph.ConstantOp.scalar(kind == "true_scalar", graph.DTYPES["bool"]))
        if kind == "meta_ref":
            return self._meta_constant(t)
        if kind == "scalar":
            return self._scalar(t.children[0])
        if kind == "int_scalar":  # TVM: int32, or int64 when the value does not fit int32
            text = str(t.children[0])
            lo, hi = dtypes.BY_NAME["int32"].value_range()
            return self._literal(t.children[0], text, "int32" if lo <= int(text) <= hi else "int64")
        if kind == "float_scalar":
            return self._literal(t.children[0], str(t.children[0]), "float32")
        if kind in ("tuple", "empty_tuple"):
            hints = expected.types.data if isinstance(expected, TupleType) else ()
            if len(hints) != len(t.children):
                hints = (None,) * len(t.children)
            fields = [self.expr(c, scope, h) for c, h in zip(t.children, hints)]
            return self.add(graph.TupleOp.create_inferred(fields))
        if kind == "proj":
            tup = self.expr(t.children[0], scope)
            if not isinstance(tup.type, TupleType):
                raise self.error(f"projection .{t.children[1]} of a non-tuple {graph.type_str(tup.type)}", t)
            index, n = int(t.children[1]), len(tup.type.types.data)
            if index >= n:  # also keeps the index within the i64 attribute
                raise self.error(
                    f"projection .{index} of a tuple with {n} fields",
                    t,
                    f"expected .0 to .{n - 1}" if n else "the tuple is empty",
                )
            return self._make(graph.TupleGetItemOp, [tup], {"index": IntegerAttr(index, i64)}, t)
        raise self.error(f"unsupported expression '{kind}'", t)

    def _negated_literal(self, t: Tree) -> SSAValue | None:
        """`-1`, `--10`, `- 2f`: TVM folds minus signs into the literal they precede."""
        signs = 0
        while isinstance(t, Tree) and t.data == "negative":
            signs, t = signs + 1, t.children[0]
        if not (isinstance(t, Tree) and t.data in _LITERALS):
            return None
        tok = t.children[0]
        text = str(tok).lstrip("-")
        if (len(str(tok)) - len(text) + signs) % 2:
            text = "-" + text
        return self.expr(Tree(t.data, [Token(tok.type, text, line=tok.line, column=tok.column)], t.meta), {})

    def _meta_constant(self, t: Tree) -> SSAValue:
        """`meta[relay.Constant][i]`: the i-th constant of the metadata section."""
        key, index_tok = t.children
        if key != CONSTANT_KEY:
            raise self.error(f"meta[{key}] is not supported", t, f"Lathe reads meta[{CONSTANT_KEY}][i] only")
        constants = self._metadata_constants(t)
        index = int(index_tok)
        if index >= len(constants):
            raise self.error(
                f"meta[{CONSTANT_KEY}][{index}] is not in the metadata section",
                t,
                f"it holds {len(constants)} constants" if constants else "it holds no constants",
            )
        dtype, array = constants[index]
        return self.add(graph.ConstantOp.from_array(array, graph.DTYPES[dtype]))

    def _metadata_constants(self, at: Tree) -> list:
        if self._constants is None:
            if self.metadata is None:
                raise self.error(
                    f"meta[{CONSTANT_KEY}] needs the file's #[metadata] section",
                    at,
                    "TVM writes it after the last function (astext() with the constants bound)",
                )
            try:
                self._constants = read_constants(self.metadata)
            except MetadataError as e:
                start = self.metadata_at + (e.at or len(self.metadata) - len(self.metadata.lstrip()))
                raise LatheError(str(e), location_at(self.text, self.file, start)) from None
        return self._constants

    def _scalar(self, tok: Token) -> SSAValue:
        s = str(tok)
        suffix = max((x for x in _SCALAR_SUFFIX if s.endswith(x)), key=len)
        return self._literal(tok, s[: -len(suffix)], _SCALAR_SUFFIX[suffix])

    def _literal(self, tok: Token, num: str, dtype: str) -> SSAValue:
        """A scalar constant, exactly as written or an error naming the literal and its dtype."""
        if dtype not in graph.DTYPES:
            raise self.error(
                f"literal {tok} has dtype {dtype}, which Lathe does not support",
                tok,
                "supported dtypes: " + ", ".join(graph.DTYPES),
            )
        dt = graph.DTYPES[dtype]
        value = float(num) if graph.is_float(dt) else Decimal(num)
        if not graph.is_float(dt) and value != value.to_integral_value():
            raise self.error(f"literal {tok} is not an integer (its dtype is {dtype})", tok)
        lo, hi = dtypes.BY_NAME[dtype].value_range()
        if num.lstrip("-") not in ("inf", "nan") and not lo <= value <= hi:  # 1e309f64 is no inf
            raise self.error(f"literal {tok} is out of range for {dtype}", tok, f"expected a value in [{lo}, {hi}]")
        return self.add(graph.ConstantOp.scalar(value if graph.is_float(dt) else int(value), dt))

    def _make(self, cls, operands, props, at, kwargs=()) -> SSAValue:
        try:
            op = cls.create_inferred(operands, props)
        except VerifyException as e:
            # an attribute's own error points at its value
            for kw in kwargs:
                if f"attribute '{kw.children[0]}'" in str(e):
                    at = kw.children[1]
            raise self.error(str(e), at) from None
        op.location = self.location(at)
        return self.add(op)

    def location(self, node: Tree | Token) -> FileLineColLoc:
        """Where an op was written: fusion and outlining carry it to the kernel the op ends
        in, so a profile names the lines a kernel's time comes from."""
        line = node.line if isinstance(node, Token) else node.meta.line
        col = node.column if isinstance(node, Token) else node.meta.column
        return FileLineColLoc(StringAttr(self.file), IntAttr(line), IntAttr(col))

    def _call(self, t: Tree, scope: dict[str, SSAValue]) -> SSAValue:
        callee_tree, *args = t.children
        callee_tok = callee_tree.children[0]
        positional = [a for a in args if a is not None and not (isinstance(a, Tree) and a.data == "kwarg")]
        kwargs = [a for a in args if isinstance(a, Tree) and a.data == "kwarg"]
        if callee_tok.type == "GLOBAL":
            if kwargs:
                raise self.error("calls to functions take no attributes", kwargs[0])
            sig = self.signature(callee_tok[1:], callee_tok)
            want = list(sig.inputs.data)
            hints = want if len(want) == len(positional) else [None] * len(positional)
            operands = [self.expr(a, scope, h) for a, h in zip(positional, hints)]
            got = [o.type for o in operands]
            if want != got:
                raise self.error(
                    f"@{callee_tok[1:]} expects ({', '.join(graph.type_str(x) for x in want)}) "
                    f"but is called with ({', '.join(graph.type_str(x) for x in got)})",
                    t,
                )
            call = func.CallOp(callee_tok[1:], operands, list(sig.outputs.data))
            value = self.add(call)
        else:
            operands = [self.expr(a, scope) for a in positional]
            value = self._op_call(callee_tok, operands, kwargs, t)
        return value

    def _op_call(self, name_tok: Token, operands, kwargs, at) -> SSAValue:
        name = str(name_tok)
        cls = graph.OPS_BY_RELAY_NAME.get(name)
        if cls is None or cls is graph.ConstantOp:
            close = difflib.get_close_matches(name, graph.OPS_BY_RELAY_NAME.keys(), n=3)
            note = "did you mean " + ", ".join(close) + "?" if close else "see `lathe-opt --list-ops`"
            raise self.error(f"unknown operator '{name}'", name_tok, note)
        op_def = cls.get_irdl_definition()
        n_operands = len(op_def.operands)
        variadic = any(type(d).__name__.startswith("Var") for _, d in op_def.operands)
        props: dict[str, Attribute] = {}
        if not variadic and len(operands) > n_operands and name in OPERAND_ATTRIBUTES:
            operands = self._operand_attributes(name, cls, operands, n_operands, at, props)
        if not variadic and len(operands) != n_operands:
            raise self.error(f"{name} takes {n_operands} operands, got {len(operands)}", at)
        for kw in kwargs:
            key_tok, val_tree = kw.children
            key = str(key_tok)
            if key not in op_def.properties:
                known = ", ".join(op_def.properties) or "none"
                raise self.error(f"{name} has no attribute '{key}'", key_tok, f"its attributes: {known}")
            value = self.attr_value(val_tree)
            if value is None:
                continue
            try:
                props[key] = cls.coerce(key, value)
            except graph.ShapeError as e:
                raise self.error(str(e), val_tree) from None
        return self._make(cls, operands, props, at, kwargs)

    def _operand_attributes(self, name, cls, operands, n_operands, at, props) -> list:
        """TVM passes some of an op's attributes as scalar operands (nn.pad's pad value); Lathe
        holds them as properties, so each such operand must be a scalar constant."""
        names = OPERAND_ATTRIBUTES[name][: len(operands) - n_operands]
        for key, value in zip(names, operands[n_operands:]):
            op = value.owner
            if not (isinstance(op, graph.ConstantOp) and isinstance(value.type, TensorType) and not value.type.shape):
                raise self.error(
                    f"{name}: its {key} must be a scalar constant", at, "Lathe holds it as an attribute, not a tensor"
                )
            try:
                props[key] = cls.coerce(key, reference_value(op).item())
            except graph.ShapeError as e:  # a bool pad value, say: the operand's kind is wrong
                raise self.error(str(e), at) from None
            if not value.uses:
                op.detach()
                op.erase()
        return operands[:n_operands] + operands[n_operands + len(names) :]

    def attr_value(self, t: Tree):
        kind = t.data
        if kind == "attr_int":
            value = int(t.children[0])
            if not _INT64[0] <= value <= _INT64[1]:
                raise self.error(
                    f"integer attribute {value} is out of range",
                    t,
                    f"expected a value in [{_INT64[0]}, {_INT64[1]}] (attributes are int64)",
                )
            return value
        if kind in ("attr_float", "attr_float_suffixed"):
            text = str(t.children[0]).removesuffix("f") if kind == "attr_float_suffixed" else str(t.children[0])
            value = float(text)
            if math.isinf(value) and text.lstrip("-") != "inf":
                raise self.error(
                    f"float attribute {t.children[0]} is out of range",
                    t,
                    "attributes are float64; write inff for infinity",
                )
            return value
        if kind == "attr_str":
            return str(t.children[0])[1:-1].encode().decode("unicode_escape")
        if kind == "attr_true":
            return True
        if kind == "attr_false":
            return False
        if kind == "attr_none":
            return None
        if kind == "attr_list":
            return [self.attr_value(c) for c in t.children if c is not None]
        raise self.error(f"unsupported attribute value '{kind}'", t)


def _dim(tok: Token) -> int:
    return DYNAMIC_INDEX if tok.type == "ANY_DIM" else int(tok)


@functools.cache
def _type_parser() -> Lark:
    grammar = (Path(__file__).parent / "relay.lark").read_text()
    return Lark(grammar, parser="lalr", start="type", propagate_positions=True, maybe_placeholders=True)


def parse_relay(text: str, filename: str = "<string>") -> ModuleOp:
    """Parse Relay text into a verified graph-dialect module (raises LatheError)."""
    module = RelayParser(text, filename).parse()
    return module
