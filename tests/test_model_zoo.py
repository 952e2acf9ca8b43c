"""The model zoo (models/): every architecture's small variant is a valid ONNX
model that onnxruntime runs with well-scaled outputs; the full-size
architectures have the parameter counts of their torchvision / HuggingFace
originals; and - once `lathe.from_onnx` exists - Lathe's interpreter and
compiled code match onnxruntime at 1e-4 relative error on every small model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # models/ is a folder of scripts, not part of the lathe package;
    sys.path.append(str(REPO))  # appended, so the repo's other folders shadow no installed module

from models import ZOO, check_zoo  # noqa: E402
from models.builder import input_specs, random_inputs, session  # noqa: E402
from models.check_zoo import TOLERANCE, worst_error  # noqa: E402

NAMES = list(ZOO)


def seed_from(rng) -> int:
    return int(rng.integers(2**31))


def run_onnxruntime(model, inputs):
    return session(model).run(None, inputs)


# -- the zoo itself -------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_small_variant_is_valid_and_well_scaled(name, rng):
    model = ZOO[name].build(small=True, seed=seed_from(rng))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    outs = run_onnxruntime(model, random_inputs(model, seed_from(rng)))
    assert len(outs) == len(model.graph.output)
    for out, info in zip(outs, model.graph.output):
        declared = tuple(d.dim_value for d in info.type.tensor_type.shape.dim)
        assert out.shape == declared, info.name
        assert np.all(np.isfinite(out)), info.name
        # O(1) values: neither exploded nor collapsed to a constant.
        assert 1e-2 < np.max(np.abs(out)) < 1e2, (info.name, np.max(np.abs(out)))
        assert np.std(out) > 1e-3, info.name


# torchvision (inception_v3 without the training-only AuxLogits head, which
# adds 3,326,696) and HuggingFace bert-base-uncased (BertModel with pooler).
REFERENCE_PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3": 5_483_032,  # mobilenet_v3_large
    "shufflenet_v2": 2_278_604,  # shufflenet_v2_x1_0
    "efficientnet_b0": 5_288_548,
    "vgg16": 138_357_544,
    "inception_v3": 23_834_568,
    "densenet121": 7_978_856,
    "bert_base": 109_482_240,
    "yolo": 7_235_389,  # ultralytics YOLOv5s (v6+, 80 classes), as its model summary counts it before BN fusion
}


def transformer_parameters(d=256, ff=1024, src_vocab=8000, tgt_vocab=8000, enc=2, dec=2) -> int:
    attn = 4 * (d * d + d)
    ffn = d * ff + ff + ff * d + d
    norm = 2 * d
    return (
        (src_vocab + tgt_vocab) * d
        + enc * (attn + ffn + 2 * norm)
        + norm
        + dec * (2 * attn + ffn + 3 * norm)
        + norm
        + d * tgt_vocab
        + tgt_vocab
    )


def lstm_lm_parameters(vocab=10000, embed=650, hidden=650, layers=2) -> int:
    rnn = sum(4 * hidden * ((embed if i == 0 else hidden) + hidden) + 8 * hidden for i in range(layers))
    return vocab * embed + rnn + hidden * vocab + vocab


def gru_parameters(features=80, hidden=256, layers=2, dirs=2, classes=32) -> int:
    rnn = sum(
        dirs * (3 * hidden * ((features if i == 0 else dirs * hidden) + hidden) + 6 * hidden) for i in range(layers)
    )
    return rnn + dirs * hidden * classes + classes


def conv_decoder_parameters(features=(32, 64, 128, 256), num_classes=21) -> int:
    def double_conv(cin, c):  # two 3x3 convolutions without bias, each with BN's weight and bias
        return 9 * cin * c + 9 * c * c + 4 * c

    down = sum(double_conv(cin, c) for cin, c in zip((3, *features), features))
    up = sum(
        features[i + 1] * c * (16 if i == 0 else 4) + c + double_conv(2 * c, c)  # ConvTranspose 4x4 outermost, 2x2
        for i, c in enumerate(features[:-1])
    )
    return down + up + features[0] * num_classes + num_classes


def db_fpn_parameters(levels=(24, 40, 112, 960), width=96) -> int:
    """PaddleOCR's DBFPN (bias-free 1x1 laterals and 3x3 smoothing) and DBHead (3x3 conv + BN,
    ConvTranspose with bias + BN, ConvTranspose with bias to one map)."""
    quarter = width // 4
    fpn = width * sum(levels) + len(levels) * 9 * width * quarter
    return fpn + 9 * width * quarter + 2 * quarter + 4 * quarter * quarter + quarter + 2 * quarter + 4 * quarter + 1


def test_full_size_parameter_counts():
    """Counted from the graph code without drawing weights, so this is cheap for BERT-base too."""
    expected = {
        **REFERENCE_PARAMETERS,
        "transformer": transformer_parameters(),
        "lstm_lm": lstm_lm_parameters(),
        "gru": gru_parameters(),
        "conv_decoder": conv_decoder_parameters(),
        "mobilenet_v3_fpn": 2_971_952 + db_fpn_parameters(),  # torchvision's mobilenet_v3_large.features
    }
    assert {name: ZOO[name].count_parameters() for name in NAMES} == expected


def test_counts_match_built_small_models():
    for name in NAMES:
        model = ZOO[name].build(small=True)
        meta = {p.key: p.value for p in model.metadata_props}
        assert int(meta["num_parameters"]) == ZOO[name].count_parameters(small=True), name


def test_same_seed_same_model_other_seed_other_weights():
    a = ZOO["resnet18"].build(small=True, seed=3).SerializeToString()
    assert a == ZOO["resnet18"].build(small=True, seed=3).SerializeToString()
    assert a != ZOO["resnet18"].build(small=True, seed=4).SerializeToString()


def test_batch_norm_statistics_are_calibrated(rng):
    """Every BN output has roughly unit mean square on fresh inputs, and the
    running means are far from the trivial 0 (see builder.BN_MEAN_FRACTION)."""
    model = ZOO["resnet50"].build(small=True, seed=seed_from(rng))
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    # (a BN of few channels may draw a small mean by chance: judge the typical one)
    assert np.median([np.abs(inits[n.input[3]]).max() for n in bns]) > 0.01
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for n in bns:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(n.output[0], onnx.TensorProto.FLOAT, None))
    outs = run_onnxruntime(probe, random_inputs(model, seed_from(rng)))[1:]
    for n, y in zip(bns, outs):
        rms = np.sqrt(np.mean(y.astype(np.float64) ** 2))
        assert 0.2 < rms < 5, (n.name, rms)


@pytest.mark.parametrize("opset", [13, 18, 21])
@pytest.mark.parametrize("name", ["bert_base", "transformer", "mobilenet_v2", "gru"])
def test_other_opsets_agree_with_17(name, opset):
    """Opset 13 uses the decomposed LayerNorm and ReduceMean's axes attribute,
    18+ ReduceMean's axes input; the same seed gives the same function."""
    model = ZOO[name].build(small=True, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    inputs = random_inputs(model, 1)
    ref = run_onnxruntime(ZOO[name].build(small=True), inputs)
    got = run_onnxruntime(model, inputs)
    assert worst_error(got, ref) < 1e-5
    if name == "bert_base" and opset < 17:
        assert "LayerNormalization" not in {n.op_type for n in model.graph.node}


def test_opset_below_13_is_refused():
    with pytest.raises(ValueError, match="opset 12"):
        ZOO["gru"].build(small=True, opset=12)


def test_random_inputs_follow_the_metadata():
    model = ZOO["bert_base"].build(small=True, seq_len=16, vocab_size=100, batch=4)
    inputs = random_inputs(model, 0)
    assert [n for n, _, _ in input_specs(model)] == ["input_ids", "attention_mask", "token_type_ids"]
    assert inputs["input_ids"].dtype == np.int64 and inputs["input_ids"].min() >= 0 and inputs["input_ids"].max() < 100
    assert set(np.unique(inputs["token_type_ids"])) <= {0, 1}
    for row in inputs["attention_mask"]:  # ones, then padding; at least half ones
        n = int(row.sum())
        assert n >= 8 and np.all(row[:n] == 1) and np.all(row[n:] == 0)
    assert all(np.array_equal(v, random_inputs(model, 0)[k]) for k, v in inputs.items())


def test_main_writes_each_model(tmp_path):
    for entry in {e.module: e for e in ZOO.values()}.values():
        path = Path(entry.load().main(["-o", str(tmp_path), "--small"]))
        assert path.parent == tmp_path and path.suffix == ".onnx"
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            "resnet18.onnx",
            "mobilenet_v2.onnx",
            "mobilenet_v3.onnx",
            "shufflenet_v2.onnx",
            "efficientnet_b0.onnx",
            "vgg16.onnx",
            "inception_v3.onnx",
            "densenet121.onnx",
            "bert.onnx",
            "transformer.onnx",
            "lstm_lm.onnx",
            "gru.onnx",
            "yolo.onnx",
            "conv_decoder.onnx",
        ]
    )


def test_python_dash_m_with_size_options(tmp_path):
    out = tmp_path / "r50.onnx"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "models.resnet",
            "--small",
            "--depth",
            "50",
            "--layers",
            "1",
            "2",
            "1",
            "1",
            "--opset",
            "13",
            "-o",
            str(out),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 13
    assert sum(n.name.startswith("layer2.1.") and n.op_type == "Conv" for n in model.graph.node) == 3  # bottleneck


# -- Lathe against onnxruntime -----------------------------------------------------


@pytest.fixture
def lathe_onnx():
    """(lathe, from_onnx)."""
    import lathe

    return lathe, lathe.from_onnx


LATHE_CASES = [(name, {}) for name in NAMES] + [("bert_base", {"opset": 13}), ("transformer", {"opset": 13})]


@pytest.mark.parametrize(
    "name, options", LATHE_CASES, ids=[n + "".join(f"-{k}{v}" for k, v in o.items()) for n, o in LATHE_CASES]
)
def test_lathe_matches_onnxruntime(name, options, lathe_onnx, rng):
    lathe, from_onnx = lathe_onnx
    model = ZOO[name].build(small=True, seed=seed_from(rng), **options)
    inputs = random_inputs(model, seed_from(rng))
    ref = run_onnxruntime(model, inputs)
    module, params = from_onnx(model)
    err = worst_error(lathe.interpret(module, params=params, **inputs), ref)
    assert err <= TOLERANCE, f"interpreted: {err:.2e}"
    ordered = [inputs[n] for n, _, _ in input_specs(model)]
    err = worst_error(lathe.compile(module, params=params).run(*ordered), ref)
    assert err <= TOLERANCE, f"compiled: {err:.2e}"


def test_check_zoo_reports_a_table(capsys):
    assert check_zoo.main(["--small", "--only", "lstm_lm", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "lstm_lm" in out and "FAIL" not in out
