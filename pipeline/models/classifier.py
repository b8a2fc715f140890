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
    init_std: float = 0.02                  # conv (truncated normal) and linear (normal) weight init std


DISCRIMINATOR = ClassifierConfig(channels=(24, 48, 96), n_out=1)
KERNEL, STRIDE = 5, 2


def same_padding(size: int, kernel: int = KERNEL, stride: int = STRIDE) -> tuple[int, int]:
    """TensorFlow's "same" padding of one axis -> (before, after); the odd pixel goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Classifier(nn.Module):
    """Conv 5x5 stride 2 "same" x3 (leaky ReLU; batch norm on the 2nd and 3rd), then a linear head.

    Batch norm always uses the moments of the batch it is given (the original never switched to
    running averages), so real and generated batches, passed separately, are normalised separately.
    """

    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        convs, norms, pads = [], [], []
        c_in, size = 1, cfg.image_size
        for i, c in enumerate(cfg.channels):
            before, after = same_padding(size)
            pads.append((before, after, before, after))  # F.pad order: left, right, top, bottom
            convs.append(nn.Conv2d(c_in, c, KERNEL, stride=STRIDE, padding=0))
            norms.append(nn.BatchNorm2d(c, track_running_stats=False) if i > 0 else nn.Identity())
            c_in, size = c, -(-size // STRIDE)
        self.pads = pads
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.head = nn.Linear(c_in * size * size, cfg.n_out)
        with torch.no_grad():
            for conv in self.convs:
                nn.init.trunc_normal_(conv.weight, 0.0, cfg.init_std, -2 * cfg.init_std, 2 * cfg.init_std)
                conv.bias.zero_()
            self.head.weight.normal_(0.0, cfg.init_std)
            self.head.bias.zero_()
        # Channels-last convolutions: oneDNN's fastest layout on CPUs (about 1.4x here); same values.
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        B = images.shape[0]
        x = images.reshape(B, 1, self.cfg.image_size, self.cfg.image_size)  # [B, 1, S, S]
        for pad, conv, norm in zip(self.pads, self.convs, self.norms):
            x = F.leaky_relu(norm(conv(F.pad(x, pad))), self.cfg.leak)
        return self.head(x.reshape(B, -1))  # [B, n_out]
