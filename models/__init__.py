"""Lathe's model zoo: ONNX models built in code with seeded random weights.

Each module builds one architecture with `onnx.helper` - nothing is
downloaded - and exposes `build(**size_options) -> onnx.ModelProto`
(full size by default), `SMALL` (the options of a fast test variant) and
`main()` (`python -m models.resnet -o DIR [--small] [--depth 50] ...`).

`ZOO` names the models the checks run; `check_zoo.py` compares Lathe with
onnxruntime on all of them.

    from models import ZOO
    model = ZOO["resnet50"].build(small=True)
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field

import onnx


@dataclass(frozen=True)
class ZooEntry:
    """A zoo model: a builder module plus the options that make it this model."""

    name: str
    module: str
    options: dict = field(default_factory=dict)

    def load(self):
        return importlib.import_module(f"{__name__}.{self.module}")

    def build_options(self, small: bool = False, **overrides) -> dict:
        mod = self.load()
        return {**self.options, **(mod.SMALL if small else {}), **overrides}

    def build(self, small: bool = False, **overrides) -> onnx.ModelProto:
        """The full-size model, or with `small` the test variant; `overrides`
        (seed, opset, any size option) win over both."""
        return self.load().build(**self.build_options(small, **overrides))

    def count_parameters(self, small: bool = False, **overrides) -> int:
        """Trainable parameters (as PyTorch counts them: no BN running stats),
        from the architecture alone - no weights are drawn, so this is cheap
        even for BERT-base.  Every module's `graph` takes `build`'s options
        other than seed and opset."""
        from .builder import count_parameters

        mod = self.load()
        defaults = {k: p.default for k, p in inspect.signature(mod.build).parameters.items()}
        options = {**defaults, **self.build_options(small, **overrides)}
        return count_parameters(mod.graph, **{k: v for k, v in options.items() if k != "seed"})


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("resnet18", "resnet", {"depth": 18}),
        ZooEntry("resnet50", "resnet", {"depth": 50}),
        ZooEntry("mobilenet_v2", "mobilenet_v2"),
        ZooEntry("mobilenet_v3", "mobilenet_v3"),
        ZooEntry("mobilenet_v3_fpn", "mobilenet_v3", {"fpn": 96, "image_size": 640}),
        ZooEntry("shufflenet_v2", "shufflenet_v2"),
        ZooEntry("efficientnet_b0", "efficientnet"),
        ZooEntry("vgg16", "vgg", {"depth": 16}),
        ZooEntry("inception_v3", "inception_v3"),
        ZooEntry("densenet121", "densenet"),
        ZooEntry("bert_base", "bert"),
        ZooEntry("transformer", "transformer"),
        ZooEntry("lstm_lm", "lstm_lm"),
        ZooEntry("gru", "gru"),
        ZooEntry("yolo", "yolo"),
        ZooEntry("conv_decoder", "conv_decoder"),
    ]
}

__all__ = ["ZOO", "ZooEntry"]
