"""A walk's default keyframes: stored encodings of real digits, of varied classes, chosen by measurement.

Random latents render a confident digit less than half the time (`cppn-video eval`), and the frames between
two of them less still. A checkpoint's stored encodings of real test digits nearly always do, but the frames
between two digits are a morph that can pass through nothing readable. So each next keyframe is the best of a
few seeded candidates (another class than the last few): the one whose transition from the previous keyframe
shows a readable digit on the largest share of the frames a walk puts there. Those frames are simulated as
the walk places them: SAMPLES points give the picture's change along the transition (even pacing's arc
length), the walk's easing spreads FRAMES steps over it, and each step is rendered and read by the project's
digit classifier (pipeline/evaluate/digit_cnn.pt, the one `eval` reports with). A frame counts as readable
when the classifier gives its class at least CONFIDENCE on the render and on each of its four one-pixel
shifts: a stricter reading than eval's 0.9, which an independent classifier agrees with more often
(docs/REPRODUCTION.md, "First contact", measures the choice by another classifier).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.latents import DEFAULT_EASE

# The file pipeline.evaluate.metrics.ASSET_PATH names (that module is a layer above this one; tests check both
# name the same file).
CLASSIFIER_PATH = Path(__file__).resolve().parents[1] / "evaluate" / "digit_cnn.pt"
CANDIDATES = 16     # seeded candidates for each next keyframe (docs/REPRODUCTION.md: 8, 16, 32 measured)
SAMPLES = 33        # points along a candidate transition (its picture change), at the classifier's 26x26
FRAMES = 16         # simulated frame steps of a transition, spread by the walk's easing over that change
RECENT = 6          # a candidate's class differs from the last RECENT keyframes' classes (when the bank allows)
CONFIDENCE = 0.98   # on the render and its four one-pixel shifts
SIDE, SCALE = 26, 8.0  # the training grid: what the classifier was trained on

_classifier = None


def _model():
    global _classifier
    if _classifier is None:
        from pipeline.digit_classifier import load_digit_cnn

        _classifier = load_digit_cnn(CLASSIFIER_PATH).model
    return _classifier


def _shifted(images: torch.Tensor) -> list[torch.Tensor]:
    """The four one-pixel shifts (up, down, left, right; zeros move in) of images [B, H, W]."""
    out = []
    for dim, step in ((1, 1), (1, -1), (2, 1), (2, -1)):
        moved = torch.roll(images, step, dim)
        edge = [slice(None)] * 3
        edge[dim] = 0 if step > 0 else -1
        moved[tuple(edge)] = 0
        out.append(moved)
    return out


def robust_confidence(images: torch.Tensor) -> torch.Tensor:
    """The classifier's probability of each image's class [B], the least over the image and its one-pixel
    shifts: high only for a digit read the same wherever it sits by a pixel."""
    from pipeline.digit_classifier import classify

    images = torch.as_tensor(images, dtype=torch.float32)
    p = classify(_model(), torch.cat([images, *_shifted(images)])).reshape(5, len(images), -1)  # [view, B, 10]
    cls = p[0].argmax(1)
    return p[:, torch.arange(len(images)), cls].min(0).values


def _frames(renderer, bank, a: int, candidates, interp: str, ease: str, pace: str) -> torch.Tensor:
    """The simulated inner frames of the transition from bank row a to each candidate row, at 26x26:
    [C * (FRAMES - 1), SIDE, SIDE]."""
    from pipeline.latents import ease as eased, segment_latents

    def path(b, at):
        return segment_latents(np.stack([bank[a], bank[b]]).astype(np.float64), 0, at, interp, False)

    n = len(candidates)
    steps = eased(ease, np.arange(1, FRAMES) / FRAMES)  # the eased progress of a transition's inner frames
    at = [steps] * n
    if pace == "uniform":  # even pacing: the frames spread by the picture's change (scene.pacing)
        u = np.linspace(0.0, 1.0, SAMPLES)
        images = renderer.render_float(np.concatenate([path(b, u) for b in candidates]).astype(np.float32))
        images = images.reshape(n, SAMPLES, *images.shape[1:])
        change = (images[:, 1:] - images[:, :-1]).abs().mean((2, 3)).numpy().astype(np.float64)  # [C, S-1]
        arcs = np.concatenate([np.zeros((n, 1)), np.cumsum(change, 1)], 1)
        at = [np.interp(steps, arc / arc[-1], u) if arc[-1] > 0 else steps for arc in arcs]
    return renderer.render_float(np.concatenate([path(b, t) for b, t in zip(candidates, at)]).astype(np.float32))


def _best_candidate(renderers, banks, a: int, candidates, interp: str, ease: str, pace: str) -> int:
    """The index of the candidate row b whose transition from bank row a has the largest share of simulated
    frames read as a digit (robust_confidence >= CONFIDENCE), averaged over the checkpoints (each its own
    renderer and bank); the first of equals. The shifts are read only where they can change the answer: a
    frame under CONFIDENCE on its own render stays unread, and a candidate whose plain share is under the best
    robust share found cannot win."""
    from pipeline.digit_classifier import classify

    n = len(candidates)
    frames = [_frames(r, bank, a, candidates, interp, ease, pace).reshape(n, FRAMES - 1, SIDE, SIDE)
              for r, bank in zip(renderers, banks)]
    plain = [(classify(_model(), f.reshape(-1, SIDE, SIDE)).max(1).values >= CONFIDENCE).numpy().reshape(n, -1)
             for f in frames]
    bound = np.mean([p.mean(1) for p in plain], 0)  # [C]: robust share <= plain share
    best, best_score = 0, -1.0
    for c in sorted(range(n), key=lambda i: (-bound[i], i)):
        if bound[c] < best_score or (bound[c] == best_score and c > best):
            break
        score = np.mean([(robust_confidence(f[c][p[c]]) >= CONFIDENCE).numpy().sum() / (FRAMES - 1)
                         if p[c].any() else 0.0 for f, p in zip(frames, plain)])
        if score > best_score or (score == best_score and c < best):
            best, best_score = c, score
    return best


def default_keyframe_rows(seed: int, k: int, labels, generators, banks, interp: str = "slerp",
                          ease: str = DEFAULT_EASE, pace: str = "uniform") -> np.ndarray:
    """K rows of the digit bank (labels [N]; banks: each checkpoint's latents [N, Z], rows alike) chosen as the
    module docstring says: int64 [K]. A function of the seed, K, the labels, the walk's interpolation, easing
    and pacing, and what the generators render."""
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
                best = _best_candidate(renderers, banks, rows[-1], [int(c) for c in candidates], interp, ease, pace)
                rows.append(int(candidates[best]))
    finally:
        for r in renderers:
            r.close()
    return np.asarray(rows, dtype=np.int64)
