"""Inception-v3 (torchvision.models.inception_v3, inference graph without the aux head).

Stem of BasicConv2d (conv without bias + BN eps 1e-3 + ReLU) and max pools,
then the real mixed blocks: Mixed_5b-d (InceptionA: 1x1 / 5x5 / double 3x3 /
avg-pool branches), Mixed_6a (InceptionB, strided reduction), Mixed_6b-e
(InceptionC: factorised 1x7 / 7x1 convs), Mixed_7a (InceptionD), Mixed_7b-c
(InceptionE: 1x3 and 3x1 convs whose outputs are concatenated side by side).
Branch outputs are joined with Concat on channels; the pool branches use
AveragePool 3x3/1 with padding 1 counted in the divisor
(count_include_pad=1, PyTorch's default).  Global average pool, Flatten,
Gemm.

    python -m models.inception_v3 -o /tmp
"""

from __future__ import annotations

import onnx

from .blocks import conv_bn_act
from .builder import DEFAULT_OPSET, GraphBuilder, build_model, cli

POOL_FEATURES = (32, 64, 64)  # Mixed_5b, 5c, 5d
C7 = (128, 160, 160, 192)  # Mixed_6b .. 6e

SMALL = dict(width_mult=0.125, blocks=(1, 1, 1), image_size=75, num_classes=10)


class _Net:
    """Carries the width multiplier so blocks can be written with the paper's channel counts."""

    def __init__(self, g: GraphBuilder, width_mult: float):
        self.g, self.width_mult = g, width_mult

    def ch(self, c: int) -> int:
        return max(1, int(c * self.width_mult))

    def conv(self, x: str, cin: int, cout: int, kernel, stride=1, pad=0, name: str = "conv") -> str:
        """BasicConv2d; `cout` is the full-width count, `cin` already scaled."""
        return conv_bn_act(self.g, x, cin, self.ch(cout), kernel, stride, pad, eps=1e-3, name=name)

    def avg_pool_3x3(self, x: str) -> str:
        return self.g.op(
            "AveragePool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=1
        )

    def max_pool_3x3_s2(self, x: str) -> str:
        return self.g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])

    def concat(self, branches: list[str]) -> str:
        return self.g.op("Concat", branches, axis=1)

    def inception_a(self, x: str, cin: int, pool_features: int) -> tuple[str, int]:
        b1 = self.conv(x, cin, 64, 1, name="branch1x1")
        b5 = self.conv(x, cin, 48, 1, name="branch5x5_1")
        b5 = self.conv(b5, self.ch(48), 64, 5, pad=2, name="branch5x5_2")
        b3 = self.conv(x, cin, 64, 1, name="branch3x3dbl_1")
        b3 = self.conv(b3, self.ch(64), 96, 3, pad=1, name="branch3x3dbl_2")
        b3 = self.conv(b3, self.ch(96), 96, 3, pad=1, name="branch3x3dbl_3")
        bp = self.conv(self.avg_pool_3x3(x), cin, pool_features, 1, name="branch_pool")
        return self.concat([b1, b5, b3, bp]), self.ch(64) * 2 + self.ch(96) + self.ch(pool_features)

    def inception_b(self, x: str, cin: int) -> tuple[str, int]:
        b3 = self.conv(x, cin, 384, 3, stride=2, name="branch3x3")
        bd = self.conv(x, cin, 64, 1, name="branch3x3dbl_1")
        bd = self.conv(bd, self.ch(64), 96, 3, pad=1, name="branch3x3dbl_2")
        bd = self.conv(bd, self.ch(96), 96, 3, stride=2, name="branch3x3dbl_3")
        return self.concat([b3, bd, self.max_pool_3x3_s2(x)]), self.ch(384) + self.ch(96) + cin

    def inception_c(self, x: str, cin: int, c7: int) -> tuple[str, int]:
        """The factorised 7x7: 1x7 and 7x1 convs with asymmetric padding."""
        n = self.ch(c7)
        b1 = self.conv(x, cin, 192, 1, name="branch1x1")
        b7 = self.conv(x, cin, c7, 1, name="branch7x7_1")
        b7 = self.conv(b7, n, c7, (1, 7), pad=(0, 3), name="branch7x7_2")
        b7 = self.conv(b7, n, 192, (7, 1), pad=(3, 0), name="branch7x7_3")
        bd = self.conv(x, cin, c7, 1, name="branch7x7dbl_1")
        bd = self.conv(bd, n, c7, (7, 1), pad=(3, 0), name="branch7x7dbl_2")
        bd = self.conv(bd, n, c7, (1, 7), pad=(0, 3), name="branch7x7dbl_3")
        bd = self.conv(bd, n, c7, (7, 1), pad=(3, 0), name="branch7x7dbl_4")
        bd = self.conv(bd, n, 192, (1, 7), pad=(0, 3), name="branch7x7dbl_5")
        bp = self.conv(self.avg_pool_3x3(x), cin, 192, 1, name="branch_pool")
        return self.concat([b1, b7, bd, bp]), 4 * self.ch(192)

    def inception_d(self, x: str, cin: int) -> tuple[str, int]:
        b3 = self.conv(x, cin, 192, 1, name="branch3x3_1")
        b3 = self.conv(b3, self.ch(192), 320, 3, stride=2, name="branch3x3_2")
        b7 = self.conv(x, cin, 192, 1, name="branch7x7x3_1")
        b7 = self.conv(b7, self.ch(192), 192, (1, 7), pad=(0, 3), name="branch7x7x3_2")
        b7 = self.conv(b7, self.ch(192), 192, (7, 1), pad=(3, 0), name="branch7x7x3_3")
        b7 = self.conv(b7, self.ch(192), 192, 3, stride=2, name="branch7x7x3_4")
        return self.concat([b3, b7, self.max_pool_3x3_s2(x)]), self.ch(320) + self.ch(192) + cin

    def inception_e(self, x: str, cin: int) -> tuple[str, int]:
        """Expanded filter bank: each 3x3 path splits into a 1x3 and a 3x1 conv, concatenated."""
        n384 = self.ch(384)
        b1 = self.conv(x, cin, 320, 1, name="branch1x1")
        b3 = self.conv(x, cin, 384, 1, name="branch3x3_1")
        b3 = self.concat(
            [
                self.conv(b3, n384, 384, (1, 3), pad=(0, 1), name="branch3x3_2a"),
                self.conv(b3, n384, 384, (3, 1), pad=(1, 0), name="branch3x3_2b"),
            ]
        )
        bd = self.conv(x, cin, 448, 1, name="branch3x3dbl_1")
        bd = self.conv(bd, self.ch(448), 384, 3, pad=1, name="branch3x3dbl_2")
        bd = self.concat(
            [
                self.conv(bd, n384, 384, (1, 3), pad=(0, 1), name="branch3x3dbl_3a"),
                self.conv(bd, n384, 384, (3, 1), pad=(1, 0), name="branch3x3dbl_3b"),
            ]
        )
        bp = self.conv(self.avg_pool_3x3(x), cin, 192, 1, name="branch_pool")
        return self.concat([b1, b3, bd, bp]), self.ch(320) + 4 * n384 + self.ch(192)


def graph(g: GraphBuilder, *, batch: int, image_size: int, width_mult: float, blocks, num_classes: int):
    net = _Net(g, width_mult)
    n_a, n_c, n_e = blocks
    x = g.input("input", [batch, 3, image_size, image_size])
    x = net.conv(x, 3, 32, 3, stride=2, name="Conv2d_1a_3x3")
    x = net.conv(x, net.ch(32), 32, 3, name="Conv2d_2a_3x3")
    x = net.conv(x, net.ch(32), 64, 3, pad=1, name="Conv2d_2b_3x3")
    x = net.max_pool_3x3_s2(x)
    x = net.conv(x, net.ch(64), 80, 1, name="Conv2d_3b_1x1")
    x = net.conv(x, net.ch(80), 192, 3, name="Conv2d_4a_3x3")
    x = net.max_pool_3x3_s2(x)
    c = net.ch(192)
    # Mixed blocks; with fewer blocks than the real 3 / 4 / 2, the last ones are dropped.
    for i in range(n_a):
        with g.scope(f"Mixed_5{'bcd'[i]}"):
            x, c = net.inception_a(x, c, POOL_FEATURES[i])
    with g.scope("Mixed_6a"):
        x, c = net.inception_b(x, c)
    for i in range(n_c):
        with g.scope(f"Mixed_6{'bcde'[i]}"):
            x, c = net.inception_c(x, c, C7[i])
    with g.scope("Mixed_7a"):
        x, c = net.inception_d(x, c)
    for i in range(n_e):
        with g.scope(f"Mixed_7{'bc'[i]}"):
            x, c = net.inception_e(x, c)
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], name="avgpool")], axis=1)
    g.output(g.gemm(x, c, num_classes, name="fc"), "logits")


def build(
    batch: int = 1,
    image_size: int = 299,
    width_mult: float = 1.0,
    blocks: tuple = (3, 4, 2),
    num_classes: int = 1000,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """`blocks` = how many InceptionA (<= 3), InceptionC (<= 4) and InceptionE (<= 2) blocks to keep;
    `image_size` must be at least 75 (the smallest input that survives the reductions)."""
    if len(blocks) != 3 or not (1 <= blocks[0] <= 3 and 1 <= blocks[1] <= 4 and 1 <= blocks[2] <= 2):
        raise ValueError("blocks must be (1..3, 1..4, 1..2)")
    if image_size < 75:
        raise ValueError("Inception-v3 needs images of at least 75x75")
    return build_model(
        graph,
        "inception_v3",
        seed=seed,
        opset=opset,
        calibrate=True,
        doc=f"Inception-v3, seeded random weights (seed {seed})",
        batch=batch,
        image_size=image_size,
        width_mult=width_mult,
        blocks=tuple(blocks),
        num_classes=num_classes,
    )


def main(argv=None):
    return cli(build, "inception_v3", SMALL, argv)


if __name__ == "__main__":
    main()
