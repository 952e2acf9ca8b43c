"""ResNet (torchvision's ResNet v1.5: the stride sits in the 3x3 conv of a bottleneck).

Stem conv 7x7/2 + BN + ReLU + maxpool 3x3/2, four stages of basic blocks
(ResNet-18/34) or bottlenecks (ResNet-50/101/152) with a 1x1 conv + BN
projection on the shortcut where the shape changes, global average pool,
Flatten and a Gemm classifier.

    python -m models.resnet -o /tmp --depth 50
    python -m models.resnet -o /tmp --small
"""

from __future__ import annotations

import onnx

from .blocks import conv_bn_act
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

# depth -> (block kind, blocks per stage), as in torchvision.models.resnet
ARCHITECTURES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

SMALL = dict(layers=(1, 1, 1, 1), width=8, image_size=32, num_classes=10)


def shortcut(g: GraphBuilder, x: str, cin: int, cout: int, stride: int) -> str:
    """Identity, or a strided 1x1 conv + BN when the block changes the shape."""
    if stride == 1 and cin == cout:
        return x
    return conv_bn_act(g, x, cin, cout, 1, stride, act=None, name="downsample")


def basic_block(g: GraphBuilder, x: str, cin: int, planes: int, stride: int) -> tuple[str, int]:
    y = conv_bn_act(g, x, cin, planes, 3, stride, 1, name="conv1")
    y = conv_bn_act(g, y, planes, planes, 3, 1, 1, act=None, name="conv2")
    y = g.op("Add", [y, shortcut(g, x, cin, planes, stride)])
    return g.op("Relu", [y]), planes


def bottleneck(g: GraphBuilder, x: str, cin: int, planes: int, stride: int) -> tuple[str, int]:
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand by 4, plus the shortcut."""
    cout = planes * 4
    y = conv_bn_act(g, x, cin, planes, 1, name="conv1")
    y = conv_bn_act(g, y, planes, planes, 3, stride, 1, name="conv2")
    y = conv_bn_act(g, y, planes, cout, 1, act=None, name="conv3")
    y = g.op("Add", [y, shortcut(g, x, cin, cout, stride)])
    return g.op("Relu", [y]), cout


def graph(g: GraphBuilder, *, depth: int, batch: int, image_size: int, width: int, layers, num_classes: int):
    kind, default_layers = ARCHITECTURES[depth]
    block = basic_block if kind == "basic" else bottleneck
    x = g.input("input", [batch, 3, image_size, image_size])
    x = conv_bn_act(g, x, 3, width, 7, 2, 3, name="conv1")
    x = g.op("MaxPool", [x], name="maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    channels = width
    for stage, blocks in enumerate(layers or default_layers):
        for i in range(blocks):
            with g.scope(f"layer{stage + 1}.{i}"):
                stride = 2 if stage > 0 and i == 0 else 1
                x, channels = block(g, x, channels, width * 2**stage, stride)
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], name="avgpool")], axis=1)
    g.output(g.gemm(x, channels, num_classes, name="fc"), "logits")


def build(
    depth: int = 18,
    batch: int = 1,
    image_size: int = 224,
    width: int = 64,
    layers: tuple = (),
    num_classes: int = 1000,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """ResNet-`depth`; `layers` overrides the blocks per stage, `width` the stem channels (64)."""
    if depth not in ARCHITECTURES:
        raise ValueError(f"no ResNet-{depth}; choose one of {sorted(ARCHITECTURES)}")
    return build_model(
        graph,
        f"resnet{depth}",
        seed=seed,
        opset=opset,
        calibrate=True,
        doc=f"ResNet-{depth}, seeded random weights (seed {seed})",
        depth=depth,
        batch=batch,
        image_size=image_size,
        width=width,
        layers=tuple(layers),
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, lambda o: f"resnet{o.get('depth', 18)}", SMALL, argv)


if __name__ == "__main__":
    main()
