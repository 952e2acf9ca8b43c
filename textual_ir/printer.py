"""Graph-dialect module → Relay text, the inverse of `parser.py`.

Every binding carries a `/* ty=... */` annotation (as TVM's astext does); the
parser checks them, so print → parse → print is a fixed point and a printed
file documents its own shapes.
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    FloatAttr,
    FunctionType,
    IntegerAttr,
    IntegerType,
    ModuleOp,
    NoneAttr,
    StringAttr,
    TensorType,
    TupleType,
)
from xdsl.ir import Attribute, Operation, SSAValue

from lathe.dialects import dtypes, graph
from lathe.dialects.reference import constant_value
from lathe.errors import LatheError
from lathe.textual_ir.metadata import CONSTANT_KEY, write_constants

# Attributes TVM passes as scalar operands after the op's tensors, where Lathe holds a property.
OPERAND_ATTRIBUTES = {"nn.pad": ("pad_value",)}


def _attr(a: Attribute) -> str:
    if isinstance(a, IntegerAttr):
        if isinstance(a.type, IntegerType) and a.type.width.data == 1:
            return "True" if a.value.data else "False"
        return str(a.value.data)
    if isinstance(a, FloatAttr):
        return repr(float(a.value.data)) + "f"
    if isinstance(a, StringAttr):
        return '"' + a.data.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(a, ArrayAttr):
        return "[" + ", ".join(_attr(x) for x in a.data) + "]"
    if isinstance(a, NoneAttr):
        return "None"
    raise LatheError(f"attribute {a} has no Relay spelling")


def _scalar(op: graph.ConstantOp) -> str | None:
    t = op.result.type
    assert isinstance(t, TensorType)
    if t.get_shape() != ():
        return None
    d = dtypes.BY_MLIR.get(t.element_type)
    if d is None:
        return None
    v = op.value.get_values()[0]  # type: ignore[union-attr]
    return _literal(v, d)


def _literal(v, d: dtypes.DType) -> str:
    if d.name == "bool":
        return "True" if v else "False"  # TVM's spelling; Lathe also reads 1b
    if d.is_float:  # the shortest text that reads back as the same value
        text = str(d.numpy.type(v)) if d.name != "float64" else repr(float(v))
        if text.lstrip("-").isdigit():
            text += ".0"
        return text + d.relay_suffix
    return f"{int(v)}{d.relay_suffix}"


class RelayPrinter:
    def __init__(self) -> None:
        self.names: dict[SSAValue, str] = {}
        self.counter = 0
        self.constants: list[tuple[str, object]] = []  # the metadata section, by meta index

    def print_module(self, module: ModuleOp) -> str:
        out = ['#[version = "0.0.5"]']
        for op in module.ops:
            if isinstance(op, graph.ADTDefOp):
                out.append(self.print_type_def(op))
                continue
            if not isinstance(op, func.FuncOp):
                raise LatheError(
                    f"'{op.name}' cannot be written as Relay text (only graph-level IR can; use --emit=mlir)"
                )
            if op.is_declaration:
                raise LatheError(
                    f"@{op.sym_name.data} is only declared (it has no body): Relay text has no "
                    "declarations; use --emit=mlir"
                )
            out.append(self.print_function(op))
        text = "\n".join(out) + "\n"
        if self.constants:
            text += "\n#[metadata]\n" + write_constants(self.constants)
        return text

    def print_type_def(self, op: graph.ADTDefOp) -> str:
        params = f"[{', '.join(op.type_params)}]" if op.params else ""
        lines = [f"type {op.sym_name.data}{params} {{"]
        for c in op.constructors:
            fields = f"({', '.join(graph.type_str(t) for t in c.fields)})" if c.fields else ""
            lines.append(f"  {c.ctor.data}{fields},")
        return "\n".join([*lines, "}"])

    def value(self, v: SSAValue) -> str:
        return self.names[v]

    def print_function(self, f: func.FuncOp) -> str:
        self.names, self.counter, self.used = {}, 0, set()
        from lathe.dialects.functions import param_names

        params = self.params(f.body.block.args, param_names(f))
        header = f"def @{f.sym_name.data}({params}) -> {graph.type_str(f.function_type.outputs.data[0])} {{"
        ops = list(f.body.block.ops)
        ret = ops[-1]
        if not isinstance(ret, func.ReturnOp) or len(ret.operands) != 1:
            raise LatheError(f"@{f.sym_name.data}: a Relay function returns exactly one value")
        return "\n".join([header, *self.body(ops, 1), "}"])

    def params(self, args, names) -> str:
        """`%x: T, ...`, each name unique in the function (a fixed point: printed names read back
        as the same hints); an argument without a name gets a fresh one."""
        return ", ".join(f"{self.bind(arg, name)}: {graph.type_str(arg.type)}" for arg, name in zip(args, names))

    def bind(self, arg: SSAValue, name: str | None) -> str:
        name = name or f"p{len(self.used)}"
        while name in self.used:
            name += "_"
        self.used.add(name)
        self.names[arg] = "%" + name
        return "%" + name

    def pattern(self, p: Attribute, args) -> str:
        """A match clause's pattern, its variables named after the clause's block arguments."""
        if isinstance(p, graph.WildcardPattern):
            return "_"
        if isinstance(p, graph.VarPattern):
            arg = next(args)
            return self.bind(arg, arg.name_hint)
        fields = [self.pattern(f, args) for f in p.fields]  # type: ignore[attr-defined]
        if isinstance(p, graph.TuplePattern):
            return "(" + ", ".join(fields) + ("," if len(fields) == 1 else "") + ")"
        return p.ctor.data + (f"({', '.join(fields)})" if fields else "")  # type: ignore[attr-defined]

    def body(self, ops: list[Operation], depth: int) -> list[str]:
        """A block's bindings and its value (the operand of its return or yield), one line each,
        the value written in place when only it uses the op before it."""
        pad, ret = "  " * depth, ops[-1]
        inline_last = (
            len(ops) >= 2
            and ret.operands[0].owner is ops[-2]
            and ret.operands[0].has_one_use()
            and not isinstance(ops[-2], graph.ConstantOp)
        )
        lines = []
        for op in ops[:-1]:
            if isinstance(op, graph.ConstantOp):
                self.names[op.result] = self.constant(op)
                continue
            text = self.expr(op, depth)
            if op is ops[-2] and inline_last:
                lines.append(f"{pad}{text}")
                break
            name = f"%{self.counter}"
            self.counter += 1
            self.names[op.results[0]] = name
            lines.append(f"{pad}{name} = {text};")
        else:
            lines.append(f"{pad}{self.value(ret.operands[0])}")
        return lines

    def region(self, region, depth: int) -> str:
        return "\n".join(self.body(list(region.block.ops), depth + 1)) + "\n" + "  " * depth + "}"

    def expr(self, op: Operation, depth: int = 1) -> str:
        ty = f" /* ty={graph.type_str(op.results[0].type)} */"
        if isinstance(op, func.CallOp):
            args = ", ".join(self.value(a) for a in op.arguments)
            return f"@{op.callee.root_reference.data}({args}){ty}"
        if isinstance(op, graph.IfOp):
            cond = self.value(op.cond)
            then, other = self.region(op.then_region, depth), self.region(op.else_region, depth)
            return f"if ({cond}) {{\n{then} else {{\n{other}{ty}"
        if isinstance(op, graph.FnOp):
            args = op.body.block.args
            params = self.params(args, [a.name_hint for a in args])
            ret = graph.type_str(op.result.type.outputs.data[0])
            return f"fn ({params}) -> {ret} {{\n{self.region(op.body, depth)}{ty}"
        if isinstance(op, graph.ConstructOp):
            fields = [self.value(a) for a in op.fields]
            return op.ctor.data + (f"({', '.join(fields)})" if fields else "") + ty
        if isinstance(op, graph.MatchOp):
            pad = "  " * (depth + 1)
            clauses = [
                f"{pad}{self.pattern(p, iter(r.block.args))} => {{\n{self.region(r, depth + 1)},"
                for p, r in zip(op.patterns, op.clauses)
            ]
            keyword = "match" if op.is_complete else "match?"
            return f"{keyword} ({self.value(op.data)}) {{\n" + "\n".join(clauses) + f"\n{'  ' * depth}}}{ty}"
        if isinstance(op, graph.CallValueOp):
            return f"{self.value(op.callee)}({', '.join(self.value(a) for a in op.args)}){ty}"
        if isinstance(op, graph.TupleOp):
            fields = [self.value(a) for a in op.operands]
            return "(" + ", ".join(fields) + ("," if len(fields) == 1 else "") + ")"
        if isinstance(op, graph.TupleGetItemOp):
            return f"{self.value(op.operands[0])}.{op.index.value.data}"
        if not isinstance(op, graph.GraphOp):
            raise LatheError(f"'{op.name}' is not a graph-level op; write this module with --emit=mlir")
        args = [self.value(a) for a in op.operands]
        props = dict(op.properties)
        if in_operands := OPERAND_ATTRIBUTES.get(op.relay_name()):
            d = dtypes.BY_MLIR[op.operands[0].type.element_type]  # type: ignore[attr-defined]
            args += [_literal(op.attrs()[k], d) for k in in_operands]
            for k in in_operands:
                props.pop(k, None)
        args += [f"{k}={_attr(v)}" for k, v in props.items()]
        return f"{op.relay_name()}({', '.join(args)}){ty}"

    def constant(self, op: graph.ConstantOp) -> str:
        """A scalar as its literal; any other tensor as TVM writes bound weights, a
        `meta[relay.Constant][i]` whose value goes in the metadata section."""
        if (s := _scalar(op)) is not None:
            return s
        t = op.result.type
        self.constants.append((graph.dtype_name(t.element_type), constant_value(op)))  # type: ignore[attr-defined]
        return f"meta[{CONSTANT_KEY}][{len(self.constants) - 1}] /* ty={graph.type_str(t)} */"


def print_relay(module: ModuleOp) -> str:
    return RelayPrinter().print_module(module)


def is_graph_level(module: ModuleOp, kernels: bool = False) -> bool:
    """True while every op is a function, a call, a return or a graph op, and (unless
    `kernels`) no function is a kernel: what Relay text can print; with `kernels`, what the
    reference interpreter can run."""
    for op in module.walk():
        if op is module:
            continue
        if not isinstance(op, func.FuncOp | func.CallOp | func.ReturnOp | graph.GraphOp | graph.ControlOp):
            return False
        if isinstance(op, func.FuncOp) and not all(
            map(_is_relay_type, (*op.function_type.inputs.data, *op.function_type.outputs.data))
        ):
            return False  # a loop-level function passes memrefs even when its body is empty
        if not kernels and isinstance(op, func.FuncOp) and "lathe.kernel" in op.attributes:
            return False
    return True


def _is_relay_type(t: Attribute) -> bool:
    if isinstance(t, TupleType):
        return all(_is_relay_type(x) for x in t.types.data)
    if isinstance(t, FunctionType):
        return all(_is_relay_type(x) for x in (*t.inputs.data, *t.outputs.data))
    if isinstance(t, graph.ADTType):
        return all(_is_relay_type(x) for x in t.args.data)
    return isinstance(t, TensorType)
