"""The command-line tools, as a user runs them: outputs, files, exit codes,
and diagnostics (file:line:col, non-zero exit, never a traceback)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MLP = str(ROOT / "examples" / "mlp.lathe")
PIPELINE = "inline-calls,outline-kernels,lower-graph-to-te,apply-default-schedule,lower-te-to-loop,cleanup-loops"


def run(tool, *args, cwd=None):
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def assert_clean_failure(r, *words):
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_run_check_and_bench():
    r = run("lathe", "run", MLP, "--check", "--bench", "5")
    assert r.returncode == 0, r.stderr
    assert "output: shape=(1, 10) dtype=float32" in r.stdout
    assert "check: max relative error" in r.stdout and "OK" in r.stdout
    assert "latency: median" in r.stdout
    assert "filled with seeded random values" in r.stderr


def test_run_with_npz_files(tmp_path, rng):
    w = {
        "w1": rng.standard_normal((128, 784)),
        "b1": rng.standard_normal(128),
        "w2": rng.standard_normal((10, 128)),
        "b2": rng.standard_normal(10),
    }
    w = {k: v.astype(np.float32) for k, v in w.items()}
    x = rng.standard_normal((1, 784)).astype(np.float32)
    np.savez(tmp_path / "p.npz", **w)
    np.savez(tmp_path / "in.npz", x=x)
    out = tmp_path / "out.npz"
    r = run("lathe", "run", MLP, "--params", tmp_path / "p.npz", "--inputs", tmp_path / "in.npz", "--output", out)
    assert r.returncode == 0, r.stderr
    assert "filled" not in r.stderr
    with np.load(out) as z:
        assert z.files == ["output"]
        h = np.maximum(x @ w["w1"].T + w["b1"], 0)
        ref = h @ w["w2"].T + w["b2"]
        np.testing.assert_allclose(z["output"], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_run_tuple_output_keys(tmp_path):
    src = tmp_path / "t.lathe"
    src.write_text("def @main(%x: Tensor[(3), float32]) { (negative(%x), exp(%x)) }")
    r = run("lathe", "run", src, "--output", tmp_path / "o.npz", "--check")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "o.npz") as z:
        assert sorted(z.files) == ["output_0", "output_1"]


def test_opt_full_pipeline_prints_every_stage_and_each_parses_back(tmp_path):
    r = run("lathe-opt", MLP, "-p", PIPELINE, "--print-ir-after-all")
    assert r.returncode == 0, r.stderr
    dumps = r.stdout.split("// -----// IR Dump After ")[1:]
    assert [d.split(" ")[0] for d in dumps] == PIPELINE.split(",")
    for d in dumps:
        body = d.split("\n", 1)[1]
        ext = "lathe" if body.startswith("#[version") else "mlir"
        f = tmp_path / f"stage.{ext}"
        f.write_text(body)
        back = run("lathe-opt", f)
        assert back.returncode == 0, (d[:40], back.stderr)
    assert "te.compute" in r.stdout and "scf.for" in r.stdout and "#loop.annotation<parallel>" in r.stdout


def test_opt_emit_formats(tmp_path):
    r = run("lathe-opt", MLP, "--emit=mlir")
    assert r.returncode == 0 and "graph.nn.dense" in r.stdout
    r = run("lathe-opt", MLP)
    assert r.stdout.startswith('#[version = "0.0.5"]')
    out = tmp_path / "o.lathe"
    mlir = tmp_path / "m.mlir"
    mlir.write_text(run("lathe-opt", MLP, "--emit=mlir").stdout)
    r = run("lathe-opt", mlir, "-o", out)
    assert r.returncode == 0 and out.read_text().startswith("#[version")
    r = run("lathe-opt", MLP, "-p", PIPELINE, "--emit=lathe")
    assert_clean_failure(r, "below graph level")


def test_opt_list_passes_and_time():
    r = run("lathe-opt", "--list-passes")
    for name in PIPELINE.split(","):
        assert name in r.stdout.split()
    assert "canonicalize" in r.stdout.split()  # xDSL's passes are there too
    r = run("lathe-opt", MLP, "-p", "inline-calls", "--time-passes")
    assert r.returncode == 0 and "inline-calls" in r.stderr


def test_compile_object_files(tmp_path):
    obj = tmp_path / "mlp.o"
    r = run("lathe", "compile", MLP, "-o", obj)
    assert r.returncode == 0, r.stderr
    assert obj.read_bytes()[:4] == b"\x7fELF"
    arm = tmp_path / "mlp-arm.o"
    r = run("lathe", "compile", MLP, "-o", arm, "--target", "llvm -mtriple=aarch64-linux-gnu")
    assert r.returncode == 0, r.stderr
    data = arm.read_bytes()
    assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == 183  # EM_AARCH64


BAD = {
    "syntax.lathe": ("def @main(%x: Tensor[(4), float32]) {\n  nn.relu(%x;\n}\n", "syntax.lathe:2:13: error"),
    "unknown_op.lathe": (
        "def @main(%x: Tensor[(4), float32]) {\n  nn.frobnicate(%x)\n}\n",
        "unknown_op.lathe:2:3: error: unknown operator",
    ),
    "bad_attr.lathe": (
        'def @main(%x: Tensor[(1, 4), float32]) {\n  nn.bias_add(%x, %x, axis="z")\n}\n',
        "bad_attr.lathe:2:28: error: nn.bias_add: attribute 'axis' must be an integer",
    ),
    "shape.lathe": (
        "def @main(%x: Tensor[(2, 4), float32], %w: Tensor[(3, 5), float32]) {\n  nn.dense(%x, %w)\n}\n",
        "shape.lathe:2:3: error: nn.dense",
    ),
    "undef.lathe": (
        "def @main(%x: Tensor[(4), float32]) {\n  add(%x, %y)\n}\n",
        "undef.lathe:2:11: error: undefined variable %y",
    ),
    "bad.mlir": (
        "func.func @f(%x: tensor<4xf32>) {\n  %0 = graph.nn.relu %x : (tensor<4xf32>) -> tensor<5xf32>\n  func.return\n}\n",
        "nn.relu: result type",
    ),
    "syntax.mlir": (
        "func.func @f(%x: tensor<4xf32>) {\n  %0 = graph.nn.relu %x : (tensor<4xf32> -> tensor<4xf32>\n}\n",
        "syntax.mlir:2:",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_files(tmp_path, name):
    text, words = BAD[name]
    f = tmp_path / name
    f.write_text(text)
    assert_clean_failure(run("lathe-opt", f, cwd=tmp_path), words)
    if name.endswith(".lathe"):
        assert_clean_failure(run("lathe", "run", f, cwd=tmp_path), words)


def test_bad_passes_and_options_keep_existing_output(tmp_path):
    out = tmp_path / "keep.mlir"
    out.write_text("precious")
    assert_clean_failure(
        run("lathe-opt", MLP, "-p", "lower-graph-to-tee", "-o", out),
        "unknown pass 'lower-graph-to-tee'",
        "did you mean lower-graph-to-te?",
    )
    assert_clean_failure(
        run("lathe-opt", MLP, "-p", "inline-calls{entry=main depth=3}", "-o", out),
        "bad option for pass 'inline-calls'",
        "its options: entry",
    )
    assert_clean_failure(run("lathe-opt", MLP, "-p", "inline-calls{", "-o", out), "malformed pass pipeline")
    assert out.read_text() == "precious"
    assert_clean_failure(run("lathe-opt", tmp_path / "missing.lathe"), "no such file")


def test_bad_params_and_options(tmp_path):
    np.savez(tmp_path / "wrong.npz", w1=np.zeros((3, 3), np.float32))
    assert_clean_failure(run("lathe", "run", MLP, "--params", tmp_path / "wrong.npz"), "%w1 has shape (3, 3)")
    np.savez(tmp_path / "extra.npz", w9=np.zeros((3, 3), np.float32))
    assert_clean_failure(run("lathe", "run", MLP, "--params", tmp_path / "extra.npz"), "no parameter named w9")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    assert_clean_failure(run("lathe", "run", MLP, "--params", tmp_path / "corrupt.npz"), "not a valid .npz")
    assert_clean_failure(run("lathe", "run", MLP, "--target", "llvm -mcpu"), "needs a value")
    assert_clean_failure(run("lathe", "run", MLP, "--target", "tpu"), "unknown target 'tpu'")
    assert_clean_failure(run("lathe", "run", MLP, "--bench", "x"), "invalid int value")


def test_api_missing_params_entry(rng):
    import lathe

    m = lathe.load(MLP)
    with pytest.raises(lathe.LatheError, match="no value for parameter %w2"):
        lathe.interpret(
            m,
            params={"w1": np.zeros((128, 784), np.float32)},
            x=np.zeros((1, 784), np.float32),
            b1=np.zeros(128, np.float32),
            b2=np.zeros(10, np.float32),
        )
    cm = lathe.compile(m, params={"w1": np.zeros((128, 784), np.float32)})
    with pytest.raises(lathe.LatheError, match="missing input"):
        cm.run(x=np.zeros((1, 784), np.float32))


def test_run_binds_the_params_file_at_compile_time():
    params = ROOT / "examples" / "mlp.params.npz"
    r = run("lathe", "run", MLP, "--params", params, "--check", "--bench", "3")
    assert r.returncode == 0, r.stderr
    assert "filled with seeded random values" in r.stderr and "%x" in r.stderr and "%w1" not in r.stderr
    assert "compiled: 2 kernels" in r.stdout  # the weights' packing folded away at compile time


# -- issue 8: the tools' promises, as a new user finds them ---------------------------------------


def test_opt_llvm_target_lowers_graph_level_ir():
    r = run("lathe-opt", MLP, "-t", "llvm")
    assert r.returncode == 0, r.stderr
    assert "define void @" in r.stdout  # kernels, not an empty LLVM module
    assert "the IR is at graph level; lowered it to loops first" in r.stderr


def test_lower_graph_to_te_without_kernels_says_what_it_needs():
    assert_clean_failure(
        run("lathe-opt", MLP, "-p", "lower-graph-to-te"),
        "lower-graph-to-te: no kernels to lower ('nn.dense' in @main",
        "run outline-kernels or fuse-ops",
    )


@pytest.mark.parametrize("argv", [("lathe-opt", MLP, "-p", PIPELINE, "--print-ir-after-all"), ("lathe", "run", MLP)])
def test_closed_pipe_ends_quietly(argv):
    """As `tool | head -1`: the reader is gone before anything is written."""
    p = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    err = p.stderr.read()
    p.wait()
    assert "error" not in err and "Traceback" not in err and "BrokenPipe" not in err, err
    assert p.returncode == 141  # what a shell reports for a tool that SIGPIPE ended


@pytest.mark.parametrize(
    "target, words",
    [
        ("llvm -mcpu=bogus", ["unknown CPU 'bogus'", "known CPUs:", "znver4", "skylake"]),
        ("llvm -mcpu=znver", ["unknown CPU 'znver'", "did you mean znver"]),
        ("llvm -mattr=+bogus", ["unknown feature 'bogus'", "known features:", "avx2"]),
        ("llvm -mattr=avx2", ["feature 'avx2' must be spelled +avx2"]),
        ("llvm -mtriple=aarch64-linux-gnu -mcpu=skylake", ["unknown CPU 'skylake' for aarch64", "neoverse-v1"]),
    ],
)
def test_unknown_cpu_or_feature_is_an_error_not_an_llvm_abort(target, words):
    assert_clean_failure(run("lathe", "compile", MLP, "--emit=asm", "--target", target), *words)


XDSL_ONLY_TARGETS = {"arm-asm", "csl", "mps", "riscv-asm", "wat", "wgsl", "x86-asm"}  # xDSL 0.75's


def test_opt_offers_only_targets_that_take_lathes_ir():
    help_text = "".join(run("lathe-opt", "--help").stdout.split())
    offered = set(help_text.split("Availabletargetsare:", 1)[1].split("-o", 1)[0].split(","))
    assert {"mlir", "lathe", "llvm"} <= offered and not offered & XDSL_ONLY_TARGETS, offered
    for t in ("x86-asm", "riscv-asm", "wgsl"):
        r = run("lathe-opt", MLP, "-t", t)
        assert_clean_failure(r, f"invalid choice: '{t}' (choose from mlir, lathe, ")
        assert r.returncode == 1


@pytest.fixture(scope="module")
def lowered_mlp(tmp_path_factory):
    """The MLP as lathe-opt writes it at each level, with its params and inputs."""
    d = tmp_path_factory.mktemp("levels")
    stages = {
        "kernels": "inline-calls,outline-kernels",
        "te": "inline-calls,outline-kernels,lower-graph-to-te",
        "loop": PIPELINE,
    }
    for level, pipeline in stages.items():
        r = run("lathe-opt", MLP, "-p", pipeline, "-o", d / f"{level}.mlir")
        assert r.returncode == 0, r.stderr
    np.savez(d / "in.npz", x=np.random.default_rng(0).standard_normal((1, 784)).astype(np.float32))
    return d


@pytest.mark.parametrize("level", ["kernels", "te", "loop"])
def test_run_and_compile_take_lowered_mlir(lowered_mlp, level):
    d, params = lowered_mlp, ROOT / "examples" / "mlp.params.npz"
    ref = run("lathe", "run", MLP, "--params", params, "--inputs", d / "in.npz", "--output", d / "ref.npz")
    assert ref.returncode == 0, ref.stderr
    out = d / f"{level}.npz"
    r = run("lathe", "run", d / f"{level}.mlir", "--params", params, "--inputs", d / "in.npz", "--output", out)
    assert r.returncode == 0, r.stderr
    with np.load(d / "ref.npz") as a, np.load(out) as b:
        np.testing.assert_allclose(b["output"], a["output"], rtol=1e-5, atol=1e-5)
    r = run("lathe", "compile", d / f"{level}.mlir")
    assert r.returncode == 0, r.stderr
    assert "define void @nn_dense_0(" in r.stdout and "define void @nn_dense_1(" in r.stdout


def test_check_needs_graph_level_input(lowered_mlp):
    r = run("lathe", "run", lowered_mlp / "loop.mlir", "--check")
    assert_clean_failure(r, "--check:", "below graph level")
    assert "output:" not in r.stdout  # said before compiling and running


def test_versions():
    from importlib.metadata import version

    for argv in (("lathe-opt", "--version"), ("lathe", "--version")):
        r = run(*argv)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"lathe {version('lathe')} (xDSL {version('xdsl')}, "), r.stdout
        assert "LLVM " in r.stdout


def test_list_passes_describes_lathes_own_then_lists_xdsls():
    from lathe.pipelines import lathe_passes

    r = run("lathe-opt", "--list-passes")
    assert r.returncode == 0, r.stderr
    ours, xdsls = r.stdout.split("xDSL's passes")
    lines = {line.split()[0]: line.split(None, 1)[1:] for line in ours.splitlines()[1:]}
    for name in lathe_passes():
        assert lines.get(name), f"{name} has no description"
        assert not lines[name][0].endswith("()"), lines[name]
    assert "lower-affine" in xdsls.split() and "lower-affine" not in lines
    assert "fuse-ops" not in xdsls.split()


def test_opt_frontend_option_names_the_format_of_any_file(tmp_path):
    f = tmp_path / "model.txt"
    f.write_text(Path(MLP).read_text())
    r = run("lathe-opt", f, "-f", "lathe")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('#[version = "0.0.5"]')


def test_opt_and_run_read_relay_files(tmp_path):
    f = tmp_path / "model.relay"
    f.write_text(Path(MLP).read_text())
    r = run("lathe-opt", f)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('#[version = "0.0.5"]') and "nn.dense" in r.stdout
    r = run("lathe", "run", f)
    assert r.returncode == 0, r.stderr


def test_converted_params_are_named_in_a_note(tmp_path):
    with np.load(ROOT / "examples" / "mlp.params.npz") as z:
        np.savez(tmp_path / "p64.npz", **{k: z[k].astype(np.float64) for k in z.files})
    np.savez(tmp_path / "in.npz", x=np.ones((1, 784), np.int64))
    r = run("lathe", "run", MLP, "--params", tmp_path / "p64.npz", "--inputs", tmp_path / "in.npz")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if "converted" in line]
    assert notes == [
        "note: converted %x from int64 to float32; %w1, %b1, %w2, %b2 from float64 to float32 (the parameters' types)"
    ], r.stderr


def _with_umask(mask):
    import os

    return lambda: os.umask(mask)


def test_written_files_follow_the_umask(tmp_path):

    def written(*argv):
        r = subprocess.run(
            [str(BIN / argv[0]), *map(str, argv[1:])], capture_output=True, text=True, preexec_fn=_with_umask(0o027)
        )
        assert r.returncode == 0, r.stderr

    written("lathe-opt", MLP, "-o", tmp_path / "o.mlir")
    written("lathe", "run", MLP, "--output", tmp_path / "o.npz")
    written("lathe", "compile", MLP, "-o", tmp_path / "o.o")
    written("lathe", "compile", MLP, "-o", tmp_path / "o.ll")
    written("lathe", "import", _relu_onnx(tmp_path / "relu.onnx"), "-o", tmp_path / "i.lathe")
    made = ["i.lathe", "i.params.npz", "o.ll", "o.mlir", "o.npz", "o.o"]
    for name in made:
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
    (tmp_path / "o.mlir").chmod(0o604)  # replacing a file keeps its mode, as writing into it would
    written("lathe-opt", MLP, "-o", tmp_path / "o.mlir")
    assert (tmp_path / "o.mlir").stat().st_mode & 0o777 == 0o604
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(made + ["relu.onnx"])  # no temporaries left


def _relu_onnx(path):
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])), path)
    return path


def test_tests_never_write_to_the_users_kernel_cache(tmp_path):
    """A user's LATHE_CACHE_DIR (or ~/.cache/lathe) is theirs: a test session compiles into its own."""
    import os

    home = tmp_path / "home"
    users = home / ".cache" / "lathe"
    env = {**os.environ, "HOME": str(home), "LATHE_CACHE_DIR": str(users)}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::test_api_missing_params_entry"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert not users.exists() or not any(users.iterdir()), sorted(p.name for p in users.iterdir())


ODD = [  # (argv, words in the diagnostic): each exits 1 with no traceback
    (("lathe-opt", "{tmp}"), ["cannot read it: Is a directory"]),
    (("lathe", "run", "{tmp}"), ["Is a directory"]),
    (("lathe-opt", MLP, "-o", "{tmp}/missing/o.mlir"), ["cannot write", "No such file or directory"]),
    (("lathe-opt", MLP, "-o", "{tmp}"), ["cannot write", "is a directory"]),
    (("lathe", "run", MLP, "--output", "{tmp}/missing/o.npz"), ["cannot write", "No such file or directory"]),
    (("lathe", "compile", MLP, "-o", "{tmp}/missing/o.ll"), ["cannot write", "No such file or directory"]),
    (("lathe", "compile", MLP, "-o", "{tmp}/missing/o.o"), ["cannot write", "No such file or directory"]),
    (("lathe-opt", MLP, "-O", "9"), ["usage: lathe-opt", "invalid choice: 9"]),
    (("lathe-opt", MLP, "--bogus"), ["usage: lathe-opt", "unrecognized arguments: --bogus"]),
    (("lathe-opt", MLP, "-p", "fuse-ops{bogus=1}"), ["bad option for pass 'fuse-ops'"]),
    (("lathe", "run", MLP, "--threads", "0"), ["--threads: must be at least 1"]),
    (("lathe", "run", MLP, "--bogus"), ["usage: lathe", "unrecognized arguments: --bogus"]),
    (("lathe", "run", MLP, "--seed", "-1"), ["--seed: must be at least 0"]),
    (("lathe", "run", MLP, "--rtol", "nan"), ["--rtol: must be a finite number >= 0"]),
    (("lathe-opt", ROOT / "pyproject.toml"), ["cannot tell the input format from its extension '.toml'", "-f lathe"]),
]


@pytest.mark.parametrize("argv, words", ODD, ids=[" ".join(map(str, a[1:])).replace(MLP, "mlp") for a, _ in ODD])
def test_odd_invocations(tmp_path, argv, words):
    r = run(*[str(a).replace("{tmp}", str(tmp_path)) for a in argv])
    assert_clean_failure(r, *words)
    assert r.returncode == 1
    assert list(tmp_path.iterdir()) == []


def test_output_through_a_link_or_into_a_fifo(tmp_path):
    """A symbolic link stays a link (its target is replaced); what cannot be replaced (a FIFO,
    /dev/null) is written into, as a shell redirection would."""
    import os
    import stat
    import threading

    (tmp_path / "real.mlir").write_text("old")
    (tmp_path / "link.mlir").symlink_to("real.mlir")
    r = run("lathe-opt", MLP, "-o", tmp_path / "link.mlir")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "link.mlir").is_symlink() and (tmp_path / "real.mlir").read_text().startswith("builtin.module")
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = run("lathe-opt", MLP, "--emit=mlir", "-o", fifo)
    reader.join(timeout=60)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got and got[0].startswith(b"builtin.module")


@pytest.mark.skipif(__import__("platform").machine() != "x86_64", reason="names an x86 CPU")
def test_jit_code_uses_only_features_this_machine_has():
    """-mcpu=X tunes for X; what runs here may not use instructions this machine lacks
    (diamondrapids' APX and AVX10.2 died of SIGILL on an Emerald Rapids)."""
    import llvmlite.binding as llvm

    r = run("lathe", "run", MLP, "--target", "llvm -mcpu=diamondrapids")
    assert r.returncode == 0, r.stderr
    assert "output: shape=(1, 10)" in r.stdout
    lacking = sorted(f for f, has in llvm.get_host_cpu_features().items() if not has)
    if lacking:  # asked for explicitly, it is an error, not a crash
        assert_clean_failure(
            run("lathe", "run", MLP, "--target", f"llvm -mattr=+{lacking[0]}"), f"it lacks {lacking[0]}"
        )


def test_opt_reports_non_utf8_input_with_a_location(tmp_path):
    bad = tmp_path / "bad.lathe"
    bad.write_bytes(b"def @main(%a: Tensor[(4), float32]) {\n  \xff\xfe negative(%a) }\n")
    r = run("lathe-opt", bad)
    assert_clean_failure(r, f"{bad}:2:")
    assert r.returncode == 1


def test_run_and_compile_take_an_onnx_model_with_its_weights(tmp_path):
    """`lathe run/compile model.onnx` import it, its initializers as the weights (as tvmc does),
    and the artifact runs with the same outputs as the model through the interpreter."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(7)
    w, b = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1), helper.make_node("Tanh", ["h"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = tmp_path / "gemm.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    r = run("lathe", "run", model, "--check")
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    r = run("lathe", "compile", model, "-o", tmp_path / "gemm.lathe.d")
    assert r.returncode == 0, r.stderr
    import lathe.runtime

    x = rng.standard_normal((2, 8)).astype(np.float32)
    got = lathe.runtime.load(tmp_path / "gemm.lathe.d").run(x)
    np.testing.assert_allclose(got, np.tanh(x @ w.T + b), rtol=1e-5, atol=1e-6)
    np.savez(tmp_path / "w.npz", w=w)
    assert_clean_failure(
        run("lathe", "compile", model, "--emit", "llvm", "--params", tmp_path / "w.npz"), "--params is for"
    )
