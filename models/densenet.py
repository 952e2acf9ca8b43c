"""DenseNet-121 (torchvision.models.densenet121).

Stem conv 7x7/2 + BN + ReLU + maxpool 3x3/2, then four dense blocks
(6, 12, 24, 16 layers).  Each dense layer is pre-activation - BN, ReLU,
1x1 conv to 4 * growth channels, BN, ReLU, 3x3 conv to `growth` channels -
applied to the Concat of *all* earlier feature maps of the block, exactly as
torchvision's forward does (so the graph has a Concat per layer with up to
25 inputs).  Transitions: BN, ReLU, 1x1 conv halving the channels, 2x2
average pool.  Final BN + ReLU, global average pool, Gemm.

    python -m models.densenet -o /tmp
"""

from __future__ import annotations

import onnx

from .blocks import conv_bn_act
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

SMALL = dict(growth_rate=4, block_config=(2, 2, 2, 2), num_init_features=8, image_size=32, num_classes=10)


def bn_relu_conv(g: GraphBuilder, x: str, cin: int, cout: int, kernel: int, pad: int, n: int) -> str:
    """Pre-activation unit: BN -> ReLU -> conv (norm{n}, relu{n}, conv{n} in torchvision)."""
    y = g.op("Relu", [g.batch_norm(x, cin, name=f"norm{n}")])
    return g.conv(y, cin, cout, kernel, 1, pad, name=f"conv{n}")


def dense_layer(g: GraphBuilder, features: list[str], cin: int, growth: int, bn_size: int) -> str:
    x = features[0] if len(features) == 1 else g.op("Concat", features, axis=1)
    y = bn_relu_conv(g, x, cin, bn_size * growth, 1, 0, 1)
    return bn_relu_conv(g, y, bn_size * growth, growth, 3, 1, 2)


def dense_block(g: GraphBuilder, x: str, cin: int, layers: int, growth: int, bn_size: int) -> tuple[str, int]:
    features = [x]
    for i in range(layers):
        with g.scope(f"denselayer{i + 1}"):
            features.append(dense_layer(g, features, cin + i * growth, growth, bn_size))
    return g.op("Concat", features, axis=1), cin + layers * growth


def transition(g: GraphBuilder, x: str, cin: int, cout: int) -> str:
    y = g.op("Relu", [g.batch_norm(x, cin, name="norm")])
    y = g.conv(y, cin, cout, 1, name="conv")
    return g.op("AveragePool", [y], name="pool", kernel_shape=[2, 2], strides=[2, 2])


def graph(
    g: GraphBuilder,
    *,
    batch: int,
    image_size: int,
    growth_rate: int,
    block_config,
    num_init_features: int,
    bn_size: int,
    num_classes: int,
):
    x = g.input("input", [batch, 3, image_size, image_size])
    with g.scope("features"):
        x = conv_bn_act(g, x, 3, num_init_features, 7, 2, 3, name="conv0")
        x = g.op("MaxPool", [x], name="pool0", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
        channels = num_init_features
        for i, layers in enumerate(block_config):
            with g.scope(f"denseblock{i + 1}"):
                x, channels = dense_block(g, x, channels, layers, growth_rate, bn_size)
            if i != len(block_config) - 1:
                with g.scope(f"transition{i + 1}"):
                    x = transition(g, x, channels, channels // 2)
                channels //= 2
        x = g.op("Relu", [g.batch_norm(x, channels, name="norm5")])
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], name="avgpool")], axis=1)
    g.output(g.gemm(x, channels, num_classes, name="classifier"), "logits")


def build(
    batch: int = 1,
    image_size: int = 224,
    growth_rate: int = 32,
    block_config: tuple = (6, 12, 24, 16),
    num_init_features: int = 64,
    bn_size: int = 4,
    num_classes: int = 1000,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """DenseNet-121 by default; (6, 12, 32, 32) / (6, 12, 48, 32) give DenseNet-169 / 201."""
    return build_model(
        graph,
        "densenet121",
        seed=seed,
        opset=opset,
        calibrate=True,
        doc=f"DenseNet (blocks {tuple(block_config)}), seeded random weights (seed {seed})",
        batch=batch,
        image_size=image_size,
        growth_rate=growth_rate,
        block_config=tuple(block_config),
        num_init_features=num_init_features,
        bn_size=bn_size,
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, "densenet121", SMALL, argv)


if __name__ == "__main__":
    main()
