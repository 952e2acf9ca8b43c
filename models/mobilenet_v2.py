"""MobileNet-v2 (torchvision.models.mobilenet_v2).

Inverted residuals: 1x1 expansion conv + BN + ReLU6, 3x3 depthwise conv
(Conv with group = channels) + BN + ReLU6, 1x1 linear projection + BN, and
an Add of the input when stride is 1 and the channel count is unchanged.
ReLU6 is Clip(0, 6), as PyTorch exports it.

    python -m models.mobilenet_v2 -o /tmp
"""

from __future__ import annotations

import onnx

from .blocks import conv_bn_act
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

# (expansion t, output channels c, repeats n, first stride s), from the paper / torchvision
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

SMALL = dict(width_mult=0.25, blocks=(1, 2, 2, 1, 1, 1, 1), last_channel=64, image_size=32, num_classes=10)


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's rounding of scaled channel counts (never more than 10% down)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def inverted_residual(g: GraphBuilder, x: str, cin: int, cout: int, stride: int, expand: int) -> str:
    hidden = round(cin * expand)
    y = x
    if expand != 1:
        y = conv_bn_act(g, y, cin, hidden, 1, act="relu6", name="expand")
    y = conv_bn_act(g, y, hidden, hidden, 3, stride, 1, group=hidden, act="relu6", name="depthwise")
    y = conv_bn_act(g, y, hidden, cout, 1, act=None, name="project")
    return g.op("Add", [x, y]) if stride == 1 and cin == cout else y


def graph(
    g: GraphBuilder, *, batch: int, image_size: int, width_mult: float, blocks, last_channel: int, num_classes: int
):
    x = g.input("input", [batch, 3, image_size, image_size])
    channels = make_divisible(32 * width_mult)
    x = conv_bn_act(g, x, 3, channels, 3, 2, 1, act="relu6", name="features.0")
    index = 1
    for (t, c, _n, s), repeats in zip(SETTINGS, blocks or [n for _, _, n, _ in SETTINGS]):
        cout = make_divisible(c * width_mult)
        for i in range(repeats):
            with g.scope(f"features.{index}"):
                x = inverted_residual(g, x, channels, cout, s if i == 0 else 1, t)
            channels, index = cout, index + 1
    last = last_channel or make_divisible(1280 * max(1.0, width_mult))
    x = conv_bn_act(g, x, channels, last, 1, act="relu6", name=f"features.{index}")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], name="avgpool")], axis=1)
    g.output(g.gemm(x, last, num_classes, name="classifier.1"), "logits")


def build(
    batch: int = 1,
    image_size: int = 224,
    width_mult: float = 1.0,
    blocks: tuple = (),
    last_channel: int = 0,
    num_classes: int = 1000,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """`blocks` overrides the repeats per stage (1, 2, 3, 4, 3, 3, 1); `last_channel` 0 means torchvision's."""
    if blocks and len(blocks) != len(SETTINGS):
        raise ValueError(f"blocks needs {len(SETTINGS)} entries")
    return build_model(
        graph,
        "mobilenet_v2",
        seed=seed,
        opset=opset,
        calibrate=True,
        doc=f"MobileNet-v2 x{width_mult}, seeded random weights (seed {seed})",
        batch=batch,
        image_size=image_size,
        width_mult=width_mult,
        blocks=tuple(blocks),
        last_channel=last_channel,
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, "mobilenet_v2", SMALL, argv)


if __name__ == "__main__":
    main()
