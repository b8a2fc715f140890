"""The VAE encoder: 26x26 image -> (mu, logvar) of a 32-dim latent."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.devices import to_device


@dataclass(frozen=True)
class EncoderConfig:
    image_size: int = 26       # input images are image_size x image_size
    hidden: int = 512          # width of the two softplus layers
    z_dim: int = 32            # latent size
    keep_prob: float = 0.65    # dropout keep probability in training (1.0: no dropout, as in "prev")
    init_std: float = 0.02     # weight init std (biases start at 0)


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.cfg = cfg
        n_in = cfg.image_size * cfg.image_size
        self.fc1 = nn.Linear(n_in, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.hidden)
        self.mu = nn.Linear(cfg.hidden, cfg.z_dim)
        self.logvar = nn.Linear(cfg.hidden, cfg.z_dim)
        with torch.no_grad():
            for layer in (self.fc1, self.fc2, self.mu, self.logvar):
                layer.weight.normal_(0.0, cfg.init_std)
                layer.bias.zero_()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = images.shape[0]
        x = images.reshape(B, -1)  # [B, S*S]
        p_drop = 1.0 - self.cfg.keep_prob
        x = F.dropout(F.softplus(self.fc1(x)), p_drop, self.training)  # [B, hidden]
        x = F.dropout(F.softplus(self.fc2(x)), p_drop, self.training)  # [B, hidden]
        return self.mu(x), self.logvar(x)  # [B, z_dim] each


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None,
                   eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = mu + sigma * eps. eps: given, or drawn on the generator's device (a CPU generator may serve CUDA
    tensors: the draw is then copied over without a host sync, devices.to_device)."""
    if eps is None:
        where = mu.device if generator is None else generator.device
        eps = to_device(torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=where), mu.device)
    return mu + torch.exp(0.5 * logvar) * eps
