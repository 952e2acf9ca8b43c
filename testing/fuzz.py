"""Lathe's fuzzer: every input either works or ends in a located LatheError.

    python -m lathe.testing.fuzz --count N [--seed S] [--jobs J] [--out DIR]

Cases come from hypothesis strategies: Relay text drawn from the grammar
itself (relay.lark), well-typed graph programs built op by op through the
graph dialect's type inference and printed as Relay text or MLIR, one-op
calls with arbitrary attributes, mutations of the examples, the lit tests,
lowered (te/loop level) programs and the zoo's small models, and random pass
pipelines with random options over valid programs.

Each case runs in a worker process, so a hang (per-case timeout) or a JIT
crash (the worker dies) is an outcome, not the end of the campaign. A case
is parsed, printed back and re-parsed, interpreted on random non-zero
inputs, and, with a pipeline, compiled and run: the compiled result must
match the interpreter's. The outcomes:

    ok          it worked (and compiled code matched the interpreter)
    error       a LatheError with a location (file:line:col or an op's name)
    unlocated   a LatheError that says neither where nor which op (a defect)
    crash       any other exception
    timeout     the case ran past its time limit
    died        the worker process died (a crash of generated code)
    miscompile  compiled code disagreed with the interpreter

Everything but ok and error is a finding: the campaign prints a table,
reduces one reproducer per distinct cause (exception type + innermost Lathe
frame) and writes them to DIR/findings.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import select
import subprocess
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the lathe package
OUTCOMES = ("ok", "error", "unlocated", "crash", "timeout", "died", "miscompile")
FINDINGS = OUTCOMES[2:]
PARSE_TIMEOUT = 30.0  # seconds; a hang, not a slow parse: the zoo's GRU takes 3.3 s idle, >10 s at load 9
COMPILE_TIMEOUT = 90.0
MAX_ELEMENTS = 1 << 16  # bigger inputs are parsed but not run: the fuzzer looks for bugs, not for speed
RTOL = {"float16": 2e-2}  # per dtype; others 1e-3


@dataclass(frozen=True)
class Case:
    kind: str  # which generator made it (a row of the summary table)
    fmt: str  # "lathe" (Relay text) or "mlir"
    text: str
    pipeline: str | None = None  # graph → loop passes to compile with; None: parse, print, interpret only
    origin: str = ""  # the seed a mutant came from

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


@dataclass
class Outcome:
    kind: str
    key: str = ""  # the distinct cause of a finding
    message: str = ""
    seconds: float = 0.0


# ---------------------------------------------------------------------------
# seeds


def seed_texts(root: Path = ROOT) -> list[tuple[str, str, str]]:
    """(name, fmt, text) of the examples and the lit tests, split where lit splits them."""
    out = []
    paths = (
        sorted(root.glob("examples/*.lathe"))
        + sorted((root / "tests" / "lit").rglob("*.lathe"))
        + sorted((root / "tests" / "lit").rglob("*.mlir"))
    )
    for p in paths:
        if "Output" in p.parts:
            continue
        fmt = "mlir" if p.suffix == ".mlir" else "lathe"
        for k, chunk in enumerate(p.read_text().split("// -----")):
            if chunk.strip():
                out.append((f"{p.relative_to(root)}#{k}", fmt, chunk))
    return out


def zoo_texts(names=("gru", "lstm_lm", "transformer", "resnet18", "mobilenet_v2")) -> list[tuple[str, str, str]]:
    """The zoo's small models as Relay text (weights as parameters)."""
    from lathe.frontends.onnx import from_onnx
    from lathe.models import ZOO
    from lathe.textual_ir.printer import print_relay

    return [(f"zoo:{n}", "lathe", print_relay(from_onnx(ZOO[n].build(small=True))[0])) for n in names]


def lowered_texts(programs: list[str]) -> list[tuple[str, str, str]]:
    """Graph programs lowered part and all the way, printed as MLIR: seeds in the te and loop dialects."""
    from lathe.api import parse_source
    from lathe.dialects import make_context
    from lathe.pipelines import GRAPH_PIPELINES, build_pipeline

    stages = {
        "te": GRAPH_PIPELINES[0] + ",lower-graph-to-te,apply-default-schedule",
        "loop": GRAPH_PIPELINES[2] + ",lower-graph-to-te,apply-default-schedule,lower-te-to-loop,cleanup-loops",
    }
    out = []
    for k, text in enumerate(programs):
        for stage, spec in stages.items():
            try:
                m = parse_source(text, "seed.lathe", "lathe")
                build_pipeline(spec).apply(make_context(), m)
                out.append((f"lowered:{stage}#{k}", "mlir", _print_mlir(m, generic=False)))
            except Exception:  # a seed that does not lower is the pipeline cases' business, not a seed
                continue
    return out


def _print_mlir(module, generic: bool) -> str:
    from io import StringIO

    from xdsl.printer import Printer

    s = StringIO()
    Printer(stream=s, print_generic_format=generic).print_op(module)
    return s.getvalue() + "\n"


# ---------------------------------------------------------------------------
# strategies


def _strategies():
    """Built on first use: hypothesis and the dialects are only needed to generate."""
    import hypothesis.strategies as st

    from lathe.dialects import graph

    dtypes = ["float32"] * 8 + ["float16", "float64", "int32", "int64", "int8", "bool"]
    small_int = st.integers(-3, 6)
    int_list = st.lists(st.integers(-2, 6), max_size=5)
    float_val = st.sampled_from([0.0, 0.5, 1e-5, -1.0, 2.0, 1e30, float("inf")])
    layouts = st.sampled_from(["NCHW", "NHWC", "OIHW", "HWIO", "NCW", "NC", ""])
    pools = {
        **{k: small_int for k in ("axis", "batch_dims", "channels", "groups", "units", "num_newaxis", "size", "index")},
        **{
            k: int_list
            for k in (
                "axes",
                "begin",
                "end",
                "strides",
                "dilation",
                "kernel_size",
                "pool_size",
                "padding",
                "newshape",
                "shape",
                "reps",
                "output_padding",
                "output_size",
                "indices_or_sections",
            )
        },
        **{
            k: st.booleans()
            for k in (
                "ceil_mode",
                "center",
                "scale",
                "count_include_pad",
                "cubic_exclude",
                "exclude",
                "keepdims",
                "select_last_index",
                "transpose_a",
                "transpose_b",
                "unbiased",
            )
        },
        **{
            k: float_val
            for k in (
                "a_max",
                "a_min",
                "alpha",
                "beta",
                "bias",
                "epsilon",
                "cubic_alpha",
                "extrapolation_value",
                "pad_value",
                "rate",
            )
        },
        **{k: st.sampled_from(sorted(graph.DTYPES) + ["", "uint8"]) for k in ("dtype", "out_dtype")},
        **{k: layouts for k in ("data_layout", "kernel_layout", "layout", "out_layout", "weight_layout")},
        "method": st.sampled_from(["nearest_neighbor", "linear", "cubic", "bogus"]),
        "mode": st.sampled_from(["clip", "wrap", "fast", ""]),
        "pad_mode": st.sampled_from(["constant", "edge", "reflect", "x"]),
        "coordinate_transformation_mode": st.sampled_from(["half_pixel", "align_corners", "asymmetric"]),
        "rounding_method": st.sampled_from(["round", "floor", "ceil", "round_prefer_ceil"]),
        "slice_mode": st.sampled_from(["end", "size"]),
        "pad_width": st.lists(st.lists(st.integers(0, 2), min_size=2, max_size=2), max_size=4),
        "roi": st.lists(st.floats(0, 1), max_size=4),
    }
    any_value = st.one_of(small_int, int_list, float_val, st.booleans(), st.text(max_size=6), st.none())
    op_names = sorted(n for n in graph.OPS_BY_RELAY_NAME if n != "constant")

    def value_for(name: str):
        return st.one_of(pools[name], any_value) if name in pools else any_value

    shapes = st.lists(st.integers(1, 5), min_size=0, max_size=4)

    @st.composite
    def graph_module(draw, max_ops: int = 6):
        """A well-typed graph function: each op is drawn, then kept only if type inference accepts it."""
        from xdsl.dialects import func
        from xdsl.dialects.builtin import ModuleOp, TensorType
        from xdsl.ir import Block, Region

        base = draw(shapes)
        types = [
            TensorType(graph.DTYPES[draw(st.sampled_from(dtypes))], base if draw(st.booleans()) else draw(shapes))
            for _ in range(draw(st.integers(1, 3)))
        ]
        block = Block(arg_types=types)
        for k, a in enumerate(block.args):
            a.name_hint = f"p{k}"
        values = list(block.args)
        for _ in range(draw(st.integers(1, max_ops))):
            name = draw(st.sampled_from(op_names))
            op_def = graph.OPS_BY_RELAY_NAME[name].get_irdl_definition()
            variadic = any(type(d).__name__.startswith("Var") for _, d in op_def.operands)
            n = draw(st.integers(1, 3)) if variadic else len(op_def.operands)
            operands = [draw(st.sampled_from(values[-4:] if draw(st.booleans()) else values)) for _ in range(n)]
            attrs = {k: draw(value_for(k)) for k in op_def.properties if k != "value" and draw(st.booleans())}
            try:
                op = graph.make_op(name, operands, **attrs)
            except Exception:  # most draws are ill-typed; the one-op-call cases test those through the parser
                continue
            block.add_op(op)
            values.append(op.results[0])
        block.add_op(func.ReturnOp(values[-1]))
        return ModuleOp([func.FuncOp("main", (types, [values[-1].type]), Region(block))])

    @st.composite
    def graph_program(draw, max_ops: int = 6):
        """(fmt, text): Relay text, or MLIR where the Relay printer fails on the program (the
        worker then meets the same failure and records it; generation itself must not stop)."""
        from lathe.textual_ir.printer import print_relay

        module = draw(graph_module(max_ops))
        try:
            return "lathe", print_relay(module)
        except Exception:  # noqa: BLE001
            return "mlir", _print_mlir(module, generic=True)

    @st.composite
    def graph_mlir(draw):
        return _print_mlir(draw(graph_module()), generic=draw(st.booleans()))

    def literal():
        suffixes = ["", "f", "f16", "f32", "f64", "i8", "i16", "i32", "i64", "u8", "b"]
        nums = st.sampled_from(["0", "1", "-1", "2.5", "1e308", "4294967296", "9223372036854775808", "0.0", "255"])
        return st.builds(lambda n, s: n + s, nums, st.sampled_from(suffixes))

    def attr_text(v) -> str:
        if isinstance(v, bool):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if v is None:
            return "None"
        if isinstance(v, list):
            return "[" + ", ".join(attr_text(x) for x in v) + "]"
        return repr(v).replace("inf", "1e400")

    @st.composite
    def one_op_call(draw):
        """One operator, operands of drawn types (or literals), any attribute with any value, as Relay text."""
        name = draw(st.sampled_from(op_names + ["nn.bogus", "constant"]))
        cls = graph.OPS_BY_RELAY_NAME.get(name)
        props = list(cls.get_irdl_definition().properties) if cls else ["axis"]
        n_params = draw(st.integers(0, 3))
        params = [
            f"%a{k}: Tensor[({', '.join(map(str, draw(shapes)))}), {draw(st.sampled_from(dtypes))}]"
            for k in range(n_params)
        ]
        args = [
            draw(st.one_of(st.sampled_from([f"%a{k}" for k in range(n_params)] or ["1f"]), literal()))
            for _ in range(draw(st.integers(0, 3)))
        ]
        for k in draw(st.lists(st.sampled_from(props + ["bogus"]), max_size=3, unique=True)):
            args.append(f"{k}={attr_text(draw(value_for(k)))}")
        return f"def @main({', '.join(params)}) {{\n  {name}({', '.join(args)})\n}}\n"

    def pass_spec(names):
        from lathe.pipelines import lathe_passes

        available = lathe_passes()

        @st.composite
        def spec(draw):
            name = draw(st.sampled_from(names))
            opts = []
            for f in dataclasses.fields(available[name]()):
                if draw(st.integers(0, 3)) == 0:
                    v = draw(
                        st.sampled_from(["0", "1", "2", "3", "4", "256", "-1", "1000000"])
                        if f.type == "int"
                        else st.sampled_from(["main", "nope"])
                    )
                    opts.append(f"{f.name}={v}")
            return name + ("{" + " ".join(opts) + "}" if opts else "")

        return spec()

    @st.composite
    def pipeline(draw):
        """An opt level's pipeline, random graph passes before one, or any passes at all."""
        from lathe.pipelines import GRAPH_PIPELINES, LOWERING, lathe_passes

        lowering = LOWERING.split(",")
        graph_passes = [n for n in lathe_passes() if n not in lowering]
        level = draw(st.integers(0, 3))
        shape = draw(st.sampled_from(["level", "level", "prefix", "chaos"]))
        if shape == "chaos":
            return ",".join(draw(st.lists(pass_spec(sorted(lathe_passes())), min_size=1, max_size=6)))
        prefix = draw(st.lists(pass_spec(graph_passes), max_size=4)) if shape == "prefix" else []
        return ",".join(prefix + [GRAPH_PIPELINES[level], LOWERING])

    return dict(graph_program=graph_program, graph_mlir=graph_mlir, one_op_call=one_op_call, pipeline=pipeline, st=st)


_TOKENS = [
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "<",
    ">",
    ",",
    ";",
    ":",
    "=",
    "%0",
    "%x",
    "@main",
    '"',
    "\\",
    "->",
    "tuple<",
    "tensor<",
    "Tensor[(",
    "/*",
    "*/",
    "//",
    "-1",
    "0",
    "1e400",
    "99999999999999999999",
    "2i16",
    "1u8",
    "3b",
    "1e308f",
    "nan",
    "inf",
    "float16",
    "bool",
    "int8",
    "\xff",
    "é",
    "\x00",
    "\t",
    "graph.add",
    "te.unroll",
    "scf.for",
    "#loop.annotation<bogus>",
    "func.return",
    "nn.conv2d",
    "axis=",
    "^bb0",
    "dense<",
    "%c0",
    "index",
    "i64",
    "f32",
    "memref<",
]


def mutant(st, seeds: list[tuple[str, str, str]]):
    """A seed with one to four edits: delete, duplicate, insert a token, change a number, swap lines, nest."""
    edits = st.tuples(
        st.sampled_from(["delete", "duplicate", "insert", "number", "swap", "nest", "truncate"]),
        st.integers(0, 1 << 30),
        st.integers(0, 1 << 30),
        st.sampled_from(_TOKENS),
    )

    def apply(seed, ops):
        name, fmt, text = seed
        for kind, a, b, tok in ops:
            text = _edit(text, kind, a, b, tok)
        return Case("mutant", fmt, text, origin=name)

    return st.builds(apply, st.sampled_from(seeds), st.lists(edits, min_size=1, max_size=4))


_NUMBER = re.compile(r"\d+")
_INTERESTING = ["0", "-1", "1", "2", "7", "65536", "2147483648", "99999999999999999999999", "1e400"]


def _edit(text: str, kind: str, a: int, b: int, tok: str) -> str:
    n = len(text) + 1
    i, j = sorted((a % n, b % n))
    j = min(j, i + 40)
    if kind == "delete":
        return text[:i] + text[j:]
    if kind == "duplicate":
        return text[:j] + text[i:j] + text[j:]
    if kind == "insert":
        return text[:i] + tok + text[i:]
    if kind == "number":
        nums = list(_NUMBER.finditer(text))
        if not nums:
            return text
        m = nums[a % len(nums)]
        return text[: m.start()] + _INTERESTING[b % len(_INTERESTING)] + text[m.end() :]
    if kind == "swap":
        lines = text.split("\n")
        x, y = a % len(lines), b % len(lines)
        lines[x], lines[y] = lines[y], lines[x]
        return "\n".join(lines)
    if kind == "nest":
        depth = 1 + b % 120
        opener = tok if tok in ("(", "[", "{", "<", "tuple<", "Tensor[(") else "("
        return text[:i] + opener * depth + text[i:]
    return text[:i]  # truncate


KINDS = ("mutant", "graph", "one-op", "graph-mlir", "grammar", "pipeline")


def _generation_grammar():
    """relay.lark with its operator-precedence ladder (equality > relation > sum > product >
    unary) flattened to one level, for generation only: hypothesis expands each level of the
    ladder on every path to an atom, and drawing 20 programs took 230 s instead of 3 s. The
    texts are still parsed by the real grammar, so every operator and precedence is tried."""
    from lark import Lark

    from lathe.textual_ir.parser import GRAMMAR_PATH

    grammar = GRAMMAR_PATH.read_text()
    a, b = grammar.find("?expr: equality"), grammar.find("?postfix: atom")
    if 0 <= a < b:
        grammar = (
            grammar[:a]
            + """?expr: unary
     | unary TY_ANNOT                            -> annotated
     | expr BINOP unary                          -> binop
?unary: postfix
      | "-" unary                                -> negative
BINOP: "==" | "!=" | "<=" | ">=" | "<" | ">" | "+" | "-" | "*" | "/"
"""
            + grammar[b:]
        )
    return Lark(grammar, parser="lalr", maybe_placeholders=True, start="start")


GRAMMAR_DEPTH = 16  # rules nested deeper than this take their shortest way to the terminals


def _grammar_strategy():
    """Relay text from the generation grammar, nested at most GRAMMAR_DEPTH rules deep before
    every rule takes its shortest way out. Unbounded, fn literals, if/else, calls of values and
    the left-recursive chains (postfix, unary, binop) nested past hypothesis's limit of 100
    nested draws on most tries, each such try thrown away (1 kept in 25): 25 programs took
    54-71 s on an idle machine, the CI run's whole fuzz budget; bounded, 3-5 s at load 10.
    Whitespace and comments between tokens come from small strategies, not their regexes
    (6x faster): a comment holds any characters, and a line comment ends its line."""
    import hypothesis.strategies as st
    from hypothesis.extra.lark import LarkStrategy
    from lark.grammar import NonTerminal

    text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=10)
    ignored = {
        "WS": st.sampled_from([" ", "  ", "\n", "\t", "\r\n", "\x0c"]),
        "COMMENT": st.one_of(
            text.map(lambda t: f"//{t}\n"),
            st.text(st.characters(codec="utf-8"), max_size=10)
            .filter(lambda t: "*/" not in t)
            .map(lambda t: f"/*{t}*/"),
        ),
    }

    class DepthBounded(LarkStrategy):
        def __init__(self, grammar):
            super().__init__(grammar, None, ignored, st.characters(codec="utf-8"))
            _, rules, _ = grammar.grammar.compile(grammar.options.start, ())
            height: dict[str, int] = {}  # the fewest rules nested on any way to terminals
            changed = True
            while changed:
                changed = False
                for r in rules:
                    h = 1 + max(
                        (height.get(s.name, 1 << 30) for s in r.expansion if isinstance(s, NonTerminal)), default=0
                    )
                    if h < height.get(r.origin.name, 1 << 30):
                        height[r.origin.name], changed = h, True
            shortest: dict[str, list] = {}
            for r in rules:
                if all(height.get(s.name, 0) < height[r.origin.name] for s in r.expansion):
                    shortest.setdefault(r.origin.name, []).append(tuple(r.expansion))
            self.free, self.depth = self.nonterminal_strategies, 0
            self.closing = {k: st.sampled_from(sorted(v, key=len)) for k, v in shortest.items()}

        def do_draw(self, data):
            self.depth = 0
            return super().do_draw(data)

        def draw_symbol(self, data, symbol, draw_state):
            self.depth += 1
            self.nonterminal_strategies = self.closing if self.depth > GRAMMAR_DEPTH else self.free
            try:
                super().draw_symbol(data, symbol, draw_state)
            finally:
                self.depth -= 1

    return DepthBounded(_generation_grammar())


CASES_PER_WEIGHT = 5  # a round of generation: this many cases per unit of a kind's weight


def case_strategies(seeds: list[tuple[str, str, str]], pipelines: bool = True, only=None):
    """kind → (weight, strategy) for every kind of case (or those in `only`), weighted so cheap
    parse-level cases dominate and compiles stay affordable."""
    s = _strategies()
    st = s["st"]
    kinds = {
        "mutant": (4, lambda: mutant(st, seeds)),
        "graph": (2, lambda: st.builds(lambda p: Case("graph", *p), s["graph_program"]())),
        "one-op": (2, lambda: st.builds(lambda t: Case("one-op", "lathe", t), s["one_op_call"]())),
        "graph-mlir": (1, lambda: st.builds(lambda t: Case("graph-mlir", "mlir", t), s["graph_mlir"]())),
        "grammar": (1, lambda: st.builds(lambda t: Case("grammar", "lathe", t), _grammar_strategy())),
        "pipeline": (
            1,
            lambda: st.builds(lambda p, spec: Case("pipeline", *p, spec), s["graph_program"](4), s["pipeline"]()),
        ),
    }
    chosen = [k for k in KINDS if (only is None or k in only) and (pipelines or k != "pipeline")]
    return {k: (kinds[k][0], kinds[k][1]()) for k in chosen}


def generate(
    count: int,
    seed: int,
    seeds: list[tuple[str, str, str]],
    pipelines: bool = True,
    sink=None,
    deadline: float | None = None,
    only=None,
) -> list[Case]:
    """`count` cases, the same ones for the same seed: hypothesis drives the draws, nothing is
    shrunk. Drawn in chunks, each with the next seed, so a campaign can stop at `deadline` and
    hand each case to `sink` (a worker queue) as soon as it exists."""
    import warnings

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    out: list[Case] = []
    put = sink or out.append
    strategies = case_strategies(seeds, pipelines, only)
    made = 0

    def draw(strategy, n: int, seed: int) -> list[Case]:
        batch: list[Case] = []

        @hseed(seed)
        @settings(
            max_examples=n,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def collect(case):
            batch.append(case)

        collect()
        return batch[:n]

    # Each round draws every kind in proportion to its weight, so the mix of a campaign
    # (and of the CI run) does not depend on how a hypothesis version biases its choices.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while made < count and (deadline is None or time.time() < deadline):
            before = made
            for weight, strategy in strategies.values():
                n = min(weight * CASES_PER_WEIGHT, count - made)
                if n <= 0 or (deadline is not None and time.time() >= deadline):
                    break
                for case in draw(strategy, n, seed):
                    put(case)
                    made += 1
                seed += 1
            if made == before:
                break
    return out


# ---------------------------------------------------------------------------
# running one case (inside a worker process)


def run_case(case: Case) -> Outcome:
    from lathe.errors import LatheError

    t0 = time.perf_counter()
    stage = ["parse"]
    try:
        outcome = _run(case, stage)
    except LatheError as e:
        located = e.loc is not None or _names_op(e.message)
        outcome = Outcome("error" if located else "unlocated", f"{stage[0]}: {_template(e.message)}", e.render())
    except RoundTripError as e:
        outcome = Outcome("crash", f"round trip: {_template(str(e))}", str(e))
    except BaseException as e:  # noqa: BLE001 - everything else is what the fuzzer is looking for
        if isinstance(e, KeyboardInterrupt):
            raise
        outcome = Outcome("crash", _crash_key(e), f"{stage[0]}: {type(e).__name__}: {str(e)[:500]}")
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _run(case: Case, stage: list[str]) -> Outcome:
    from lathe.api import compile, interpret, parse_source
    from lathe.textual_ir.printer import is_graph_level

    module = parse_source(case.text, f"case.{case.fmt}", case.fmt)
    stage[0] = "print"
    _round_trip(module, case.fmt)
    entry = _entry(module)
    if entry is None or not is_graph_level(module, kernels=True):  # what the interpreter runs
        return Outcome("ok")
    inputs = _inputs(entry)
    if inputs is None:
        return Outcome("ok")
    stage[0] = "interpret"
    ref = interpret(module, entry=entry.sym_name.data, **inputs)
    if case.pipeline is None:
        return Outcome("ok")
    stage[0] = "compile"
    compiled = compile(module, pipeline=case.pipeline, entry=entry.sym_name.data)
    stage[0] = "run"
    got = compiled.run(**inputs)
    return _compare(got, ref, module)


class RoundTripError(Exception):
    """Lathe printed text that Lathe cannot read back."""


def _round_trip(module, fmt: str) -> None:
    """What Lathe prints, Lathe must read back: MLIR always, Relay text while at graph level."""
    from lathe.api import parse_source
    from lathe.errors import LatheError
    from lathe.textual_ir.printer import is_graph_level, print_relay

    for generic in (False, True):
        text = _print_mlir(module, generic)
        try:
            parse_source(text, "printed.mlir", "mlir")
        except LatheError as e:
            raise RoundTripError(f"printed MLIR does not parse back: {e.message}") from None
    if is_graph_level(module):
        try:
            text = print_relay(module)
        except LatheError:
            return  # e.g. a tensor constant: it has no Relay spelling, and says so
        try:
            parse_source(text, "printed.lathe", "lathe")
        except LatheError as e:
            raise RoundTripError(f"printed Relay text does not parse back: {e.message}") from None


def _entry(module):
    from xdsl.dialects import func

    funcs = [f for f in module.ops if isinstance(f, func.FuncOp) and not f.is_declaration]
    named = [f for f in funcs if f.sym_name.data == "main"]
    return (named or funcs or [None])[0]


def _inputs(f) -> dict | None:
    """Random non-zero inputs (so division and log stay finite), or None when they are too big to run."""
    import numpy as np
    from xdsl.dialects.builtin import TensorType

    from lathe.dialects.dtypes import np_dtype
    from lathe.dialects.functions import param_names

    rng = np.random.default_rng(0)
    out = {}
    for name, t in zip(param_names(f), f.function_type.inputs.data):
        if not isinstance(t, TensorType):
            return None
        shape = tuple(3 if d < 0 else d for d in t.get_shape())  # a ? dimension takes any size
        if int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
            return None
        dt = np_dtype(t.element_type)
        if dt == np.bool_:
            v = rng.random(shape) < 0.5
        elif np.issubdtype(dt, np.integer):
            v = rng.integers(1, 5, size=shape) * rng.choice([-1, 1], size=shape)
        else:
            v = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1, 1], size=shape)
        out[name] = np.asarray(v).astype(dt)
    return out


def _compare(got, ref, module) -> Outcome:
    """NaN-aware relative error against the interpreter, with a tolerance for the least precise
    dtype anywhere in the program; a miscompile's cause is named by the ops it involves."""
    import numpy as np
    from xdsl.dialects.builtin import TensorType

    from lathe.dialects import graph
    from lathe.testing.compare import flatten_outputs, max_relative_error

    ops = sorted({op.relay_name() for op in module.walk() if isinstance(op, graph.GraphOp)})
    g, r = flatten_outputs(got), flatten_outputs(ref)
    kinds = [(np.asarray(x).shape, np.asarray(x).dtype) for x in g.values()]
    if len(g) != len(r) or kinds != [(np.asarray(x).shape, np.asarray(x).dtype) for x in r.values()]:
        return Outcome("miscompile", f"miscompile: shapes or dtypes differ ({', '.join(ops)})", f"got {kinds}")
    dtypes = {
        graph.dtype_name(v.type.element_type)
        for op in module.walk()
        for v in (*op.results, *op.operands)
        if isinstance(v.type, TensorType)
    }
    rtol = max([RTOL.get(d, 1e-3) for d in dtypes] + [1e-3])
    err = max_relative_error(got, ref)
    if not err <= rtol:
        return Outcome(
            "miscompile", f"miscompile: values differ ({', '.join(ops)})", f"max relative error {err:.3g} > {rtol:g}"
        )
    return Outcome("ok")


def _names_op(message: str) -> bool:
    """A message that says which op (or pass, or function) it is about counts as located
    (the rule: file:line:col, or the op)."""
    from lathe.dialects import graph
    from lathe.pipelines import lathe_passes

    words = set(re.findall(r"[A-Za-z_][\w.-]*", message))
    return (
        bool(words & (set(graph.OPS_BY_RELAY_NAME) | set(lathe_passes())))
        or any(re.match(r"(graph|te|loop|scf|func|arith|memref|builtin)\.\w", w) for w in words)
        or "@" in message
    )


def _template(message: str) -> str:
    """A message with its particulars blanked, so one cause is one finding."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return re.sub(r"'[^']*'|\"[^\"]*\"|%[\w.]+|@\w+|-?\d[\w.+-]*", "_", first)[:160]


def _crash_key(e: BaseException) -> str:
    """Exception type + the innermost frame in Lathe's own code (not the fuzzer's)."""
    here = Path(__file__).resolve()
    frames = [
        f
        for f in traceback.extract_tb(e.__traceback__)
        if Path(f.filename).resolve().is_relative_to(ROOT)
        and Path(f.filename).resolve() != here
        and ".venv" not in Path(f.filename).parts
    ]
    where = f"{Path(frames[-1].filename).resolve().relative_to(ROOT)}:{frames[-1].name}" if frames else "?"
    return f"{type(e).__name__} at {where}"


# hooks that make a worker misbehave on purpose, so the tests can check the harness notices
_SELF_TESTS = {
    "selftest-hang": lambda: time.sleep(3600),
    "selftest-die": lambda: os.kill(os.getpid(), 9),
    "selftest-raise": lambda: [][1],
}


def worker_main() -> int:
    """Read cases (JSON lines) on stdin, answer outcomes on the original stdout; anything the
    compiler prints goes to stderr, so it cannot corrupt the answers."""
    import resource

    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    soft = 8 << 30
    resource.setrlimit(resource.RLIMIT_AS, (soft, resource.getrlimit(resource.RLIMIT_AS)[1]))
    for line in sys.stdin:
        case = Case(**json.loads(line))
        if case.kind in _SELF_TESTS:
            try:
                _SELF_TESTS[case.kind]()
            except Exception as e:  # noqa: BLE001
                outcome = Outcome("crash", _crash_key(e), repr(e))
        else:
            outcome = run_case(case)
        proto.write(json.dumps(dataclasses.asdict(outcome)) + "\n")
        proto.flush()
    return 0


# ---------------------------------------------------------------------------
# the harness


class Worker:
    """A worker process; replaced after a timeout, a death, or `recycle` cases (JIT memory grows)."""

    def __init__(self, recycle: int = 300):
        self.proc: subprocess.Popen | None = None
        self.recycle = recycle
        self.served = 0

    def _start(self) -> subprocess.Popen:
        env = {**os.environ, "LATHE_NUM_THREADS": os.environ.get("LATHE_NUM_THREADS", "1")}
        return subprocess.Popen(
            [sys.executable, "-m", "lathe.testing.fuzz", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )

    def run(self, case: Case, timeout: float | None = None) -> Outcome:
        if self.proc is None or self.proc.poll() is not None or self.served >= self.recycle:
            self.close()
            self.proc = self._start()
            self.served = 0
        self.served += 1
        timeout = timeout or (COMPILE_TIMEOUT if case.pipeline else PARSE_TIMEOUT)
        t0 = time.perf_counter()
        try:
            self.proc.stdin.write(case.to_json() + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout + (5.0 if self.served == 1 else 0.0))
        if not ready:
            self.close()
            return Outcome("timeout", f"timeout after {timeout:g} s", seconds=time.perf_counter() - t0)
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            return Outcome("died", f"worker died ({_signal_name(code)})", seconds=time.perf_counter() - t0)
        return Outcome(**json.loads(line))

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _signal_name(code: int) -> str:
    import signal

    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            pass
    return f"exit {code}"


@dataclass
class Finding:
    outcome: str
    key: str
    message: str
    case: Case
    count: int = 1


@dataclass
class Report:
    table: dict[str, Counter] = field(default_factory=dict)  # case kind -> outcome -> count
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)
    seconds: float = 0.0
    cases: int = 0

    def add(self, case: Case, outcome: Outcome) -> None:
        self.cases += 1
        self.table.setdefault(case.kind, Counter())[outcome.kind] += 1
        if outcome.kind not in FINDINGS:
            return
        key = (outcome.kind, outcome.key)
        f = self.findings.get(key)
        if f is None:
            self.findings[key] = Finding(outcome.kind, outcome.key, outcome.message, case)
        else:
            f.count += 1
            if len(case.text) < len(f.case.text):  # keep the smallest reproducer seen
                f.case, f.message = case, outcome.message

    def totals(self) -> Counter:
        total = Counter()
        for c in self.table.values():
            total.update(c)
        return total

    def render(self) -> str:
        rows = [["kind", *OUTCOMES, "total"]]
        for kind, c in sorted(self.table.items()) + [("all", self.totals())]:
            rows.append([kind, *(str(c[o]) for o in OUTCOMES), str(sum(c.values()))])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths))) for r in rows]
        lines.append(f"{self.cases} cases in {self.seconds:.0f} s; {len(self.findings)} distinct findings")
        for f in sorted(self.findings.values(), key=lambda f: (f.outcome, f.key)):
            lines.append(f"  {f.outcome:10s} x{f.count:<5d} {f.key}")
        return "\n".join(lines)


def run_cases(cases, jobs: int = 1, progress=None, deadline: float | None = None) -> Report:
    """Run cases (a list, or a callable that feeds each case to the sink it is given) in `jobs`
    workers; at `deadline` (a time.time()) stop, reporting only the cases that ran."""
    import queue
    import threading

    report = Report()
    lock = threading.Lock()
    todo: queue.Queue = queue.Queue(maxsize=4 * max(1, jobs))
    t0 = time.perf_counter()

    def loop():
        w = Worker()
        try:
            while (case := todo.get()) is not None:
                if deadline is not None and time.time() > deadline:
                    continue  # drain, so the producer never blocks
                outcome = w.run(case)
                with lock:
                    report.add(case, outcome)
                    if progress:
                        progress(report)
        finally:
            w.close()

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(max(1, jobs))]
    for t in threads:
        t.start()
    try:
        if callable(cases):
            cases(todo.put)
        else:
            for case in cases:
                todo.put(case)
    finally:
        for _ in threads:
            todo.put(None)
        for t in threads:
            t.join()
    report.seconds = time.perf_counter() - t0
    return report


def reduce(case: Case, outcome: str, key: str, worker: Worker, budget: int = 150) -> Case:
    """Greedy reduction: drop lines, then ever smaller chunks of characters, while the same cause remains."""
    tries = [0]

    def same(text: str) -> bool:
        if tries[0] >= budget:
            return False
        tries[0] += 1
        o = worker.run(dataclasses.replace(case, text=text))
        return o.kind == outcome and o.key == key

    text = case.text
    for unit in ("line", 64, 8, 1):
        parts = text.split("\n") if unit == "line" else [text[i : i + unit] for i in range(0, len(text), unit)]
        joiner = "\n" if unit == "line" else ""
        k = 0
        while k < len(parts) and tries[0] < budget:
            candidate = parts[:k] + parts[k + 1 :]
            if candidate and same(joiner.join(candidate)):
                parts = candidate
            else:
                k += 1
        text = joiner.join(parts)
    return dataclasses.replace(case, text=text)


def write_findings(report: Report, out: Path, reduce_with: Worker | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Fuzz findings", "", "```", report.render(), "```", ""]
    for f in sorted(report.findings.values(), key=lambda f: (f.outcome, f.key)):
        case = reduce(f.case, f.outcome, f.key, reduce_with) if reduce_with and f.outcome != "timeout" else f.case
        lines += [
            f"## {f.outcome}: {f.key} (x{f.count})",
            "",
            f"kind {case.kind}, format {case.fmt}" + (f", origin {case.origin}" if case.origin else ""),
            "",
        ]
        if case.pipeline:
            lines += [f"pipeline: `{case.pipeline}`", ""]
        lines += ["```", f.message.strip()[:2000], "```", "", "reproducer:", "", "```", case.text, "```", ""]
    path = out / "findings.md"
    path.write_text("\n".join(lines))
    (out / "summary.json").write_text(
        json.dumps(
            {
                "cases": report.cases,
                "seconds": report.seconds,
                "table": report.table,
                "totals": report.totals(),
                "findings": [[f.outcome, f.key, f.count] for f in report.findings.values()],
            },
            indent=1,
        )
    )
    return path


def all_seeds(zoo: bool = True, lowered: int = 12, seed: int = 0) -> list[tuple[str, str, str]]:
    seeds = seed_texts()
    if lowered:
        programs = [
            c.text for c in generate(lowered, seed, seeds, pipelines=False) if c.kind == "graph" and c.fmt == "lathe"
        ]
        seeds += lowered_texts(programs)
    if zoo:
        try:
            seeds += zoo_texts()
        except Exception as e:  # noqa: BLE001 - onnx missing: fuzz without the zoo, and say so
            print(f"note: no zoo seeds ({type(e).__name__}: {e})", file=sys.stderr)
    return seeds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lathe.testing.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000, help="number of cases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--out", default="fuzz-out", help="where findings.md and summary.json go")
    ap.add_argument("--no-zoo", action="store_true", help="no zoo-model seeds (they need onnx)")
    ap.add_argument("--no-pipelines", action="store_true", help="parse, print and interpret only; never compile")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this long, reporting what ran")
    ap.add_argument("--kinds", help=f"only these kinds of case, comma-separated ({', '.join(KINDS)})")
    ap.add_argument("--no-reduce", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main()
    t0 = time.time()
    seeds = all_seeds(zoo=not args.no_zoo, seed=args.seed)
    print(f"{len(seeds)} seeds in {time.time() - t0:.0f} s; generating and running {args.count} cases", flush=True)
    deadline = t0 + 60 * args.minutes if args.minutes else None
    last = [time.time()]

    def progress(r: Report):
        if time.time() - last[0] > 30:
            last[0] = time.time()
            t = r.totals()
            print(f"  {r.cases} cases: " + ", ".join(f"{o} {t[o]}" for o in OUTCOMES if t[o]), flush=True)

    only = set(args.kinds.split(",")) if args.kinds else None
    if only and not only <= set(KINDS):
        ap.error(f"--kinds: unknown {', '.join(sorted(only - set(KINDS)))} (kinds: {', '.join(KINDS)})")
    report = run_cases(
        lambda sink: generate(args.count, args.seed, seeds, not args.no_pipelines, sink, deadline, only),
        args.jobs,
        progress,
        deadline,
    )
    print(report.render())
    reducer = None if args.no_reduce else Worker()
    try:
        path = write_findings(report, Path(args.out), reducer)
    finally:
        if reducer:
            reducer.close()
    print(f"findings written to {path}")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
