"""EfficientNet-B0 (torchvision.models.efficientnet_b0).

MBConv blocks: a 1x1 expansion, a 3x3 or 5x5 depthwise convolution, squeeze-and-excitation
(SiLU inside, sigmoid gate) and a 1x1 projection, SiLU (x * Sigmoid(x) as exported)
everywhere; 24, 40, 80, 112, 192 and 320 channels.

    python -m models.efficientnet -o /tmp
"""

from __future__ import annotations

import onnx

from .blocks import conv_bn, squeeze_excite
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli
from .mobilenet_v2 import make_divisible

# (expansion, kernel, stride, in, out, repeats): torchvision's B0 table
SETTINGS = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)

SMALL = dict(width_mult=0.5, repeats=(1, 1, 1, 1, 0, 1, 0), image_size=64, last_channel=256, num_classes=10)


def mbconv(g: GraphBuilder, x: str, cin: int, cout: int, expand: int, kernel: int, stride: int) -> str:
    hidden = make_divisible(cin * expand)
    y = x
    if hidden != cin:
        y = conv_bn(g, y, cin, hidden, 1, act="silu", name="expand")
    y = conv_bn(g, y, hidden, hidden, kernel, stride, group=hidden, act="silu", name="depthwise")
    y = squeeze_excite(g, y, hidden, max(1, cin // 4), "silu", "sigmoid")
    y = conv_bn(g, y, hidden, cout, 1, name="project")
    return g.op("Add", [x, y]) if stride == 1 and cin == cout else y


def graph(
    g: GraphBuilder, *, batch: int, image_size: int, width_mult: float, repeats, last_channel: int, num_classes: int
):
    x = g.input("input", [batch, 3, image_size, image_size])
    channels = make_divisible(32 * width_mult)
    x = conv_bn(g, x, 3, channels, 3, 2, act="silu", name="features.0")
    for stage, ((t, k, s, _, c, _n), count) in enumerate(zip(SETTINGS, repeats or [r[-1] for r in SETTINGS]), start=1):
        cout = make_divisible(c * width_mult)
        for i in range(count):
            with g.scope(f"features.{stage}.{i}"):
                x = mbconv(g, x, channels, cout, t, k, s if i == 0 else 1)
            channels = cout
    x = conv_bn(g, x, channels, last_channel, 1, act="silu", name="features.8")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], name="avgpool")], axis=1)
    g.output(g.gemm(x, last_channel, num_classes, name="classifier.1"), "logits")


def build(
    batch: int = 1,
    image_size: int = 224,
    width_mult: float = 1.0,
    repeats: tuple = (),
    last_channel: int = 1280,
    num_classes: int = 1000,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """`repeats` overrides the blocks per stage (1, 2, 2, 3, 3, 4, 1)."""
    if repeats and len(repeats) != len(SETTINGS):
        raise ValueError(f"repeats needs {len(SETTINGS)} entries")
    return build_model(
        graph,
        "efficientnet_b0",
        seed=seed,
        opset=opset,
        calibrate=True,
        doc=f"EfficientNet-B0 x{width_mult}, seeded random weights (seed {seed})",
        batch=batch,
        image_size=image_size,
        width_mult=width_mult,
        repeats=tuple(repeats),
        last_channel=last_channel,
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, "efficientnet_b0", SMALL, argv)


if __name__ == "__main__":
    main()
