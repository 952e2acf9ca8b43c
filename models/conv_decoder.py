"""A U-Net-style segmentation network whose decoder goes up with ConvTranspose (the layout of
milesial/Pytorch-UNet with transposed-convolution upsampling, at a smaller width).

Encoder: double 3x3 convolutions (Conv, BN, ReLU, twice) at each level, MaxPool 2x2 between
levels. Decoder: ConvTranspose 2x2 stride 2 (bias, no BN, as nn.ConvTranspose2d exports) halving
the channels, Concat with the encoder's skip at that level, a double convolution; the outermost
step up is a 4x4 stride-2 ConvTranspose padded by 1 (the pix2pix / DCGAN form, whose taps overlap).
A final 1x1 convolution with bias gives the per-pixel class scores (21 classes, Pascal VOC's count).

    python -m models.conv_decoder -o /tmp
"""

from __future__ import annotations

import math

import onnx

from .blocks import conv_bn
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

SMALL = dict(image_size=32, features=(8, 16, 24), num_classes=3)


def double_conv(g: GraphBuilder, x: str, cin: int, cout: int, name: str) -> str:
    with g.scope(name):
        x = conv_bn(g, x, cin, cout, 3, act="relu", name="0")
        return conv_bn(g, x, cout, cout, 3, act="relu", name="1")


def conv_transpose(g: GraphBuilder, x: str, cin: int, cout: int, kernel: int, stride: int, pad: int, name: str) -> str:
    """nn.ConvTranspose2d with bias; weight [cin, cout, k, k]. Each output pixel sums
    cin * (kernel / stride)^2 taps, which is its fan-in for the weights' scale."""
    fan_in = cin * kernel * kernel // (stride * stride)
    with g.scope(name):
        w = g.normal("weight", (cin, cout, kernel, kernel), 1.0 / math.sqrt(fan_in))
        b = g.normal("bias", (cout,), 0.05)
    return g.op(
        "ConvTranspose",
        [x, w, b],
        name=name,
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        pads=[pad, pad, pad, pad],
    )


def graph(g: GraphBuilder, *, batch: int, image_size: int, features, num_classes: int):
    if image_size % (1 << (len(features) - 1)):
        raise ValueError(f"image_size {image_size} does not halve {len(features) - 1} times")
    x = g.input("input", [batch, 3, image_size, image_size])
    skips = []
    cin = 3
    for level, c in enumerate(features):
        if level:
            x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        x = double_conv(g, x, cin, c, f"down{level}")
        skips.append(x)
        cin = c
    for level in reversed(range(len(features) - 1)):
        c = features[level]
        kernel, pad = (4, 1) if level == 0 else (2, 0)
        up = conv_transpose(g, x, cin, c, kernel, 2, pad, f"up{level}.up")
        x = double_conv(g, g.op("Concat", [skips[level], up], axis=1), 2 * c, c, f"up{level}.conv")
        cin = c
    g.output(g.conv(x, cin, num_classes, 1, bias=True, gain=1.0, name="outc"), "logits")


def build(
    batch: int = 1,
    image_size: int = 256,
    features: tuple = (32, 64, 128, 256),
    num_classes: int = 21,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """`features` are the channels of each level, outermost first (len - 1 steps down and up)."""
    if len(features) < 2:
        raise ValueError("features needs at least two levels")
    return build_model(
        graph,
        "conv_decoder",
        seed=seed,
        opset=opset,
        calibrate=True,
        doc=f"U-Net-style ConvTranspose decoder {tuple(features)}, seeded random weights (seed {seed})",
        batch=batch,
        image_size=image_size,
        features=tuple(features),
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, "conv_decoder", SMALL, argv)


if __name__ == "__main__":
    main()
