"""Collapse detection: signs that a run has saturated and will not recover (ARTICLE: the tiny-data run
that went all black at epoch 4-5 and stayed there).

Two signs, checked per batch from the batch's metrics:
* blank fakes: nearly every generated image is all dark or all light (fake_blank >= BLANK_FRACTION)
  for BLANK_BATCHES batches in a row;
* a dead encoder: the KL term stays below KL_FLOOR for a whole epoch's worth of batches in a row,
  i.e. z no longer carries information about the digit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

BLANK_FRACTION = 0.9   # share of generated images with no stroke (or no background) that counts as blank
BLANK_BATCHES = 3      # consecutive blank batches before warning
KL_FLOOR = 1e-4        # KL per pixel (as the loss uses it) below which the encoder carries ~nothing
STROKE_LOW, STROKE_HIGH = 0.1, 0.9


def fake_tensors(fakes: torch.Tensor) -> dict[str, torch.Tensor]:
    """[B, S, S] generated images in [0, 1] -> mean intensity and the share of blank images, as 0-d tensors
    on the images' device (a training step reads them with its other values)."""
    with torch.no_grad():
        flat = fakes.detach().reshape(fakes.shape[0], -1)
        blank = (flat.amax(dim=1) < STROKE_LOW) | (flat.amin(dim=1) > STROKE_HIGH)
        return {"fake_mean": flat.mean(), "fake_blank": blank.float().mean()}


def fake_stats(fakes: torch.Tensor) -> dict[str, float]:
    """fake_tensors as floats."""
    return {k: v.item() for k, v in fake_tensors(fakes).items()}


@dataclass
class CollapseMonitor:
    """Feed it each batch's metrics row; `check` returns a warning text once a sign holds, else ""."""
    batches_per_epoch: int
    blank_run: int = 0
    low_kl_run: int = 0
    warned: set = field(default_factory=set)

    def check(self, row: dict) -> str:
        self.blank_run = self.blank_run + 1 if row.get("fake_blank", 0.0) >= BLANK_FRACTION else 0
        kl = row.get("kl")
        self.low_kl_run = self.low_kl_run + 1 if kl is not None and kl < KL_FLOOR else 0
        if self.blank_run >= BLANK_BATCHES:
            return (f"collapse: {row['fake_blank']:.0%} of generated images blank for {self.blank_run} "
                    f"batches in a row (mean intensity {row.get('fake_mean', 0):.3f})")
        if self.low_kl_run >= max(self.batches_per_epoch, 1):
            return f"collapse: encoder KL below {KL_FLOOR:g} for {self.low_kl_run} batches (a whole epoch)"
        return ""
