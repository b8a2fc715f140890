"""A walk's default keyframes: stored encodings of real digits, of varied classes, chosen by measurement.

Random latents render a confident digit less than half the time (`cppn-video eval`), and the frames between
two of them less still. A checkpoint's stored encodings of real test digits nearly always do, but the frames
between two digits are a morph that can pass through nothing readable. So each next keyframe is the best of a
few seeded candidates (another class than the last few): the one whose transition from the previous keyframe
the project's digit classifier (pipeline/evaluate/digit_cnn.pt, the one `eval` reports with) reads as a digit
with confidence >= 0.9 over the largest share of the picture's change along it -- what a walk shows once
even pacing spreads its frames by change. docs/REPRODUCTION.md reports the result by another classifier.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# The file pipeline.evaluate.metrics.ASSET_PATH names (that module is a layer above this one; tests check both
# name the same file).
CLASSIFIER_PATH = Path(__file__).resolve().parents[1] / "evaluate" / "digit_cnn.pt"
CANDIDATES = 8      # seeded candidates for each next keyframe (more measured no better: docs/REPRODUCTION.md)
SAMPLES = 17        # points along a candidate transition, rendered at the classifier's 26x26
RECENT = 6          # a candidate's class differs from the last RECENT keyframes' classes (when the bank allows)
CONFIDENCE = 0.9
SIDE, SCALE = 26, 8.0  # the training grid: what the classifier was trained on

_classifier = None


def _model():
    global _classifier
    if _classifier is None:
        from pipeline.digit_classifier import load_digit_cnn

        _classifier = load_digit_cnn(CLASSIFIER_PATH).model
    return _classifier


def _readable_shares(renderers, banks, a: int, candidates, interp: str) -> np.ndarray:
    """For each candidate row b: the share of the picture's change along bank rows a -> b that the classifier
    reads as a confident digit, averaged over the checkpoints (each its own renderer and bank). [C]"""
    from pipeline.digit_classifier import classify
    from pipeline.latents import segment_latents

    u = np.linspace(0.0, 1.0, SAMPLES)
    total = np.zeros(len(candidates))
    for renderer, bank in zip(renderers, banks):
        lat = np.concatenate([segment_latents(np.stack([bank[a], bank[b]]).astype(np.float64), 0, u, interp, False)
                              for b in candidates]).astype(np.float32)  # [C*S, Z]
        images = renderer.render_float(lat).reshape(len(candidates), SAMPLES, SIDE, SIDE)
        sure = (classify(_model(), images.reshape(-1, SIDE, SIDE)).max(1).values >= CONFIDENCE)
        sure = sure.numpy().reshape(len(candidates), SAMPLES)
        step = (images[:, 1:] - images[:, :-1]).abs().mean((2, 3)).numpy().astype(np.float64)  # [C, S-1]
        zero = np.zeros((len(candidates), 1))
        weight = np.concatenate([zero, step], 1) + np.concatenate([step, zero], 1)  # change around each sample
        wsum = weight.sum(1)
        total += np.where(wsum > 0, (sure * weight).sum(1) / np.maximum(wsum, 1e-300), sure.mean(1))
    return total / len(banks)


def default_keyframe_rows(seed: int, k: int, labels, generators, banks, interp: str = "slerp") -> np.ndarray:
    """K rows of the digit bank (labels [N]; banks: each checkpoint's latents [N, Z], rows alike) chosen as the
    module docstring says: int64 [K]. A function of the seed, K, the labels and what the generators render."""
    from pipeline.render import Renderer

    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    banks = [np.asarray(b, dtype=np.float32) for b in banks]
    rng = np.random.default_rng([int(seed), 0xD161])  # its own stream: seed s here is not random latent s
    rows = [int(rng.integers(lab.size))]
    if k == 1:
        return np.asarray(rows, dtype=np.int64)
    renderers = [Renderer(g, SIDE, SIDE, scale=SCALE, path="auto", device="cpu") for g in generators]
    try:
        with torch.no_grad():
            while len(rows) < k:
                recent = {int(lab[r]) for r in rows[-RECENT:]}
                pool = np.nonzero(~np.isin(lab, list(recent)))[0]
                if pool.size == 0:
                    pool = np.nonzero(lab != lab[rows[-1]])[0] if np.unique(lab).size > 1 else np.arange(lab.size)
                candidates = rng.choice(pool, min(CANDIDATES, pool.size), replace=False)
                scores = _readable_shares(renderers, banks, rows[-1], [int(c) for c in candidates], interp)
                rows.append(int(candidates[int(np.argmax(scores))]))
    finally:
        for r in renderers:
            r.close()
    return np.asarray(rows, dtype=np.int64)
