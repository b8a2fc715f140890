"""Why random latents land between digits: how the share of recognisable random digits (the `eval`
column) changes with the latents' scale, and how far from the origin the encoder puts real digits.

    python scripts/latent_coverage.py [CKPT...]      (default: the bundled e6 and e24)

For each checkpoint it prints the norms of the stored single-digit encodings and of the class means
(a latent z ~ N(0, I) in 32 dimensions has norm ~5.6), and, for z = s * N(0, I) with s from 0.25 to 1.5
(1,000 latents, seed 0, 26x26, the same digit CNN and 0.9 threshold as `cppn-video eval`), the share
the CNN recognises and how many classes appear among them; and the same for 1,000 latents drawn from a
Gaussian fitted to the stored encodings (their mean and covariance: where the encoder puts real digits).
Prints JSON lines.
"""
from __future__ import annotations

import json
import sys

import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.digit_classifier import classify
from pipeline.evaluate.metrics import CONFIDENCE, EVAL_SCALE, EVAL_SIZE, load_digit_cnn, random_latents
from pipeline.render import Renderer

SCALES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def _recognised(renderer, cnn, z: torch.Tensor) -> tuple[float, int]:
    """Share of the latents the CNN reads with confidence >= CONFIDENCE, and the classes among those."""
    images = torch.cat([renderer.render_float(z[i:i + 500]) for i in range(0, z.shape[0], 500)])
    conf, pred = classify(cnn.model, images).max(1)
    sure = conf >= CONFIDENCE
    return round(float(sure.float().mean()), 3), int(torch.unique(pred[sure]).numel())


def main(names: list[str]) -> None:
    cnn = load_digit_cnn()
    for name in names or ["e6", "e24"]:
        ck = load_checkpoint(name)
        row = {"checkpoint": name, "sha256": ck.sha256[:8]}
        if ck.digit_latents is not None:
            norms = ck.digit_latents.norm(dim=1)
            row["bank_norm_median"] = round(float(norms.median()), 2)
            row["bank_per_dim_std"] = round(float(ck.digit_latents.std(dim=0).mean()), 3)
        row["class_mean_norms"] = [round(float(v), 2) for v in ck.class_latents.norm(dim=1)]
        z = random_latents(1000, ck.z_dim, 0)
        with Renderer(ck.generator, EVAL_SIZE, EVAL_SIZE, scale=EVAL_SCALE, device="cpu") as r:
            for s in SCALES:
                row[f"recognisable@{s}"], row[f"classes@{s}"] = _recognised(r, cnn, s * z)
            if ck.digit_latents is not None:
                bank = ck.digit_latents.double()
                cov = torch.cov(bank.t()) + 1e-6 * torch.eye(bank.shape[1], dtype=torch.float64)
                fitted = torch.distributions.MultivariateNormal(bank.mean(0), covariance_matrix=cov)
                torch.manual_seed(0)
                row["recognisable@fitted"], row["classes@fitted"] = _recognised(r, cnn, fitted.sample((1000,)).float())
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
