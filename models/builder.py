"""A small ONNX graph builder for the model zoo.

The zoo builds its models from code rather than downloading them, so that
tests need no network, every weight is reproducible from a seed, and the
sizes can be shrunk for fast tests.  `GraphBuilder` keeps the bookkeeping
(unique names, initializers, opset-dependent op forms) out of the model
files, which then read like their PyTorch counterparts.

Three things matter for the numbers to be useful as a compiler test:

* Weights are drawn with He / LeCun scaling so activations stay O(1) through
  dozens of layers; a comparison at 1e-4 relative error is then a test of the
  compiler, not of float32 cancellation in exploding or vanishing values.
* Batch-norm statistics are *calibrated*: the graph is first built with every
  BatchNormalization replaced by normalisation with the batch's own mean and
  variance, run once in onnxruntime on seeded random inputs, and the measured
  statistics become the running statistics of the real model, so every BN
  output has unit mean square.  The running mean is only a quarter of the
  measured mean (the variance grows to match), see `BN_MEAN_FRACTION`.
* Which inputs are integers, and in what range, is recorded in the model's
  metadata (`input.<name>`), so `random_inputs` can feed any zoo model -
  also a saved .onnx file - without knowing which model it is.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DEFAULT_OPSET = 17
# 13 is the first opset where Squeeze/Unsqueeze take axes as an input and
# Softmax normalises over one axis only; supporting older forms adds nothing.
MIN_OPSET = 13
# Batch used to measure batch-norm statistics; large enough that a 1x1
# feature map still gives a usable variance estimate.
CALIBRATION_BATCH = 8
# Fraction of each channel's measured mean that becomes running_mean.  With
# random weights, fully centring every BN makes a deep ReLU net chaotic:
# each layer strips the per-channel mean out of the signal but not out of
# the rounding noise, so relative float32 noise grows ~1.2x per layer.
# onnxruntime then disagrees with *itself* (graph optimisations on vs off)
# by 3e-5 on Inception-v3 and 2e-5 on ResNet-50, too close to the 1e-4
# the zoo checks at.  Removing a quarter of the mean keeps that spread
# near 1e-6 for every CNN here, and running_mean is still far from zero,
# so an importer that drops it fails loudly.
BN_MEAN_FRACTION = 0.25

_ONNX_DTYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class GraphBuilder:
    """Accumulates the nodes, initializers and inputs of one ONNX graph.

    weights: trained weights by initializer name, used instead of drawing
    (a pretrained model built on the zoo's layers); then every weight must
    be there, since a silently random one would pass for a trained one.

    mode:
      "final"     - the model itself; batch norms use `bn_stats` (or 0/1).
      "calibrate" - batch norms normalise with batch statistics and export
                    them as extra graph outputs (see `build_model`).
      "count"     - no weights are drawn; only parameter counts are kept, so
                    full-size architectures can be checked in milliseconds.
    Every op helper returns the name of its output tensor.
    """

    def __init__(
        self,
        name: str,
        *,
        seed: int = 0,
        opset: int = DEFAULT_OPSET,
        mode: str = "final",
        bn_stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
        weights: Mapping[str, np.ndarray] | None = None,
    ):
        latest = onnx.defs.onnx_opset_version()
        if not MIN_OPSET <= opset <= latest:
            raise ValueError(f"opset {opset} is outside the supported range {MIN_OPSET}..{latest}")
        if mode not in ("final", "calibrate", "count"):
            raise ValueError(f"unknown builder mode {mode!r}")
        self.name = name
        self.opset = opset
        self.mode = mode
        self.rng = np.random.default_rng(seed)
        self.bn_stats = bn_stats or {}
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[str] = []
        self.metadata: dict[str, str] = {}
        self.num_parameters = 0  # trainable weights (what PyTorch counts)
        self.num_buffers = 0  # batch-norm running statistics
        self.batch_norms: list[tuple[str, str, str]] = []  # calibrate mode: (bn, mean, var)
        self._scope: list[str] = []
        self._used: set[str] = set()

    # -- names ---------------------------------------------------------------

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Prefix the names created inside with `name.` (like nn.Module paths)."""
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    def qualify(self, name: str) -> str:
        return ".".join([*self._scope, name])

    def fresh(self, hint: str) -> str:
        base = self.qualify(hint)
        name, n = base, 1
        while name in self._used:
            name, n = f"{base}_{n}", n + 1
        self._used.add(name)
        return name

    # -- graph interface -----------------------------------------------------

    def input(self, name: str, shape: Sequence[int], dtype=np.float32, sample: str = "normal") -> str:
        """A graph input; `sample` says how `random_inputs` should fill it:
        "normal", "uniform:LO:HI", "int:HIGH" (0 <= v < HIGH) or "mask"
        (rows of ones followed by zero padding, at least half ones)."""
        if name in self._used:
            raise ValueError(f"duplicate name {name}")
        self._used.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, _ONNX_DTYPES[np.dtype(dtype)], list(shape)))
        self.metadata[f"input.{name}"] = sample
        return name

    def output(self, tensor: str, name: str | None = None) -> str:
        """Mark `tensor` as a graph output, renaming it to `name` first."""
        if name and name != tensor:
            if name in self._used:
                raise ValueError(f"duplicate name {name}")
            self._used.add(name)
            for node in self.nodes:
                for field in (node.input, node.output):
                    for i, t in enumerate(field):
                        if t == tensor:
                            field[i] = name
            tensor = name
        self.outputs.append(tensor)
        return tensor

    def param(
        self,
        name: str,
        shape: Sequence[int],
        init: Callable[[np.random.Generator], np.ndarray] | np.ndarray,
        trainable: bool = True,
    ) -> str:
        """A weight initializer.  `init` draws it from the builder's generator,
        and is called only when weights are materialised (not in count mode),
        so all modes draw the same numbers in the same order."""
        full = self.fresh(name)
        size = int(np.prod(shape, dtype=np.int64))
        if trainable:
            self.num_parameters += size
        else:
            self.num_buffers += size
        if self.mode == "count":
            return full
        if self.weights is not None:
            if full not in self.weights:
                raise ValueError(f"no weight named {full} among the {len(self.weights)} given")
            value = self.weights[full]
        else:
            value = init(self.rng) if callable(init) else init
        value = np.asarray(value, dtype=np.float32)
        if value.shape != tuple(shape):
            raise ValueError(f"{full}: initializer shape {value.shape} != {tuple(shape)}")
        self.initializers.append(numpy_helper.from_array(value, full))
        return full

    def normal(self, name: str, shape: Sequence[int], std: float, mean: float = 0.0) -> str:
        return self.param(name, shape, lambda r: mean + std * r.standard_normal(shape))

    def uniform(self, name: str, shape: Sequence[int], low: float, high: float) -> str:
        return self.param(name, shape, lambda r: r.uniform(low, high, shape))

    def const(self, value, dtype=np.float32, name: str = "const") -> str:
        """A structural constant (shape, axes, scalar, mask) as a Constant node,
        so that weights (initializers) and graph structure stay apart."""
        array = np.asarray(value, dtype=dtype)
        out = self.fresh(name)
        self.nodes.append(helper.make_node("Constant", [], [out], name=out, value=numpy_helper.from_array(array, out)))
        return out

    def op(self, op_type: str, inputs: Sequence[str], *, name: str | None = None, outputs: int = 1, **attrs):
        """Append one node; returns its output name (a list if outputs > 1)."""
        base = self.fresh(name or op_type)
        outs = [base] + [self.fresh(f"{name or op_type}.out{i}") for i in range(1, outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=base, **attrs))
        return outs[0] if outputs == 1 else outs

    # -- opset-dependent forms -----------------------------------------------

    def reduce_mean(self, x: str, axes: Sequence[int], keepdims: int = 1, name: str = "ReduceMean") -> str:
        if self.opset >= 18:  # axes moved from an attribute to an input
            return self.op("ReduceMean", [x, self.const(list(axes), np.int64, "axes")], name=name, keepdims=keepdims)
        return self.op("ReduceMean", [x], name=name, axes=list(axes), keepdims=keepdims)

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Squeeze", [x, self.const(list(axes), np.int64, "axes")])

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Unsqueeze", [x, self.const(list(axes), np.int64, "axes")])

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.const(list(shape), np.int64, "shape")])

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        return self.op("Transpose", [x], perm=list(perm))

    def clip(self, x: str, low: float, high: float, name: str = "Clip") -> str:
        return self.op("Clip", [x, self.const(low, name="min"), self.const(high, name="max")], name=name)

    # -- layers shared by several models -------------------------------------

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        kernel,
        stride=1,
        pad=0,
        group: int = 1,
        bias: bool = False,
        gain: float = math.sqrt(2.0),
        name: str = "conv",
    ) -> str:
        """Conv2d with He-normal weights (gain sqrt(2) keeps ReLU nets at unit scale)."""
        kh, kw = _pair(kernel)
        sh, sw = _pair(stride)
        ph, pw = _pair(pad)
        fan_in = cin // group * kh * kw
        inputs = [x, self.normal(f"{name}.weight", (cout, cin // group, kh, kw), gain / math.sqrt(fan_in))]
        if bias:
            inputs.append(self.normal(f"{name}.bias", (cout,), 0.05))
        return self.op(
            "Conv", inputs, name=name, kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw], group=group
        )

    def batch_norm(self, x: str, channels: int, eps: float = 1e-5, name: str = "bn") -> str:
        """BatchNormalization in inference form, statistics from calibration."""
        gamma = self.uniform(f"{name}.weight", (channels,), 0.5, 1.5)
        beta = self.normal(f"{name}.bias", (channels,), 0.1)
        key = self.qualify(name)
        if self.mode == "calibrate":
            # Normalise with this batch's statistics and export them.  The
            # affine part stays a BatchNormalization with mean 0 / var 1.
            mean = self.reduce_mean(x, [0, 2, 3], name=f"{name}.batch_mean")
            d = self.op("Sub", [x, mean])
            var = self.reduce_mean(self.op("Mul", [d, d]), [0, 2, 3], name=f"{name}.batch_var")
            x = self.op("Div", [d, self.op("Sqrt", [self.op("Add", [var, self.const(eps)])])])
            self.batch_norms.append((key, mean, var))
            stats = (np.zeros(channels), np.ones(channels))
            eps = 0.0
        elif key in self.bn_stats:
            mean, var = self.bn_stats[key]
            kept = (1 - BN_MEAN_FRACTION) * mean
            stats = (BN_MEAN_FRACTION * mean, var + kept * kept)  # E[(x - running_mean)^2] = running_var
        else:
            stats = (np.zeros(channels), np.ones(channels))
        m = self.param(f"{name}.running_mean", (channels,), stats[0], trainable=False)
        v = self.param(f"{name}.running_var", (channels,), stats[1], trainable=False)
        return self.op("BatchNormalization", [x, gamma, beta, m, v], name=name, epsilon=eps)

    def gemm(self, x: str, fin: int, fout: int, gain: float = 1.0, name: str = "fc") -> str:
        """torch.nn.Linear on a matrix: Gemm with a [out, in] weight (transB)."""
        w = self.normal(f"{name}.weight", (fout, fin), gain / math.sqrt(fin))
        b = self.normal(f"{name}.bias", (fout,), 0.05)
        return self.op("Gemm", [x, w, b], name=name, transB=1)

    def linear(self, x: str, fin: int, fout: int, gain: float = 1.0, name: str = "dense") -> str:
        """torch.nn.Linear on a batch of sequences: MatMul by [in, out], then Add."""
        w = self.normal(f"{name}.weight", (fin, fout), gain / math.sqrt(fin))
        b = self.normal(f"{name}.bias", (fout,), 0.05)
        return self.op("Add", [self.op("MatMul", [x, w], name=f"{name}.MatMul"), b], name=f"{name}.Add")

    # -- result --------------------------------------------------------------

    def make_model(self, doc: str = "") -> onnx.ModelProto:
        if self.mode == "count":
            raise ValueError("a count-mode builder has no weights to make a model from")
        outputs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in self.outputs]
        graph = helper.make_graph(self.nodes, self.name, self.inputs, outputs, initializer=self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="lathe.models", doc_string=doc)
        # The oldest IR version that can carry the opset: what runtimes accept most widely.
        model.ir_version = helper.find_min_ir_version_for(opsets)
        helper.set_model_props(model, {**self.metadata, "num_parameters": str(self.num_parameters)})
        # Output types (and static shapes) come from ONNX shape inference.
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        types = {v.name: v.type for v in inferred.graph.output}
        for out in model.graph.output:
            out.type.CopyFrom(types[out.name])
        return model


def build_model(
    graph_fn: Callable[..., None],
    name: str,
    *,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
    calibrate: bool = False,
    doc: str = "",
    weights: Mapping[str, np.ndarray] | None = None,
    **options,
) -> onnx.ModelProto:
    """Run `graph_fn(builder, **options)` and return the model.

    With `calibrate`, the graph is first built with batch-statistics
    normalisation at CALIBRATION_BATCH, run once on random inputs (seed + 1),
    and rebuilt with the measured statistics; the same seed makes both builds
    draw identical weights. `weights` replaces drawing (see GraphBuilder)."""
    stats = None
    if calibrate:
        g = GraphBuilder(name, seed=seed, opset=opset, mode="calibrate")
        graph_fn(g, **{**options, "batch": CALIBRATION_BATCH})
        model = g.make_model()
        for _, mean, var in g.batch_norms:
            model.graph.output.append(helper.make_tensor_value_info(mean, TensorProto.FLOAT, None))
            model.graph.output.append(helper.make_tensor_value_info(var, TensorProto.FLOAT, None))
        names = [t for _, mean, var in g.batch_norms for t in (mean, var)]
        values = dict(zip(names, session(model).run(names, random_inputs(model, seed + 1))))
        stats = {bn: (values[m].reshape(-1), values[v].reshape(-1)) for bn, m, v in g.batch_norms}
    g = GraphBuilder(name, seed=seed, opset=opset, bn_stats=stats, weights=weights)
    graph_fn(g, **options)
    return g.make_model(doc)


def count_parameters(graph_fn: Callable[..., None], **options) -> int:
    """Trainable parameters of the architecture, without drawing any weights."""
    g = GraphBuilder("count", mode="count", opset=options.pop("opset", DEFAULT_OPSET))
    options.pop("seed", None)
    graph_fn(g, **options)
    return g.num_parameters


# -- running ---------------------------------------------------------------------


def session(model: onnx.ModelProto, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


_NUMPY_DTYPES = {
    TensorProto.FLOAT: np.float32,
    TensorProto.INT64: np.int64,
    TensorProto.INT32: np.int32,
    TensorProto.DOUBLE: np.float64,
    TensorProto.BOOL: np.bool_,
}


def input_specs(model: onnx.ModelProto) -> list[tuple[str, tuple[int, ...], type]]:
    """(name, static shape, numpy dtype) of each real graph input."""
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        specs.append((vi.name, tuple(d.dim_value for d in tt.shape.dim), _NUMPY_DTYPES[tt.elem_type]))
    return specs


def random_inputs(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input, following its `input.<name>` metadata."""
    rng = np.random.default_rng(seed)
    meta = {p.key: p.value for p in model.metadata_props}
    feeds = {}
    for name, shape, dtype in input_specs(model):
        kind, *args = meta.get(f"input.{name}", "normal").split(":")
        if kind == "normal":
            value = rng.standard_normal(shape)
        elif kind == "uniform":
            value = rng.uniform(float(args[0]), float(args[1]), shape)
        elif kind == "int":
            value = rng.integers(0, int(args[0]), shape)
        elif kind == "mask":  # [batch, seq]: a prefix of ones, then padding
            value = np.zeros(shape)
            for row in value:
                row[: rng.integers((shape[-1] + 1) // 2, shape[-1] + 1)] = 1
        else:
            raise ValueError(f"input {name}: unknown sampling {kind!r}")
        feeds[name] = np.asarray(value, dtype=dtype)
    return feeds


# -- command line ------------------------------------------------------------------


def _option_type(default):
    if isinstance(default, bool):
        return {"action": argparse.BooleanOptionalAction}
    if isinstance(default, tuple):
        return {"nargs": "+", "type": type(default[0]) if default else int}
    if default is None or isinstance(default, str):
        return {"type": str}
    return {"type": type(default)}


def cli(
    build: Callable[..., onnx.ModelProto],
    name: str | Callable[[dict], str],
    small: dict,
    argv: Sequence[str] | None = None,
    description: str | None = None,
) -> str:
    """`python -m models.X [-o PATH] [--small] [--option VALUE ...]`: write X.onnx.

    Options mirror `build`'s keyword arguments; `--small` starts from the
    small test variant.  -o may be a file or a directory."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {build.__module__}",
        description=description or sys.modules[build.__module__].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--output", default=".", help="output .onnx file or directory (default: .)")
    parser.add_argument("--small", action="store_true", help="the small variant the tests use")
    for p in inspect.signature(build).parameters.values():
        if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD:
            parser.add_argument(
                f"--{p.name.replace('_', '-')}",
                dest=p.name,
                default=argparse.SUPPRESS,
                help=f"default {p.default!r}",
                **_option_type(p.default),
            )
    args = vars(parser.parse_args(argv))
    out, use_small = args.pop("output"), args.pop("small")
    options = {**(small if use_small else {}), **{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}}
    model = build(**options)
    filename = (name(options) if callable(name) else name) + ".onnx"
    path = os.path.join(out, filename) if os.path.isdir(out) or out.endswith(os.sep) else out
    onnx.save(model, path)
    params = next(p.value for p in model.metadata_props if p.key == "num_parameters")
    print(
        f"wrote {path}: {int(params):,} parameters, {len(model.graph.node)} nodes, "
        f"opset {model.opset_import[0].version}"
    )
    return path
