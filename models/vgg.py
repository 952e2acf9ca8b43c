"""VGG (torchvision.models.vgg16, no batch norm).

Thirteen 3x3 convs (with bias) + ReLU in five stages separated by 2x2 max
pools, then Flatten and three Gemm layers (4096, 4096, classes) with ReLU
between them; dropout is the identity at inference and is left out.
torchvision's AdaptiveAvgPool2d(7) is the identity at 224x224 and is left
out too, so other image sizes simply give a wider first Gemm.

The network has no normalisation, so the He-normal init (gain sqrt 2 for
every layer followed by ReLU) is what keeps activations at unit scale over
sixteen layers.

    python -m models.vgg -o /tmp
"""

from __future__ import annotations

import math

import onnx

from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

# depth -> convs per stage (channels 64, 128, 256, 512, 512)
CONFIGS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}

SMALL = dict(width=8, hidden=64, image_size=32, num_classes=10)


def graph(g: GraphBuilder, *, depth: int, batch: int, image_size: int, width: int, hidden: int, num_classes: int):
    x = g.input("input", [batch, 3, image_size, image_size])
    channels, index, size = 3, 0, image_size
    for stage, convs in enumerate(CONFIGS[depth]):
        cout = width * min(2**stage, 8)
        for _ in range(convs):
            x = g.op("Relu", [g.conv(x, channels, cout, 3, 1, 1, bias=True, name=f"features.{index}")])
            channels, index = cout, index + 2
        x = g.op("MaxPool", [x], name=f"features.{index}", kernel_shape=[2, 2], strides=[2, 2])
        index, size = index + 1, size // 2
    x = g.op("Flatten", [x], axis=1)
    x = g.op("Relu", [g.gemm(x, channels * size * size, hidden, math.sqrt(2), name="classifier.0")])
    x = g.op("Relu", [g.gemm(x, hidden, hidden, math.sqrt(2), name="classifier.3")])
    g.output(g.gemm(x, hidden, num_classes, name="classifier.6"), "logits")


def build(
    depth: int = 16,
    batch: int = 1,
    image_size: int = 224,
    width: int = 64,
    hidden: int = 4096,
    num_classes: int = 1000,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """VGG-`depth` (11/13/16/19); `width` is the first stage's channels, `hidden` the Gemm width."""
    if depth not in CONFIGS:
        raise ValueError(f"no VGG-{depth}; choose one of {sorted(CONFIGS)}")
    if image_size % 32:
        raise ValueError("image_size must be a multiple of 32 (five 2x2 pools)")
    return build_model(
        graph,
        f"vgg{depth}",
        seed=seed,
        opset=opset,
        doc=f"VGG-{depth}, seeded random weights (seed {seed})",
        depth=depth,
        batch=batch,
        image_size=image_size,
        width=width,
        hidden=hidden,
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, lambda o: f"vgg{o.get('depth', 16)}", SMALL, argv)


if __name__ == "__main__":
    main()
