"""Conv classifier (part two: 11 classes, 10 = "generated") and binary discriminator (part one)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ClassifierConfig:
    image_size: int = 26                    # input images are image_size x image_size
    channels: tuple[int, ...] = (32, 64, 128)  # conv 5x5 stride 2 "same"; part one uses (24, 48, 96)
    n_out: int = 11                         # 11 logits (digits + generated); 1 for the binary discriminator
    leak: float = 0.2                       # leaky ReLU slope
    init_std: float = 0.02                  # conv weight init std


DISCRIMINATOR = ClassifierConfig(channels=(24, 48, 96), n_out=1)


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        convs, norms = [], []
        c_in, size = 1, cfg.image_size
        for i, c in enumerate(cfg.channels):
            # "same" padding with stride 2: output ceil(size / 2)
            convs.append(nn.Conv2d(c_in, c, 5, stride=2, padding=2))
            norms.append(nn.BatchNorm2d(c) if i > 0 else nn.Identity())  # batch norm on 2nd and 3rd
            c_in, size = c, (size + 1) // 2
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.head = nn.Linear(c_in * size * size, cfg.n_out)
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.normal_(0.0, cfg.init_std)
                conv.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        B = images.shape[0]
        x = images.reshape(B, 1, self.cfg.image_size, self.cfg.image_size)  # [B, 1, S, S]
        for conv, norm in zip(self.convs, self.norms):
            x = F.leaky_relu(norm(conv(x)), self.cfg.leak)
        return self.head(x.reshape(B, -1))  # [B, n_out]
