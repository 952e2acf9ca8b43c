"""The `lathe` command: run and compile models.

    lathe run FILE [--params p.npz] [--inputs in.npz] [--output out.npz] [--check] [--bench N]
              [--profile] [--profile-json PATH]
    lathe compile FILE [-o out.o | -o model.lathe.d [--params p.npz] | --emit=llvm|asm|obj] [--target T] [--db tuning.jsonl]
    lathe tune FILE [--params p.npz] --trials N --db tuning.jsonl [--target T] [--timeout S]
               [--executor dask://HOST:PORT] [--plot curve.png]
    lathe import MODEL.onnx [-o model.lathe] [--opset N] [--shape NAME=D0,D1,...]
    lathe demo [--threads N] [--quick]

Every user mistake is printed as a diagnostic with exit code 1; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from lathe.errors import LatheError
from lathe.testing.compare import flatten_outputs, max_relative_error
from lathe.tools.common import VersionAction, run_tool, usage_error, write_bytes, write_files, write_text

RTOL = 1e-5


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.3f} ms"


def _print_value(name: str, v) -> None:
    if isinstance(v, tuple):
        for k, x in enumerate(v):
            _print_value(f"{name}_{k}", x)
        return
    with np.printoptions(precision=6, suppress=False, threshold=64, edgeitems=4, linewidth=100):
        print(f"{name}: shape={v.shape} dtype={v.dtype}")
        print(np.array2string(v, prefix="  "))


def _npz(arrays: dict[str, np.ndarray]):
    return lambda f: np.savez(f, **arrays)  # to a stream: np.savez appends .npz to a file name


def _conversions(given: dict[str, np.ndarray], bound: dict[str, np.ndarray]) -> str | None:
    """What binding converted (float64 weights for float32 parameters, say), in one line:
    a silent conversion hides a mistake in how the inputs were made."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, value in bound.items():
        was = np.asarray(given[name]).dtype if name in given else value.dtype
        if was != value.dtype:
            groups.setdefault((str(was), str(value.dtype)), []).append("%" + name)
    if not groups:
        return None
    return (
        "note: converted "
        + "; ".join(f"{', '.join(names)} from {a} to {b}" for (a, b), names in groups.items())
        + " (the parameters' types)"
    )


def _check_runnable_by_reference(module, file: str) -> None:
    """--check needs IR that the reference interpreter runs: said before compiling, not after."""
    from lathe.textual_ir.printer import is_graph_level

    if not is_graph_level(module, kernels=True):
        raise LatheError(
            f"--check: {file} is below graph level, and the reference interpreter runs graph ops only",
            note="check the graph-level model (.lathe, or MLIR before lower-graph-to-te)",
        )


def _load_model(path: str, params_path: str | None):
    """A model file and its weights: Relay text or MLIR with --params' .npz, or an ONNX model
    (by its .onnx suffix) imported with its initializers as the weights, which --params
    entries replace by name."""
    import lathe

    if path.endswith(".onnx"):
        module, params = lathe.from_onnx(path)
    else:
        module, params = lathe.load(path), {}
    if params_path:
        params |= lathe.load_params(params_path)
    return module, params


def cmd_run(args) -> int:
    from xdsl.dialects import func

    import lathe
    from lathe.runtime.interpreter import bind_arguments

    module, params = _load_model(args.file, args.params)
    if args.check:
        _check_runnable_by_reference(module, args.file)
    _check_measurable_here(args)
    inputs = lathe.load_params(args.inputs) if args.inputs else {}
    funcs = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
    if args.entry not in funcs:
        raise LatheError(f"{args.file}: no function @{args.entry}")
    where = f"{args.file}: "
    bound, filled = bind_arguments(funcs[args.entry], inputs, params, fill_random=True, seed=args.seed, where=where)
    if filled:
        print(
            f"note: no value given for {', '.join('%' + n for n in filled)}; "
            f"filled with seeded random values (seed {args.seed})",
            file=sys.stderr,
        )
    from lathe.dialects.functions import param_names

    values = dict(zip(param_names(funcs[args.entry]), bound))
    note = _conversions({**params, **inputs}, values)
    if note:
        print(note, file=sys.stderr)
    # the params file's weights are bound at compile time, as TVM's build does with params,
    # so their preprocessing folds away; inputs (given or filled) stay run-time inputs
    weights = {k: v for k, v in values.items() if k in params and k not in inputs}
    cm = lathe.compile(
        module,
        target=args.target,
        params=weights,
        num_threads=args.threads,
        entry=args.entry,
        opt_level=args.opt_level,
        tuning_db=args.db,
        emulate=True,
    )
    if getattr(cm, "emulated", False):  # (a module run by the VM has no such attribute)
        print(
            f"note: {cm.target} is not this machine's architecture: the model runs emulated "
            f"({cm.executor.description}), for its results, not its speed",
            file=sys.stderr,
        )
    run_inputs = {k: v for k, v in values.items() if k not in weights}
    result = cm.run(**run_inputs)
    if args.output:
        write_files([(args.output, _npz(flatten_outputs(result)))])
        print(f"wrote {args.output} ({', '.join(flatten_outputs(result))})")
    else:
        _print_value("output", result)
    status = 0
    if args.check:
        ref = lathe.interpret(module, entry=args.entry, **values)
        err = max_relative_error(result, ref)
        ok = err <= args.rtol
        print(
            f"check: max relative error {err:.3e} against the reference interpreter "
            f"(bound {args.rtol:g}): {'OK' if ok else 'FAILED'}"
        )
        status = 0 if ok else 1
    if args.bench:
        print(f"compiled: {cm.compile_stats}")
        times = np.asarray(cm.benchmark(args.bench))
        print(
            f"latency: median {_fmt_seconds(float(np.median(times)))} over {args.bench} runs "
            f"(min {_fmt_seconds(float(times.min()))}, max {_fmt_seconds(float(times.max()))}), "
            f"{cm.num_threads} thread(s), target {cm.target.cpu}"
        )
    if args.profile or args.profile_json:
        profile = cm.profile(**run_inputs)
        if args.profile:
            print(profile.table())
        if args.profile_json:
            write_text(args.profile_json, profile.to_json())
            print(f"wrote {args.profile_json} ({len(profile.rows)} kernels)")
    return status


def _check_measurable_here(args) -> None:
    """--bench and --profile time the target's code: under emulation that says nothing."""
    from lathe.backends.registry import resolve_target

    timed = [flag for flag, on in (("--bench", args.bench), ("--profile", args.profile or args.profile_json)) if on]
    if not timed:
        return
    backend, target = resolve_target(args.target)
    if not backend.capabilities(target).runs_here:
        raise LatheError(
            f"{' and '.join(timed)}: {target} does not run natively on this machine, and timings under "
            "emulation say nothing about its hardware",
            note="run without them to check results under emulation; measure on a machine of that architecture",
        )


def _is_directory_output(path: str) -> bool:
    return path.endswith(("/", ".d")) or os.path.isdir(path)


def cmd_compile(args) -> int:
    """The kernels for a target: its source (LLVM IR, C, ...), assembly, a binary, or with
    -o DIR (a directory, or a name ending in .d) every file the backend's artifact holds."""
    import lathe
    from lathe.backends.registry import resolve_target
    from lathe.pipelines import DEFAULT_OPT_LEVEL, pipeline_for, with_pass_options

    module, params = _load_model(args.file, args.params)
    backend, target = resolve_target(args.target)
    level = DEFAULT_OPT_LEVEL if args.opt_level is None else args.opt_level
    pipeline = with_pass_options(pipeline_for(level, module), backend.graph_pass_options(target))
    deploy = bool(args.output and _is_directory_output(args.output) and args.emit is None and backend.deploys)
    if args.params and not deploy:
        raise LatheError("--params is for a deployable artifact: -o DIR with a backend that builds one (llvm)")
    from xdsl.dialects import func

    from lathe.dialects.functions import param_names

    main = next((f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main"), None)
    if deploy and main is None:
        raise LatheError(f"{args.file}: no function @main")
    unknown = sorted(set(params) - set(param_names(main))) if params else []
    if unknown:
        raise LatheError(
            f"{args.params} has entries that @main has no parameter for: {', '.join(unknown)}",
            note="its parameters: " + ", ".join(param_names(main)),
        )
    if params and "fold-constant" in pipeline:  # as lathe.compile binds them: their preprocessing folds away
        from lathe.passes.fold_constant import bind_params

        module, params = bind_params(module.clone(), params, "main"), {}
    lowered = backend.lower(lathe.lower(module, pipeline=pipeline, tuning_db=args.db, target=target), target)
    if deploy:
        from lathe.runtime.export import export

        main = next(f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == "main")
        written, not_linked = export(lowered, backend, target, args.output, params, param_names(main))
        print(f"wrote {args.output}: {', '.join(written)} ({target})")
        if not_linked:
            print(f"warning: {not_linked}", file=sys.stderr)
        return 0
    if args.output and _is_directory_output(args.output) and args.emit is None:
        files = backend.artifact(lowered, target)
        os.makedirs(args.output, exist_ok=True)
        write_files([(os.path.join(args.output, name), _bytes_writer(data)) for name, data in files.items()])
        print(f"wrote {args.output}: {', '.join(sorted(files))} ({target})")
        return 0
    suffix = os.path.splitext(args.output or "")[1]
    emit = args.emit or ("obj" if suffix in (".o", ".so", ".bin", ".obj") else "asm" if suffix == ".s" else "source")
    source = backend.render(lowered, target)
    if emit == "obj":
        if not args.output:
            raise LatheError("--emit=obj needs -o FILE")
        data = backend.compile_source(source, target)
        write_bytes(args.output, data)
        print(f"wrote {args.output} ({len(data)} bytes, {target})")
        return 0
    if emit == "asm":
        text = backend.assembly(source, target)
    else:
        text = backend.optimized_source(source, target) if args.optimized else source
    if args.output:
        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def _bytes_writer(data: bytes):
    return lambda f: f.write(data)


def cmd_backends(args) -> int:
    """What is installed; with --check NAME, the conformance suite on it."""
    from lathe.backends.registry import installed

    if args.check:
        from lathe.testing.backends import check_backend

        report = check_backend(args.check, emulate=True)
        return 0 if report.ok else 1
    rows = installed()
    print(f"{'name':10s} {'version':14s} {'targets':16s} state")
    for b in rows:
        state = f"failed to load: {b.error}" if b.error else b.status
        print(f"{b.name:10s} {b.version:14s} {','.join(b.targets) or '-':16s} {state}")
        if b.description:
            print(f"{'':10s} {b.description}  [{b.source}]")
        if not b.error:
            print(f"{'':10s} supports: {_supports(b.name)}")
    return 0


def _supports(name: str) -> str:
    from lathe.backends.registry import get_backend

    backend = get_backend(name)
    try:
        kind = backend.target_kinds[0]
        caps = backend.capabilities(backend.parse_target(kind, {}))
    except LatheError as e:
        return f"(cannot say: {e.message})"
    ops = "every graph op" if caps.ops is None else f"{len(caps.ops)} graph ops"
    prims = ", ".join(sorted(caps.schedule_primitives)) or "none"
    where = "runs here" if caps.runs_here else "compiles here, runs elsewhere"
    return f"{ops}; dtypes {', '.join(sorted(caps.dtypes))}; schedule primitives {prims}; {where}"


def cmd_new_backend(args) -> int:
    from lathe.tools.scaffold import new_backend

    files = new_backend(args.name, args.dir)
    print(f"wrote {len(files)} files into {args.dir}: a backend package for --target {args.name}")
    print(f"next: pip install -e '{args.dir}[test]' && lathe backends && pytest {os.path.join(args.dir, 'tests')}")
    return 0


def _parse_shapes(specs) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for spec in specs or []:
        name, sep, dims = spec.rpartition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            sep = ""
        if not sep or not name:
            raise LatheError(f"--shape {spec!r}: expected NAME=D0,D1,... (e.g. input=1,3,224,224)")
    return shapes


def cmd_import(args) -> int:
    """ONNX → Relay text + params: both or neither (write_files)."""
    from lathe.frontends.onnx import from_onnx
    from lathe.textual_ir.parser import parse_relay
    from lathe.textual_ir.printer import print_relay

    module, params = from_onnx(args.file, opset=args.opset, shapes=_parse_shapes(args.shape))
    out = args.output or os.path.splitext(args.file)[0] + ".lathe"
    base = out[: -len(".lathe")] if out.endswith(".lathe") else out
    params_path = base + ".params.npz"
    text = print_relay(module)
    try:  # what is written must read back (the text format has no spelling for e.g. an infinite attribute)
        parse_relay(text, out)
    except LatheError as e:
        raise LatheError(f"the imported model has no faithful Relay text form: {e.message}", note=e.note) from None
    main = next(iter(module.ops))
    n_in = len(main.body.block.args) - len(params)  # type: ignore[attr-defined]
    write_files([(params_path, _npz(params)), (out, lambda f: f.write(text.encode()))])
    n_ops = sum(1 for _ in main.walk()) - 2  # type: ignore[attr-defined]
    print(f"wrote {out} ({n_ops} ops, {n_in} input(s))")
    size = sum(v.nbytes for v in params.values())
    print(f"wrote {params_path} ({len(params)} arrays, {size} bytes)")
    return 0


def cmd_tune(args) -> int:
    """Tune every distinct kernel, appending each trial to --db; then the table per task."""
    import lathe
    from lathe.tuner.tune import format_table

    module, params = _load_model(args.file, args.params)
    results = lathe.tune(
        module,
        params=params,
        trials=args.trials,
        db=args.db,
        target=args.target,
        timeout_s=args.timeout,
        search=args.search,
        progress=True,
        seed=args.seed,
        early_stop=args.early_stop,
        executor=args.executor,
        plot=args.plot,
    )
    print(format_table(results))
    if args.plot:
        print(f"tuning curves in {args.plot}")
    print(f"records in {args.db}; compile with them: lathe run {args.file} --db {args.db}")
    return 0


def cmd_demo(args) -> int:
    from lathe.tools.demo import run

    return run(threads=args.threads, quick=args.quick)


def _at_least(low: int):
    """An argparse type: an integer >= low (argparse then reports the option and the value)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "int"  # argparse's message for a non-number: "invalid int value"
    return parse


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):  # NaN fails every comparison
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


_non_negative_float.__name__ = "float"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        usage_error(self, message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lathe", description="Lathe deep-learning compiler")
    p.add_argument("--version", action=VersionAction, help="print Lathe's version, then xDSL's and LLVM's, and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="compile a model and run it")
    r.add_argument("file")
    r.add_argument("--params", help=".npz with weights, bound to parameters by name")
    r.add_argument("--inputs", help=".npz with inputs, by parameter name")
    r.add_argument("--output", help="write outputs to this .npz (key 'output', or output_0, output_1, ...)")
    r.add_argument("--check", action="store_true", help="compare with the reference interpreter")
    r.add_argument("--rtol", type=_non_negative_float, default=RTOL, help=f"bound for --check (default {RTOL:g})")
    r.add_argument("--bench", type=_at_least(0), default=0, metavar="N", help="print the median latency of N runs")
    r.add_argument(
        "--profile",
        action="store_true",
        help="time every kernel on its own and print one row per kernel: time, share, GFLOP/s, GB/s, %% of peak, source ops",
    )
    r.add_argument("--profile-json", metavar="PATH", help="write the --profile table as JSON to PATH")
    r.add_argument("--target", default="llvm", help="target string, e.g. 'llvm -mcpu=znver4'")
    r.add_argument(
        "--threads",
        type=_at_least(1),
        default=None,
        help="threads for parallel loops (default: LATHE_NUM_THREADS or all cores)",
    )
    r.add_argument("--entry", default="main")
    r.add_argument("--seed", type=_at_least(0), default=0, help="seed for inputs filled with random values")
    r.add_argument(
        "--db", metavar="PATH", help="schedule each kernel by its best record in this tuning database (lathe tune)"
    )
    r.add_argument(
        "-O",
        dest="opt_level",
        type=int,
        choices=range(4),
        default=3,
        metavar="N",
        help="optimization level 0..3 (default 3); see docs/passes.md",
    )
    r.set_defaults(fn=cmd_run)
    c = sub.add_parser(
        "compile",
        help="compile a model's kernels for a target: source, assembly, a binary, "
        "or a directory with all of them (-o DIR)",
    )
    c.add_argument("file")
    c.add_argument(
        "-o",
        "--output",
        help="FILE (.o/.so: the binary, .s: assembly, else the source) or DIR (ending in / or .d, or "
        "existing): an artifact that runs without Lathe (llvm: model.so with a C ABI, weights.bin, metadata.json, "
        "lathe_model.h, example.c, load.py; docs/deployment.md), or the backend's kernel files",
    )
    c.add_argument(
        "--emit", choices=["source", "llvm", "asm", "obj"], help="what to write (llvm is the LLVM backend's source)"
    )
    c.add_argument("--optimized", action="store_true", help="with --emit=source: after the backend's optimiser")
    c.add_argument(
        "--params",
        help=".npz with weights, bound to parameters by name into the artifact (-o DIR; docs/deployment.md)",
    )
    c.add_argument("--target", default="llvm", help="target string, e.g. 'llvm -mtriple=aarch64-linux-gnu', 'c'")
    c.add_argument(
        "-O",
        dest="opt_level",
        type=int,
        choices=range(4),
        default=3,
        metavar="N",
        help="optimization level 0..3 (default 3)",
    )
    c.add_argument(
        "--db", metavar="PATH", help="schedule each kernel by its best record in this tuning database (lathe tune)"
    )
    c.set_defaults(fn=cmd_compile)
    t = sub.add_parser("tune", help="tune the schedule of every distinct kernel, recording trials in a database")
    t.add_argument("file")
    t.add_argument("--params", help=".npz with weights, bound to parameters by name (as lathe run does)")
    t.add_argument(
        "--trials",
        type=_at_least(0),
        required=True,
        metavar="N",
        help="measurements in all, shared among the kernels by expected gain",
    )
    t.add_argument("--db", required=True, metavar="PATH", help="the JSON-lines database to append to and resume from")
    t.add_argument("--target", default="llvm", help="target string, e.g. 'llvm -mcpu=znver4'")
    t.add_argument(
        "--timeout", type=_non_negative_float, default=60.0, metavar="S", help="seconds per candidate (default 60)"
    )
    t.add_argument("--search", choices=["xgb", "random"], default="xgb", help="cost-model search or random search")
    t.add_argument("--seed", type=_at_least(0), default=0, help="seed of the search and of the inputs")
    t.add_argument(
        "--early-stop", type=_at_least(1), default=None, metavar="N", help="stop a kernel after N trials without a gain"
    )
    t.add_argument(
        "--executor",
        default=None,
        metavar="E",
        help="where candidates are measured: local (default, one worker process) or dask://HOST:PORT (a Dask scheduler)",
    )
    t.add_argument("--plot", metavar="PNG", help="draw best-so-far GFLOP/s against trials for each kernel")
    t.set_defaults(fn=cmd_tune)
    b = sub.add_parser("backends", help="list the installed backends, or run the conformance suite on one")
    b.add_argument("--check", metavar="NAME", help="run the backend conformance suite on target NAME")
    b.set_defaults(fn=cmd_backends)
    n = sub.add_parser("new-backend", help="write a pip-installable backend package to start a new target from")
    n.add_argument("name", help="the backend's name and target kind (a lowercase identifier)")
    n.add_argument("--dir", required=True, help="the directory to create")
    n.set_defaults(fn=cmd_new_backend)
    i = sub.add_parser("import", help="import an ONNX model as Relay text (.lathe) and its weights (.params.npz)")
    i.add_argument("file", help="the .onnx model")
    i.add_argument(
        "-o",
        "--output",
        help="the .lathe file to write (default: beside the model); the weights go to the same name with .params.npz",
    )
    i.add_argument("--opset", type=int, default=None, help="override the model's opset")
    i.add_argument(
        "--shape",
        action="append",
        metavar="NAME=D0,D1,...",
        help="a static shape for an input with dynamic dimensions (repeatable)",
    )
    i.set_defaults(fn=cmd_import)
    d = sub.add_parser(
        "demo",
        help="sentence embeddings with all-MiniLM-L6-v2 (real weights): similarity, search, "
        "a check against ONNX Runtime and latency next to it",
    )
    d.add_argument(
        "--threads",
        type=_at_least(1),
        default=None,
        help="threads for Lathe and ONNX Runtime (default: Lathe's default, ONNX Runtime's default session options)",
    )
    d.add_argument("--quick", action="store_true", help="skip the latency table")
    d.set_defaults(fn=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(lambda: args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
