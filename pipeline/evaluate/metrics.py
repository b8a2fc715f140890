"""Measurements of the article's claims for one checkpoint, and the bundled digit classifier they use.

The article claims (i) the generators make recognisable digits of every class, (ii) longer training
makes better 26x26 digits and (iii) less detailed/"interesting" large images. `evaluate_checkpoint`
turns these into numbers:

- class digits: each of the 10 class latents rendered at 26x26 (scale 8.0, the training grid) and
  classified by the project's own CNN (pipeline/evaluate/digit_cnn.pt); how many come out as their
  class. The same for the stored single-digit encodings ("bank digits") when the checkpoint has them.
- random digits: `samples` latents z ~ N(0, I) (seeded) at 26x26: the fraction the CNN classifies with
  confidence >= 0.9, how many classes appear among those, and the class histogram.
- near class: `NEIGHBOURS` latents around each class latent, c + 0.3 N(0, I) (seeded), at 26x26: the fraction the
  CNN reads as that class (its best guess), over all classes and per class -- whether a generator makes each
  digit around where it keeps it, not only at the one latent.
- detail: at 4 of those random latents and the 10 class latents, `size` x `size` renders; the fraction of
  the spectral power of the mean-removed image above 1/8 of Nyquist in radial frequency.

Renders are the generator's output as the training images were: white strokes (1.0) on black (0.0), the
orientation of MNIST that the CNN was trained on.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline.digit_classifier import LoadedCNN, classify
from pipeline.digit_classifier import load_digit_cnn as load_classifier_file
from pipeline.errors import UserError

ASSET_PATH = Path(__file__).resolve().parent / "digit_cnn.pt"

EVAL_SIZE = 26            # the training resolution
EVAL_SCALE = 8.0          # the training coordinate scale
CONFIDENCE = 0.9          # a random digit is "recognisable" when the CNN's top probability reaches this
DETAIL_CUTOFF = 1.0 / 8   # detail: power above this fraction of Nyquist (radial)
DETAIL_RANDOM = 4         # random latents rendered large for detail (the first of the random sample)
NEAR_RADIUS = 0.3         # near class: class latent + NEAR_RADIUS * N(0, I)
NEIGHBOURS = 100          # ... this many per class


# ----------------------------------------------------------------------------- the classifier asset

def load_digit_cnn(path: str | os.PathLike | None = None) -> LoadedCNN:
    """The judge (default: the bundled asset), loaded and checked; every problem is one UserError line."""
    return load_classifier_file(ASSET_PATH if path is None else path)


# ----------------------------------------------------------------------------- detail

def detail_fraction(image, cutoff: float = DETAIL_CUTOFF) -> float:
    """Fraction of the 2D spectral power of the mean-removed image above `cutoff` x Nyquist (radial).

    image: a 2D array (any real values). Frequencies are in cycles per pixel (Nyquist 0.5); the corners
    beyond Nyquist radially count as above. A flat image has no power and scores 0.
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"image must be a non-empty 2D array, got shape {a.shape}")
    a = a - a.mean()
    if float(np.mean(a * a)) < 1e-12:
        return 0.0
    power = np.abs(np.fft.fft2(a)) ** 2
    fy = np.fft.fftfreq(a.shape[0])[:, None]
    fx = np.fft.fftfreq(a.shape[1])[None, :]
    radius = np.sqrt(fx * fx + fy * fy) / 0.5  # in units of Nyquist
    total = float(power.sum())
    return float(power[radius > cutoff].sum() / total) if total > 0 else 0.0


# ----------------------------------------------------------------------------- one checkpoint

@dataclass
class EvalRow:
    """Every measurement for one checkpoint (see the module docstring)."""
    name: str
    path: str
    sha256: str
    family: str
    epoch: int | None
    class_digits: int                # of 10 class latents, classified as their class
    class_predictions: list          # the CNN's class for each class latent (index = intended class)
    bank_digits: float | None        # fraction of stored single-digit encodings classified as their label
    bank_confident: float | None     # ... as their label with confidence >= `confidence` (clearly that digit)
    bank_size: int                   # how many encodings the checkpoint stores (0: none)
    random_samples: int
    random_recognisable: float       # fraction of random latents classified with confidence >= `confidence`
    random_classes_present: int      # distinct classes among the recognisable ones, 0..10
    random_histogram: list           # [10] counts of the recognisable ones per class
    random_mean_intensity: float     # mean pixel of the random 26x26 renders (white strokes on black: low)
    near_class: float                # fraction of class latent + NEAR_RADIUS * N(0, I) read as that class
    near_class_per_class: list       # [10] the same per class
    near_radius: float
    detail: float                    # mean detail fraction over all detail frames
    detail_random: float             # ... over the random latents
    detail_class: float              # ... over the class latents
    detail_size: int                 # side of the detail renders
    seed: int
    confidence: float
    cnn_sha256: str
    cnn_test_accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)


def random_latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """n latents z ~ N(0, I), float32 [n, z_dim], a function of the seed only."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, z_dim, generator=g, dtype=torch.float32)


def evaluate_checkpoint(ck, cnn: LoadedCNN | None = None, size: int = 1080, samples: int = 1000, seed: int = 0,
                        device: str = "auto",
                        progress: Callable[..., None] | None = None) -> EvalRow:
    """Measure one loaded Checkpoint (pipeline.checkpoint.load_checkpoint). progress(n) counts detail frames."""
    from pipeline.render import Renderer, check_frame_size

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UserError(f"samples must be a positive whole number, got {samples!r}")
    check_frame_size(size, size)
    cnn = cnn or load_digit_cnn()
    advance = progress or (lambda n=1, **kw: None)
    gen = ck.generator
    n_classes = ck.class_latents.shape[0]

    # 26x26 digits, as the generator was trained to draw them
    with Renderer(gen, EVAL_SIZE, EVAL_SIZE, scale=EVAL_SCALE, device=device) as small:
        class_probs = classify(cnn.model, small.render_float(ck.class_latents))
        class_pred = class_probs.argmax(1)
        class_digits = int((class_pred == torch.arange(n_classes)).sum())

        bank_digits, bank_confident, bank_size = None, None, 0
        if ck.digit_latents is not None and ck.digit_latents.shape[0] > 0:
            bank_size = int(ck.digit_latents.shape[0])
            bank_conf, bank_pred = classify(cnn.model, small.render_float(ck.digit_latents)).max(1)
            bank_right = bank_pred == ck.digit_labels
            bank_digits = int(bank_right.sum()) / bank_size
            bank_confident = int((bank_right & (bank_conf >= CONFIDENCE)).sum()) / bank_size

        z = random_latents(samples, ck.z_dim, seed)
        images = torch.cat([small.render_float(z[i:i + 500]) for i in range(0, samples, 500)])
        probs = classify(cnn.model, images)
        conf, pred = probs.max(1)
        sure = conf >= CONFIDENCE
        hist = torch.bincount(pred[sure], minlength=cnn.config.n_classes)
        mean_intensity = float(images.mean())
        near, near_per_class = near_class(small, cnn, ck.class_latents, seed)

    # detail at the output resolution, one frame at a time (a 3240 frame is 42 MB as float32)
    detail_z = torch.cat([z[:DETAIL_RANDOM], ck.class_latents])
    scores = []
    advance(0)
    with Renderer(gen, size, size, scale=EVAL_SCALE, device=device) as big:
        for i in range(detail_z.shape[0]):
            frame = big.render_float(detail_z[i:i + 1])[0].numpy()
            scores.append(detail_fraction(frame))
            advance(1)
    n_rand = min(DETAIL_RANDOM, samples)

    return EvalRow(
        name=ck.name, path=str(ck.path), sha256=ck.sha256, family=ck.family, epoch=ck.epoch,
        class_digits=class_digits, class_predictions=[int(c) for c in class_pred],
        bank_digits=bank_digits, bank_confident=bank_confident, bank_size=bank_size,
        random_samples=samples, random_recognisable=int(sure.sum()) / samples,
        random_classes_present=int((hist > 0).sum()), random_histogram=[int(c) for c in hist],
        random_mean_intensity=mean_intensity, near_class=near, near_class_per_class=near_per_class,
        near_radius=NEAR_RADIUS,
        detail=float(np.mean(scores)), detail_random=float(np.mean(scores[:n_rand])),
        detail_class=float(np.mean(scores[n_rand:])), detail_size=size,
        seed=int(seed), confidence=CONFIDENCE, cnn_sha256=cnn.sha256, cnn_test_accuracy=cnn.test_accuracy,
    )


def near_class(renderer, cnn: LoadedCNN, class_latents: torch.Tensor, seed: int, radius: float = NEAR_RADIUS,
               per_class: int = NEIGHBOURS) -> tuple[float, list[float]]:
    """(share of all, share per class) of `per_class` latents c + radius * N(0, I) around each class latent c
    [C, Z] that the CNN reads as c, rendered by `renderer` (26x26 at the training scale)."""
    g = torch.Generator().manual_seed(int(seed) + 0x6E)  # its own stream, not the random latents'
    n_classes, z_dim = class_latents.shape
    z = class_latents.float().repeat_interleave(per_class, 0) + radius * torch.randn(n_classes * per_class, z_dim,
                                                                                    generator=g)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    right = torch.cat([classify(cnn.model, renderer.render_float(z[i:i + 500])).argmax(1) == labels[i:i + 500]
                       for i in range(0, z.shape[0], 500)])
    per = right.reshape(n_classes, per_class).float().mean(1)
    return float(right.float().mean()), [round(float(v), 4) for v in per]


def detail_frames(samples: int) -> int:
    """How many large frames evaluate_checkpoint renders (for a progress bar)."""
    return min(DETAIL_RANDOM, samples) + 10
