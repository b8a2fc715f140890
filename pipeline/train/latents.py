"""Latents a training run stores in its checkpoints: class means and a bank of single-digit encodings.

Both come from the encoder's mean `mu` (eval mode: no dropout) of center 26x26 crops, so a
checkpoint can render digits on demand without the dataset.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from pipeline.data import center_crops

N_CLASSES = 10
BANK_PER_CLASS = 16  # single-digit encodings stored per class


@torch.no_grad()
def encode(encoder: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """uint8 [N, 28, 28] -> encoder mu float32 [N, z_dim] on the CPU (eval mode, center crops, in batches, on
    the encoder's device)."""
    was_training = encoder.training
    dev = next(encoder.parameters()).device
    encoder.eval()
    try:
        parts = [encoder(center_crops(images[s:s + batch_size]).to(dev))[0].cpu()
                 for s in range(0, images.shape[0], batch_size)]
    finally:
        encoder.train(was_training)
    return torch.cat(parts) if parts else torch.zeros(0, encoder.cfg.z_dim)


@torch.no_grad()
def compute_class_latents(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                          batch_size: int = 1000) -> tuple[torch.Tensor, list[int]]:
    """Mean encoder mu per class -> (float32 [10, z_dim], classes with no images; their rows are 0)."""
    mu = encode(encoder, images, batch_size).double()  # [N, z_dim]
    sums = torch.zeros(N_CLASSES, mu.shape[1], dtype=torch.float64).index_add_(0, labels, mu)
    counts = torch.bincount(labels, minlength=N_CLASSES).to(torch.float64)[:N_CLASSES]
    missing = [c for c in range(N_CLASSES) if counts[c] == 0]
    means = sums / counts.clamp(min=1).unsqueeze(1)
    return means.float(), missing


def bank_indices(labels: torch.Tensor, per_class: int = BANK_PER_CLASS) -> torch.Tensor:
    """Indices of the first `per_class` images of each class, grouped by class (0s first) -> int64 [N]."""
    picks = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(N_CLASSES)]
    return torch.cat(picks).to(torch.int64)


@torch.no_grad()
def compute_digit_bank(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       per_class: int = BANK_PER_CLASS) -> dict:
    """Encodings of single real digits -> {"latents": float32 [N, z_dim], "labels": int64 [N]}.

    The first `per_class` digits of each class in the given images (the trainer passes the
    test split when it has one), as the article's videos pass through encodings of real digits.
    """
    idx = bank_indices(labels, per_class)
    return {"latents": encode(encoder, images[idx]).float().contiguous(), "labels": labels[idx].to(torch.int64)}
