"""ShuffleNet-v2 x1.0 (torchvision.models.shufflenet_v2_x1_0).

Units that split the channels in two (Split), run one half through 1x1 / depthwise 3x3 / 1x1
convolutions, concatenate, and shuffle the channels (Reshape, Transpose, Reshape, as PyTorch
exports channel_shuffle); 116, 232 and 464 channels.

    python -m models.shufflenet_v2 -o /tmp
"""

from __future__ import annotations

import numpy as np
import onnx

from .blocks import conv_bn
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

SMALL = dict(stage_repeats=(1, 2, 1), stage_channels=(24, 48, 96, 192, 256), image_size=64, num_classes=10)


def channel_shuffle(g: GraphBuilder, x: str, batch: int, channels: int, size: int) -> str:
    y = g.reshape(x, [batch, 2, channels // 2, size, size])
    return g.reshape(g.transpose(y, [0, 2, 1, 3, 4]), [batch, channels, size, size])


def unit(g: GraphBuilder, x: str, cin: int, cout: int, stride: int, batch: int, size: int) -> tuple[str, int]:
    """One InvertedResidual; returns its output and spatial size."""
    half = cout // 2
    if stride == 1:
        x1, x2 = g.op("Split", [x, g.const([half, half], np.int64, "split")], axis=1, outputs=2)
        src, width = x2, half
    else:
        with g.scope("branch1"):
            b1 = conv_bn(g, x, cin, cin, 3, stride, group=cin, name="0")
            x1 = conv_bn(g, b1, cin, half, 1, act="relu", name="2")
        src, width = x, cin
    with g.scope("branch2"):
        y = conv_bn(g, src, width, half, 1, act="relu", name="0")
        y = conv_bn(g, y, half, half, 3, stride, group=half, name="3")
        y = conv_bn(g, y, half, half, 1, act="relu", name="5")
    size = (size - 1) // stride + 1
    return channel_shuffle(g, g.op("Concat", [x1, y], axis=1), batch, cout, size), size


def graph(g: GraphBuilder, *, batch: int, image_size: int, stage_repeats, stage_channels, num_classes: int):
    x = g.input("input", [batch, 3, image_size, image_size])
    channels = stage_channels[0]
    x = conv_bn(g, x, 3, channels, 3, 2, act="relu", name="conv1")
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    size = ((image_size - 1) // 2 + 1 - 1) // 2 + 1
    for stage, (repeats, cout) in enumerate(zip(stage_repeats, stage_channels[1:4]), start=2):
        for i in range(repeats):
            with g.scope(f"stage{stage}.{i}"):
                x, size = unit(g, x, channels, cout, 2 if i == 0 else 1, batch, size)
            channels = cout
    last = stage_channels[-1]
    x = conv_bn(g, x, channels, last, 1, act="relu", name="conv5")
    x = g.reshape(g.reduce_mean(x, [2, 3]), [batch, last])
    g.output(g.gemm(x, last, num_classes, name="fc"), "logits")


def build(
    batch: int = 1,
    image_size: int = 224,
    stage_repeats: tuple = (4, 8, 4),
    stage_channels: tuple = (24, 116, 232, 464, 1024),
    num_classes: int = 1000,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    if len(stage_repeats) != 3 or len(stage_channels) != 5:
        raise ValueError("stage_repeats needs 3 entries and stage_channels 5")
    return build_model(
        graph,
        "shufflenet_v2",
        seed=seed,
        opset=opset,
        calibrate=True,
        doc=f"ShuffleNet-v2 {tuple(stage_channels)}, seeded random weights (seed {seed})",
        batch=batch,
        image_size=image_size,
        stage_repeats=tuple(stage_repeats),
        stage_channels=tuple(stage_channels),
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, "shufflenet_v2", SMALL, argv)


if __name__ == "__main__":
    main()
