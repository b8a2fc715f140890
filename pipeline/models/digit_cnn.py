"""The project's own digit classifier: a small CNN that judges rendered 26x26 digits.

Independent of any generator's training (its weights come from scripts/train_digit_cnn.py on the
60,000 MNIST training digits). Input: float [B, 26, 26] or [B, 1, 26, 26] in [0, 1], white digit on
black, as MNIST and the generators' outputs are. No I/O here; pipeline.digit_classifier reads and checks
the weight files (the judge of `eval`, and the distance of `project`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class DigitCNNConfig:
    image_size: int = 26                 # square input side
    channels: tuple[int, int] = (32, 64)  # output channels of the two conv layers
    kernel: int = 5                      # conv kernel side (no padding), each conv followed by 2x2 max-pool
    hidden: int = 128                    # width of the fully connected hidden layer
    n_classes: int = 10
    dropout: float = 0.25                # on the hidden layer, training only

    def __post_init__(self):
        if isinstance(self.channels, list):  # from plain data (asdict/JSON turn tuples into lists)
            object.__setattr__(self, "channels", tuple(self.channels))
        ints = {"image_size": self.image_size, "kernel": self.kernel, "hidden": self.hidden,
                "n_classes": self.n_classes}
        for name, v in ints.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if (not isinstance(self.channels, tuple) or len(self.channels) != 2
                or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels)):
            raise ValueError(f"channels must be two positive integers, got {self.channels!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.feature_side() < 1:
            raise ValueError(f"image_size {self.image_size} is too small for two {self.kernel}x{self.kernel} "
                             f"convolutions with pooling")

    def feature_side(self) -> int:
        """Side of the feature map after conv+pool, conv+pool: 26 -> 22 -> 11 -> 7 -> 3 by default."""
        s = self.image_size
        for _ in self.channels:
            s = (s - self.kernel + 1) // 2
        return s

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


CONFIG_KEYS = tuple(f.name for f in fields(DigitCNNConfig))


def expected_shapes(cfg: DigitCNNConfig) -> dict[str, tuple[int, ...]]:
    """The state_dict's tensor shapes for a config, without building the module."""
    c1, c2 = cfg.channels
    k = cfg.kernel
    flat = c2 * cfg.feature_side() ** 2
    return {
        "conv1.weight": (c1, 1, k, k), "conv1.bias": (c1,),
        "conv2.weight": (c2, c1, k, k), "conv2.bias": (c2,),
        "fc1.weight": (cfg.hidden, flat), "fc1.bias": (cfg.hidden,),
        "fc2.weight": (cfg.n_classes, cfg.hidden), "fc2.bias": (cfg.n_classes,),
    }


class DigitCNN(nn.Module):
    """conv5x5(32) -> ReLU -> maxpool2 -> conv5x5(64) -> ReLU -> maxpool2 -> fc(128) -> ReLU -> fc(10)."""

    def __init__(self, cfg: DigitCNNConfig = DigitCNNConfig()):
        super().__init__()
        self.cfg = cfg
        c1, c2 = cfg.channels
        self.conv1 = nn.Conv2d(1, c1, cfg.kernel)
        self.conv2 = nn.Conv2d(c1, c2, cfg.kernel)
        self.fc1 = nn.Linear(c2 * cfg.feature_side() ** 2, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float [B, S, S] or [B, 1, S, S] in [0, 1] -> logits [B, n_classes]."""
        x = F.dropout(self.features(images), self.cfg.dropout, self.training)
        return self.fc2(x)                          # [B, n_classes]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The hidden layer's activations [B, hidden]: what the logits are read from."""
        x = images.unsqueeze(1) if images.dim() == 3 else images
        S = self.cfg.image_size
        if x.dim() != 4 or x.shape[1:] != (1, S, S):
            raise ValueError(f"images must be [B, {S}, {S}] or [B, 1, {S}, {S}], got {tuple(images.shape)}")
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [B, c1, 11, 11]
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # [B, c2, 3, 3]
        return F.relu(self.fc1(x.flatten(1)))       # [B, hidden]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
