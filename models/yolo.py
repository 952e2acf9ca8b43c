"""A YOLOv5s-style detector (ultralytics YOLOv5 v6+, yolov5s.yaml): CSPDarknet backbone, PAN neck,
three detection heads.

A 6x6 stride-2 stem convolution, C3 blocks (two 1x1 branches, bottlenecks of 1x1 and 3x3
convolutions on one of them, a Concat and a 1x1 merge), SPPF (three chained 5x5 stride-1 max
pools, concatenated), and a neck that goes up with nearest Resize x2 and Concat with the backbone,
then back down with stride-2 convolutions and Concat. Every convolution is Conv (no bias) ->
BatchNormalization -> SiLU (x * Sigmoid(x), as torch exports nn.SiLU), with BN left unfolded as
the zoo's other models keep it. Channel counts 32..512 at width 0.5, and the heads' 255 = 3 anchors
x (80 classes + 5) outputs, which no vector width divides.

The outputs are the three heads' raw 1x1 convolutions (strides 8, 16, 32): no anchor decoding,
no sigmoid on them, no NMS.

    python -m models.yolo -o /tmp
"""

from __future__ import annotations

import math

import onnx

from .blocks import silu, upsample_nearest
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

ANCHORS = 3
SMALL = dict(width_mult=0.125, depth_mult=0.1, image_size=64, num_classes=3)


def channels(c: int, width_mult: float) -> int:
    """YOLOv5's width scaling: up to a multiple of 8."""
    return math.ceil(c * width_mult / 8) * 8


def repeats(n: int, depth_mult: float) -> int:
    """YOLOv5's depth scaling: at least one block."""
    return max(round(n * depth_mult), 1)


def conv(g: GraphBuilder, x: str, cin: int, cout: int, kernel: int, stride: int = 1, name: str = "conv") -> str:
    """ultralytics' Conv: padding (kernel - 1) // 2, BN (YOLOv5's eps 1e-3), SiLU."""
    with g.scope(name):
        return silu(g, g.batch_norm(g.conv(x, cin, cout, kernel, stride, (kernel - 1) // 2), cout, eps=1e-3))


def c3(g: GraphBuilder, x: str, cin: int, cout: int, n: int, shortcut: bool, name: str) -> str:
    """CSP bottleneck with three convolutions: cv3(Concat(m(cv1(x)), cv2(x)))."""
    hidden = cout // 2
    with g.scope(name):
        y = conv(g, x, cin, hidden, 1, name="cv1")
        for i in range(n):
            with g.scope(f"m.{i}"):
                b = conv(g, conv(g, y, hidden, hidden, 1, name="cv1"), hidden, hidden, 3, name="cv2")
                y = g.op("Add", [y, b]) if shortcut else b
        z = conv(g, x, cin, hidden, 1, name="cv2")
        return conv(g, g.op("Concat", [y, z], axis=1), 2 * hidden, cout, 1, name="cv3")


def sppf(g: GraphBuilder, x: str, cin: int, cout: int, name: str) -> str:
    """Spatial pyramid pooling, fast: 5x5 max pools in a chain instead of 5, 9 and 13 side by side."""
    hidden = cin // 2
    with g.scope(name):
        x = conv(g, x, cin, hidden, 1, name="cv1")
        pools = [x]
        for _ in range(3):
            pools.append(g.op("MaxPool", [pools[-1]], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2]))
        return conv(g, g.op("Concat", pools, axis=1), 4 * hidden, cout, 1, name="cv2")


def graph(g: GraphBuilder, *, batch: int, image_size: int, width_mult: float, depth_mult: float, num_classes: int):
    if image_size % 32:
        raise ValueError(f"image_size {image_size} is not a multiple of the largest stride, 32")
    c = {k: channels(k, width_mult) for k in (64, 128, 256, 512, 1024)}
    x = g.input("images", [batch, 3, image_size, image_size])
    # backbone
    x = conv(g, x, 3, c[64], 6, 2, name="model.0")  # 6x6 s2, padded by 2: what replaced the Focus space-to-depth
    x = conv(g, x, c[64], c[128], 3, 2, name="model.1")
    x = c3(g, x, c[128], c[128], repeats(3, depth_mult), True, "model.2")
    x = conv(g, x, c[128], c[256], 3, 2, name="model.3")
    p3 = c3(g, x, c[256], c[256], repeats(6, depth_mult), True, "model.4")
    x = conv(g, p3, c[256], c[512], 3, 2, name="model.5")
    p4 = c3(g, x, c[512], c[512], repeats(9, depth_mult), True, "model.6")
    x = conv(g, p4, c[512], c[1024], 3, 2, name="model.7")
    x = c3(g, x, c[1024], c[1024], repeats(3, depth_mult), True, "model.8")
    x = sppf(g, x, c[1024], c[1024], "model.9")
    # neck: top-down (FPN) ...
    h10 = conv(g, x, c[1024], c[512], 1, name="model.10")
    x = g.op("Concat", [upsample_nearest(g, h10), p4], axis=1)
    x = c3(g, x, 2 * c[512], c[512], repeats(3, depth_mult), False, "model.13")
    h14 = conv(g, x, c[512], c[256], 1, name="model.14")
    x = g.op("Concat", [upsample_nearest(g, h14), p3], axis=1)
    out3 = c3(g, x, 2 * c[256], c[256], repeats(3, depth_mult), False, "model.17")
    # ... and bottom-up (PAN)
    x = g.op("Concat", [conv(g, out3, c[256], c[256], 3, 2, name="model.18"), h14], axis=1)
    out4 = c3(g, x, 2 * c[256], c[512], repeats(3, depth_mult), False, "model.20")
    x = g.op("Concat", [conv(g, out4, c[512], c[512], 3, 2, name="model.21"), h10], axis=1)
    out5 = c3(g, x, 2 * c[512], c[1024], repeats(3, depth_mult), False, "model.23")
    # Detect: one 1x1 convolution with bias per scale
    with g.scope("model.24"):
        for i, (y, cin) in enumerate(((out3, c[256]), (out4, c[512]), (out5, c[1024]))):
            head = g.conv(y, cin, ANCHORS * (num_classes + 5), 1, bias=True, gain=1.0, name=f"m.{i}")
            g.output(head, f"head{8 << i}")


def build(
    batch: int = 1,
    image_size: int = 640,
    width_mult: float = 0.5,
    depth_mult: float = 0.33,
    num_classes: int = 80,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """width_mult / depth_mult 0.5 / 0.33 are YOLOv5s (0.25 / 0.33 YOLOv5n, 1.0 / 1.0 YOLOv5l)."""
    return build_model(
        graph,
        "yolo",
        seed=seed,
        opset=opset,
        calibrate=True,
        doc=f"YOLOv5-style detector, width {width_mult} depth {depth_mult}, seeded random weights (seed {seed})",
        batch=batch,
        image_size=image_size,
        width_mult=width_mult,
        depth_mult=depth_mult,
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, "yolo", SMALL, argv)


if __name__ == "__main__":
    main()
