"""MobileNet-v3-Large (torchvision.models.mobilenet_v3_large).

Inverted residuals with 3x3 and 5x5 depthwise convolutions, hard-swish in the later stages,
squeeze-and-excitation (hard-sigmoid gate) in some blocks, and channel counts (24, 40, 72,
120, 200, 184, 480, 672, 960) that no 16-wide vector divides: the shapes real exported
detection and OCR backbones have.

With `fpn` channels, the classifier gives way to a text-detection head (PaddleOCR's DBNet with a
MobileNet-v3 backbone): the block outputs before each stride-2 block from stride 4 on and the
last 1x1 convolution are the pyramid's levels; 1x1 lateral convolutions to `fpn` channels,
nearest Resize x2 and Add top-down, a 3x3 convolution to fpn / 4 channels on each level, Resize
to stride 4 and Concat; then DBNet's probability head: 3x3 convolution, BN, ReLU, ConvTranspose
2x2 s2, BN, ReLU, ConvTranspose 2x2 s2 to one channel, Sigmoid (a map at the input's size).

    python -m models.mobilenet_v3 -o /tmp
    python -m models.mobilenet_v3 --fpn 96 --image-size 640 -o /tmp/mobilenet_v3_fpn.onnx
"""

from __future__ import annotations

import math

import onnx

from .blocks import conv_bn, squeeze_excite, upsample_nearest
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli
from .mobilenet_v2 import make_divisible

# (kernel, expanded, out, squeeze-excite, activation, stride): torchvision's table for Large
SETTINGS = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
)

SMALL = dict(width_mult=0.5, layers=7, image_size=64, last_channel=128, num_classes=10)


def bneck(g: GraphBuilder, x: str, cin: int, kernel: int, expanded: int, cout: int, se: bool, act: str, stride: int):
    y = x
    if expanded != cin:
        y = conv_bn(g, y, cin, expanded, 1, act=act, name="expand")
    y = conv_bn(g, y, expanded, expanded, kernel, stride, group=expanded, act=act, name="depthwise")
    if se:
        y = squeeze_excite(g, y, expanded, make_divisible(expanded // 4, 8), "relu", "hardsigmoid")
    y = conv_bn(g, y, expanded, cout, 1, name="project")
    return g.op("Add", [x, y]) if stride == 1 and cin == cout else y


def fpn_head(g: GraphBuilder, levels: list[tuple[str, int]], width: int):
    """DBNet's FPN (`width` channels) and probability head over `levels`, finest first, each
    twice the stride of the one before."""
    with g.scope("neck"):
        lateral = [g.conv(x, c, width, 1, name=f"in{i}_conv") for i, (x, c) in enumerate(levels)]
        for i in reversed(range(len(lateral) - 1)):
            lateral[i] = g.op("Add", [lateral[i], upsample_nearest(g, lateral[i + 1])])
        pyramid = []
        for i, x in enumerate(lateral):
            p = g.conv(x, width, width // 4, 3, pad=1, name=f"p{i}_conv")
            pyramid.append(upsample_nearest(g, p, 1 << i) if i else p)
        x = g.op("Concat", pyramid[::-1], axis=1)
    quarter = width // 4
    with g.scope("head"):
        x = conv_bn(g, x, width * len(levels) // 4, quarter, 3, act="relu", name="conv1")
        for name, cout in (("conv2", quarter), ("conv3", 1)):
            with g.scope(name):
                gain = math.sqrt(2.0) if cout > 1 else 1.0  # a 2x2 s2 tap per input channel: fan-in `quarter`
                w = g.normal("weight", (quarter, cout, 2, 2), gain / math.sqrt(quarter))
                x = g.op("ConvTranspose", [x, w, g.normal("bias", (cout,), 0.05)], kernel_shape=[2, 2], strides=[2, 2])
            if cout > 1:
                x = g.op("Relu", [g.batch_norm(x, cout, name=f"{name}.bn")])
    g.output(g.op("Sigmoid", [x]), "maps")


def graph(
    g: GraphBuilder,
    *,
    batch: int,
    image_size: int,
    width_mult: float,
    layers: int,
    last_channel: int,
    num_classes: int,
    fpn: int,
):
    x = g.input("input", [batch, 3, image_size, image_size])
    channels = make_divisible(16 * width_mult)
    x = conv_bn(g, x, 3, channels, 3, 2, act="hardswish", name="features.0")
    levels, stride = [], 2
    for index, (k, exp, out, se, act, s) in enumerate(SETTINGS[: layers or len(SETTINGS)], start=1):
        if s == 2 and stride >= 4:
            levels.append((x, channels))
        stride *= s
        exp, out = make_divisible(exp * width_mult), make_divisible(out * width_mult)
        with g.scope(f"features.{index}"):
            x = bneck(g, x, channels, k, exp, out, se, act, s)
        channels = out
    head = 6 * channels
    x = conv_bn(g, x, channels, head, 1, act="hardswish", name="features.last")
    if fpn:
        return fpn_head(g, [*levels, (x, head)], fpn)
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], name="avgpool")], axis=1)
    x = g.gemm(x, head, last_channel, name="classifier.0")
    x = g.op("HardSwish", [x]) if g.opset >= 14 else g.op("Mul", [x, g.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5)])
    g.output(g.gemm(x, last_channel, num_classes, name="classifier.3"), "logits")


def build(
    batch: int = 1,
    image_size: int = 224,
    width_mult: float = 1.0,
    layers: int = 0,
    last_channel: int = 1280,
    num_classes: int = 1000,
    fpn: int = 0,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """`layers` keeps the first N of the 15 bottleneck settings (0: all of them); `fpn` > 0 puts the
    text-detection FPN of that many channels (a multiple of 4) in the classifier's place."""
    if fpn % 4:
        raise ValueError(f"fpn {fpn} is not a multiple of 4")
    return build_model(
        graph,
        "mobilenet_v3",
        seed=seed,
        opset=opset,
        calibrate=True,
        doc=f"MobileNet-v3-Large x{width_mult}{f' with a {fpn}-channel FPN' if fpn else ''}, seeded random weights (seed {seed})",
        batch=batch,
        image_size=image_size,
        width_mult=width_mult,
        layers=layers,
        last_channel=last_channel,
        num_classes=num_classes,
        fpn=fpn,
    )


def main(argv=None):
    return cli(build, "mobilenet_v3", SMALL, argv)


if __name__ == "__main__":
    main()
