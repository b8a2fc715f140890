"""The article's losses and accuracies, as plain functions of logits, labels and encoder outputs."""
from __future__ import annotations

import torch
import torch.nn.functional as F

FAKE_CLASS = 10  # part two's classifier: digits 0..9, class 10 = "generated"


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch, divided by the pixel count."""
    per_image = -0.5 * torch.sum(1 + logvar - mu * mu - torch.exp(logvar), dim=1)  # [B]
    return per_image.mean() / n_pixels


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood summed over pixels -> [B] (part one's VAE term)."""
    B = recon.shape[0]
    return F.binary_cross_entropy(recon.reshape(B, -1), target.reshape(B, -1), reduction="none").sum(dim=1)


def prev_vae_loss(recon: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(reconstruction summed over pixels + KL), mean over the batch, divided by the pixel count."""
    n_pixels = target[0].numel()
    kl = -0.5 * torch.sum(1 + logvar - mu * mu - torch.exp(logvar), dim=1)  # [B]
    return (reconstruction_loss(recon, target) + kl).mean() / n_pixels


# ---- part two: 11-class classifier

def classifier_losses(real_logits: torch.Tensor, fake_logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """D_real = CE(D(real), label), D_fake = CE(D(G(z)), 10), D_loss = (10 D_real + D_fake) / 11."""
    d_real = F.cross_entropy(real_logits, labels)
    d_fake = F.cross_entropy(fake_logits, torch.full_like(labels, FAKE_CLASS))
    return {"d_real": d_real, "d_fake": d_fake, "d_loss": (10.0 * d_real + d_fake) / 11.0}


def generator_loss(fake_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """G_loss = CE(D(G(z)), label of the real digit z was encoded from)."""
    return F.cross_entropy(fake_logits, labels)


# The accuracies are 0-d tensors, left on the device: a training step reads all its values in one copy
# (schedules._read), not one wait per value.

def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == targets).float().mean()


def fake_accuracy(fake_logits: torch.Tensor) -> torch.Tensor:
    """Fraction of generated images the classifier puts in class 10."""
    return (fake_logits.argmax(dim=1) == FAKE_CLASS).float().mean()


# ---- part one: binary discriminator (one logit, positive = real)

def bce_real(logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def bce_fake(logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def binary_accuracy(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Fraction judged real (real=True) or judged fake (real=False)."""
    judged_real = logits.reshape(-1) > 0
    return (judged_real if real else ~judged_real).float().mean()
