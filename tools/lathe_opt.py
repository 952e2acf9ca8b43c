"""lathe-opt: mlir-opt/xdsl-opt for Lathe.

Reads .lathe (Relay text) or .mlir (any Lathe or xDSL dialect), runs a pass
pipeline (`-p`), writes the result. Built on xDSL's `xDSLOptMain`, so its
flags keep working; Lathe adds the Relay frontend and emitter, the LLVM
target, --print-ir-after-all, --list-passes and --emit, and hides xDSL's targets
that do not take Lathe's IR. Errors are printed as file:line:col diagnostics
with exit code 1, never a traceback; a closed pipe ends the run quietly; an
existing output file is only replaced once everything succeeded (tools/common.py).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from io import BytesIO, StringIO
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException, ParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from lathe.errors import LatheError
from lathe.tools.common import run_tool, usage_error, versions, write_text

# xDSL's targets that take Lathe's IR; the others (x86-asm, riscv-asm, wgsl, ...) want
# xDSL's own low-level dialects and would fail on it or print nothing.
XDSL_TARGETS = ("mlir",)


class _VersionLine(str):
    """xDSL's --version prints `version_format.format(xdsl_version=...)`: this one formats
    to Lathe's line instead, computed only when asked (it loads LLVM to learn its version)."""

    def format(self, *args, **kwargs) -> str:
        return versions()


class LatheOptMain(xDSLOptMain):
    version_format = _VersionLine("lathe-opt")

    def __init__(self, args=None):
        self._input_ext = "mlir"
        super().__init__(description="Lathe modular optimizer driver", args=args)

    # -- registration ---------------------------------------------------------
    def register_all_dialects(self):
        super().register_all_dialects()
        from lathe.dialects.graph import Graph
        from lathe.dialects.loop import Loop
        from lathe.dialects.te import TE

        for d in (Graph, TE, Loop):
            self.ctx.register_dialect(d.name, lambda d=d: d)

    def register_all_passes(self):
        super().register_all_passes()
        from lathe.pipelines import lathe_passes

        for name, factory in lathe_passes().items():
            self.register_pass(name, factory)

    def register_all_targets(self):
        super().register_all_targets()
        self.available_targets = {k: v for k, v in self.available_targets.items() if k in XDSL_TARGETS}

        def emit_lathe(module: ModuleOp, out: IO[str]) -> None:
            from lathe.textual_ir.printer import print_relay

            out.write(print_relay(module))

        self.available_targets["lathe"] = emit_lathe
        from lathe.backends.registry import target_kinds

        for kind in target_kinds():
            self.available_targets[kind] = functools.partial(self.emit_kernels, kind)

    def emit_kernels(self, kind: str, module: ModuleOp, out: IO[str]) -> None:
        """-t KIND: the kernels as that backend renders them (LLVM IR, C, ...), for the target
        `KIND --target-options`. Kernels are only generated from loop-level IR: IR above it goes
        through the rest of the opt level's pipeline first (a note says so), or the output would
        be empty."""
        from lathe.api import lower
        from lathe.backends.registry import resolve_target
        from lathe.pipelines import DEFAULT_OPT_LEVEL, pipeline_for, stage_of, with_pass_options

        backend, target = resolve_target(f"{kind} {self.args.target_options or ''}")
        stage = stage_of(module)
        if stage != "loop":
            level = DEFAULT_OPT_LEVEL if self.args.opt_level is None else self.args.opt_level
            print(
                f"note: -t {kind}: the IR is at {stage} level; lowered it to loops first with the rest of "
                f"-O{level}'s pipeline",
                file=sys.stderr,
            )
            pipeline = with_pass_options(pipeline_for(level, module), backend.graph_pass_options(target))
            module = lower(module, pipeline=pipeline)
        out.write(backend.render(backend.lower(module, target), target))

    def register_all_frontends(self):
        super().register_all_frontends()
        from lathe.textual_ir.source import decode

        def parse_lathe(io) -> ModuleOp:
            from lathe.textual_ir.parser import parse_relay

            return parse_relay(decode(io.read(), self.get_input_name()), self.get_input_name())

        def parse_mlir(io) -> ModuleOp:
            from lathe.textual_ir.mlir import parse_mlir as parse

            return parse(self.ctx, decode(io.read(), self.get_input_name()), self.get_input_name())

        self.available_frontends["lathe"] = parse_lathe
        self.available_frontends["relay"] = parse_lathe
        self.available_frontends["mlir"] = parse_mlir

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser):
        super().register_all_arguments(arg_parser)
        # a usage mistake exits 1 like every other mistake (argparse's own code is 2)
        arg_parser.error = functools.partial(usage_error, arg_parser)  # type: ignore[method-assign]
        arg_parser.add_argument(
            "--print-ir-after-all",
            action="store_true",
            help="print the IR after every pass (Relay text while at graph level for .lathe input)",
        )
        arg_parser.add_argument(
            "--list-passes", action="store_true", help="list Lathe's passes with what each does, then xDSL's, and exit"
        )
        arg_parser.add_argument(
            "-O",
            dest="opt_level",
            type=int,
            choices=range(4),
            default=None,
            metavar="N",
            help="run the graph-level pipeline of opt level N (0..3) before -p",
        )
        arg_parser.add_argument("--list-ops", action="store_true", help="list the graph operators and exit")
        arg_parser.add_argument(
            "--target-options",
            default=None,
            metavar="'-KEY=VALUE ...'",
            help="options of the -t backend's target, e.g. --target-options='-mcpu=znver4' or "
            "'-mtriple=aarch64-linux-gnu -mattr=+neon' (with '=': the value starts with '-'; default: this machine)",
        )
        arg_parser.add_argument(
            "--emit",
            choices=["lathe", "mlir"],
            default=None,
            help="output format (default: the input's format while at graph level, MLIR below)",
        )

    # -- pipeline -----------------------------------------------------------------
    def setup_pipeline(self):
        from lathe.dialects.verifier import verify
        from lathe.pipelines import build_pipeline

        if self.args.list_passes or self.args.list_ops:
            self.pipeline = build_pipeline("", self.available_passes)
            return
        last = [time.perf_counter()]

        def callback(prev, module, nxt):
            now = time.perf_counter()
            if self.args.time_passes and prev is not None:
                print(f"// pass {prev.name}: {now - last[0]:.4f} s", file=sys.stderr)
            verify(module)
            if prev is not None and (self.args.print_ir_after_all or (self.args.print_between_passes and nxt)):
                print(f"// -----// IR Dump After {prev.name} //----- //")
                print(self.render(module), flush=True)
            last[0] = time.perf_counter()

        spec = self.args.passes
        if self.args.opt_level is not None:
            from lathe.pipelines import GRAPH_PIPELINES

            spec = GRAPH_PIPELINES[self.args.opt_level] + ("," + spec if spec else "")
        self.pipeline = build_pipeline(spec, self.available_passes, callback)

    # -- output -------------------------------------------------------------------
    def render(self, module: ModuleOp, final: bool = False) -> str:
        from lathe.textual_ir.printer import is_graph_level, print_relay

        emit = self.args.emit
        target = self.args.target
        if final and target not in ("mlir", "lathe"):
            return super().output_resulting_program(module)
        if target == "lathe":
            emit = "lathe"
        if emit is None:
            out = self.args.output_file or ""
            if final and out.endswith(".lathe"):
                emit = "lathe"
            elif final and out.endswith(".mlir"):
                emit = "mlir"
            else:
                emit = "lathe" if self._input_ext == "lathe" and is_graph_level(module) else "mlir"
        if emit == "lathe":
            if not is_graph_level(module):
                raise LatheError(
                    "Relay text output (-t lathe, --emit=lathe or -o *.lathe): the IR is below graph "
                    "level and has no Relay text form",
                    note="write MLIR: --emit=mlir, or -o *.mlir",
                )
            return print_relay(module)
        s = StringIO()
        Printer(stream=s, print_generic_format=self.args.print_op_generic).print_op(module)
        return s.getvalue() + "\n"

    def output_resulting_program(self, prog: ModuleOp) -> str:
        return self.render(prog, final=True)

    def list_passes(self) -> None:
        from lathe.pipelines import lathe_passes

        ours = lathe_passes()
        print("Lathe's passes:")
        for name, factory in ours.items():
            print(f"  {name:32s} {_summary(factory())}")
        print("xDSL's passes (on xDSL's dialects; see xDSL's documentation):")
        for name in sorted(set(self.available_passes) - set(ours)):
            print(f"  {name}")

    def run(self):
        if self.args.list_passes:
            self.list_passes()
            return
        if self.args.list_ops:
            from lathe.dialects.graph import OPS_BY_RELAY_NAME

            for name, cls in sorted(OPS_BY_RELAY_NAME.items()):
                print(f"{name:24s} {cls.PATTERN.name.lower()}")
            return
        try:
            chunks, ext = self.prepare_input()
        except OSError as e:
            what = "no such file" if isinstance(e, FileNotFoundError) else f"cannot read it: {e.strerror}"
            raise LatheError(f"{self.args.input_file}: {what}") from None
        self._input_ext = ext
        out = StringIO()
        failed = False
        for i, (chunk, offset) in enumerate(chunks):
            if i > 0:
                out.write("// -----\n")
            try:
                data = chunk.read()
                module = self.parse_chunk(BytesIO(b"\n" * offset + data), ext, 0)
                self.apply_passes(module)
                out.write(self.output_resulting_program(module))
            except (LatheError, DiagnosticException, ParseError) as e:
                if not self.args.verify_diagnostics:
                    raise
                failed = True
                out.write(_render_error(e) + "\n")
            finally:
                chunk.close()
        del failed
        text = out.getvalue()
        if self.args.output_file is None:
            sys.stdout.write(text)
        else:
            write_text(self.args.output_file, text)

    def input_format(self, ext: str) -> str:
        """Lathe decides what the input is, not xDSL (whose stdin default moved in 0.75):
        --frontend, else the file's extension (.relay is Relay text too), else MLIR."""
        if self.args.frontend:
            return self.args.frontend.split("{", 1)[0]
        if self.args.input_file is None:
            return "mlir"
        return "lathe" if ext == "relay" else ext

    def get_input_stream(self):
        """The stream and its format as Lathe decides it (xDSL would check the bare extension,
        even with -f, against its frontends)."""
        f, ext = super().get_input_stream()
        fmt = self.input_format(ext)
        if fmt not in self.available_frontends:
            f.close()
            why = f"its extension '.{ext}'" if ext else "a name without an extension"
            raise LatheError(
                f"{self.get_input_name()}: cannot tell the input format from {why}",
                note="expected .lathe or .relay (Relay text) or .mlir; or say which with -f lathe or -f mlir",
            )
        return f, fmt

    def prepare_output(self):  # output is written by run() once everything succeeded
        return sys.stdout


def _summary(cls: type) -> str:
    """The first paragraph of a pass's docstring, which may wrap (a dataclass without a
    docstring documents itself as 'Name()': no description then)."""
    doc = (cls.__doc__ or "").strip()
    if not doc or doc.startswith(cls.__name__ + "("):
        return ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _render_error(e: BaseException) -> str:
    if isinstance(e, LatheError):
        return e.render()
    if isinstance(e, ParseError):
        return str(e).rstrip()
    text = str(e).strip()
    return "error: " + (text if text else type(e).__name__)


def main(argv=None) -> int:
    def body() -> int:
        LatheOptMain(args=argv).run()
        return 0

    # ValueError: xDSL's own argument errors (unknown extension, ...)
    return run_tool(body, _render_error, (LatheError, DiagnosticException, ParseError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
