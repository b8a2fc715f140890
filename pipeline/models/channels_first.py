"""The resnet generator channels-first, `[width, pixels]` with `addmm`: the one definition the render tile path
(no grad, in-place activations) and the training "torch" backend (autograd) both run."""
from __future__ import annotations

from typing import Callable

import torch


def resnet_channels_first(h: torch.Tensor, groups, out, tanh: Callable = torch.tanh, relu: Callable = torch.relu,
                          sigmoid: Callable = torch.sigmoid) -> torch.Tensor:
    """h: tanh of the input layer, [W, N]; groups: per block [(weight [W, W], bias [W, 1]), ...] in
    ResnetGenerator.layer_groups order (relu layers, then the tanh layer); out: (weight [1, W], bias [1, 1]).
    Returns the sigmoid output [1, N]. The activations are arguments so the render path can pass in-place
    ones; `h` itself is never written."""
    for layers in groups:
        x = h
        for w, b in layers[:-1]:
            x = relu(torch.addmm(b, w, x))
        w, b = layers[-1]
        h = h + tanh(torch.addmm(b, w, x))
    w, b = out
    return sigmoid(torch.addmm(b, w, h))
