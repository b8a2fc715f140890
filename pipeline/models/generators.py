"""The article's CPPN generators: G(z, x, y, r) -> intensity in [0, 1].

Both take `(z [B, z_dim], coords [P, 3])` and return `[B, P]`, evaluated the
straightforward way (z broadcast to every pixel, layer by layer). This forward
is the reference ("oracle") that every fast render path is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ResnetConfig:
    """Part two: very deep, very thin residual CPPN."""
    family: str = "resnet"
    z_dim: int = 32          # latent size
    width: int = 6           # channels of every hidden layer (the article also tries 4)
    n_blocks: int = 24       # residual blocks
    relu_layers: int = 4     # ReLU layers per block, followed by one tanh layer
    z_scale: float = 8.0     # z is multiplied by this before the first layer
    relu_std: float = 1.0    # init std of ReLU-layer weights and biases (large: lively structure)
    tanh_std: float = 0.001  # init std of each block's tanh layer (tiny: block starts as identity)
    other_std: float = 0.05  # init std of the input and output layers


@dataclass(frozen=True)
class PrevConfig:
    """Part one: 4 layers of 128."""
    family: str = "prev"
    z_dim: int = 32          # latent size
    width: int = 128         # channels of every hidden layer
    tanh_layers: int = 3     # tanh layers after the softplus input layer
    z_scale: float = 8.0     # z is multiplied by this before the first layer
    init_std: float = 0.1    # init std of every weight and bias (part one's ops.py)


class CoordInput(nn.Module):
    """U = Wz (z_scale * z) + b + Wx x + Wy y + Wr r  (x, y, r projections carry no bias)."""

    def __init__(self, z_dim: int, width: int, z_scale: float):
        super().__init__()
        self.z_scale = z_scale
        self.z = nn.Linear(z_dim, width)
        self.xyr = nn.Linear(3, width, bias=False)  # columns: x, y, r

    def forward(self, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        B, P = z.shape[0], coords.shape[0]
        zp = self.z(z * self.z_scale)  # [B, W]
        cp = self.xyr(coords)  # [P, W]
        return zp.view(B, 1, -1) + cp.view(1, P, -1)  # [B, P, W]


def _check_inputs(z: torch.Tensor, coords: torch.Tensor, z_dim: int) -> None:
    if z.dim() != 2 or z.shape[1] != z_dim:
        raise ValueError(f"z must be [B, {z_dim}], got {tuple(z.shape)}")
    if coords.dim() != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords must be [P, 3], got {tuple(coords.shape)}")


class ResBlock(nn.Module):
    def __init__(self, width: int, relu_layers: int):
        super().__init__()
        self.relu = nn.ModuleList(nn.Linear(width, width) for _ in range(relu_layers))
        self.tanh = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = h
        for layer in self.relu:
            x = F.relu(layer(x))
        return h + torch.tanh(self.tanh(x))


class ResnetGenerator(nn.Module):
    def __init__(self, cfg: ResnetConfig = ResnetConfig()):
        super().__init__()
        self.cfg = cfg
        self.input = CoordInput(cfg.z_dim, cfg.width, cfg.z_scale)
        self.blocks = nn.ModuleList(ResBlock(cfg.width, cfg.relu_layers) for _ in range(cfg.n_blocks))
        self.out = nn.Linear(cfg.width, 1)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        cfg = self.cfg
        for p in list(self.input.parameters()) + list(self.out.parameters()):
            p.normal_(0.0, cfg.other_std)
        for block in self.blocks:
            for layer in block.relu:
                layer.weight.normal_(0.0, cfg.relu_std)
                layer.bias.normal_(0.0, cfg.relu_std)
            block.tanh.weight.normal_(0.0, cfg.tanh_std)
            block.tanh.bias.normal_(0.0, cfg.tanh_std)

    def layer_groups(self) -> list[list[nn.Linear]]:
        """Each block's layers in evaluation order (its relu layers, then its tanh layer)."""
        return [[*block.relu, block.tanh] for block in self.blocks]

    def kernel_parameters(self) -> torch.Tensor:
        """Every block layer's weight [out, in] then bias, in layer_groups order, then the output layer's:
        the flat layout the C and Triton kernels read (W*W + W floats per block layer). One torch.cat, so
        gradients reach every parameter."""
        layers = [layer for group in self.layer_groups() for layer in group] + [self.out]
        return torch.cat([t.reshape(-1) for layer in layers for t in (layer.weight, layer.bias)])

    def forward(self, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        _check_inputs(z, coords, self.cfg.z_dim)
        B, P = z.shape[0], coords.shape[0]
        h = torch.tanh(self.input(z, coords))  # [B, P, W]
        for block in self.blocks:
            h = block(h)  # [B, P, W]
        return torch.sigmoid(self.out(h)).view(B, P)


class PrevGenerator(nn.Module):
    def __init__(self, cfg: PrevConfig = PrevConfig()):
        super().__init__()
        self.cfg = cfg
        self.input = CoordInput(cfg.z_dim, cfg.width, cfg.z_scale)
        self.hidden = nn.ModuleList(nn.Linear(cfg.width, cfg.width) for _ in range(cfg.tanh_layers))
        self.out = nn.Linear(cfg.width, 1)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for p in self.parameters():
            p.normal_(0.0, self.cfg.init_std)

    def forward(self, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        _check_inputs(z, coords, self.cfg.z_dim)
        B, P = z.shape[0], coords.shape[0]
        h = F.softplus(self.input(z, coords))  # [B, P, W]
        for layer in self.hidden:
            h = torch.tanh(layer(h))  # [B, P, W]
        return torch.sigmoid(self.out(h)).view(B, P)


GENERATOR_FAMILIES = {"resnet": (ResnetConfig, ResnetGenerator), "prev": (PrevConfig, PrevGenerator)}


def generator_config(family: str, /, **values):
    """The config of a family from plain values (as stored in checkpoints); unknown keys are errors."""
    if family not in GENERATOR_FAMILIES:
        raise ValueError(f"unknown generator family {family!r}; known: {', '.join(GENERATOR_FAMILIES)}")
    if values.pop("family", family) != family:
        raise ValueError(f"config values are for another family than {family!r}")
    return GENERATOR_FAMILIES[family][0](**values)


def _linear(name: str, n_in: int, n_out: int, bias: bool = True) -> dict:
    return {f"{name}.weight": (n_out, n_in), **({f"{name}.bias": (n_out,)} if bias else {})}


def parameter_shapes(cfg) -> dict[str, tuple[int, ...]]:
    """The state_dict a generator of `cfg` has, as {name: shape}, worked out without building it (so a hostile
    checkpoint's config can be checked against its weights and bounded first; a test holds it to the modules)."""
    w = cfg.width
    shapes = {**_linear("input.z", cfg.z_dim, w), **_linear("input.xyr", 3, w, bias=False)}
    if cfg.family == "resnet":
        for b in range(cfg.n_blocks):
            for i in range(cfg.relu_layers):
                shapes.update(_linear(f"blocks.{b}.relu.{i}", w, w))
            shapes.update(_linear(f"blocks.{b}.tanh", w, w))
    else:
        for i in range(cfg.tanh_layers):
            shapes.update(_linear(f"hidden.{i}", w, w))
    shapes.update(_linear("out", w, 1))
    return shapes


def build_generator(cfg) -> nn.Module:
    return GENERATOR_FAMILIES[cfg.family][1](cfg)

