"""Synthetic, learnable digit-like IDX datasets for tests that must run without real MNIST."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.data import SPLIT_FILES, write_idx_images, write_idx_labels


def class_templates() -> np.ndarray:
    """Ten clearly different 28x28 stroke patterns, one per class: float32 [10, 28, 28] in {0, 1}."""
    y, x = np.mgrid[0:28, 0:28].astype(np.float32) - 13.5
    r = np.hypot(x, y)
    box = (np.abs(x) < 9) & (np.abs(y) < 9)
    t = np.zeros((10, 28, 28), dtype=bool)
    t[0] = np.abs(r - 7) < 1.8                                        # ring
    t[1] = (np.abs(x) < 2) & box                                      # vertical bar
    t[2] = (np.abs(y) < 2) & box                                      # horizontal bar
    t[3] = (np.abs(x - y) < 2.2) & (r < 10)                           # diagonal \
    t[4] = (np.abs(x + y) < 2.2) & (r < 10)                           # diagonal /
    t[5] = ((np.abs(x) < 2) | (np.abs(y) < 2)) & box                  # plus
    t[6] = r < 5                                                      # filled disc
    t[7] = box & ((np.abs(np.abs(x) - 8) < 1.5) | (np.abs(np.abs(y) - 8) < 1.5))  # square outline
    t[8] = (np.abs(np.abs(y) - 5) < 1.5) & (np.abs(x) < 8)            # two horizontal bars
    t[9] = (np.abs(np.abs(x) - 5) < 1.5) & (np.abs(y) < 8)            # two vertical bars
    return t.astype(np.float32)


def synthetic_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images (uint8 [n, 28, 28]) and labels (uint8 [n], classes balanced) from class_templates.

    Each image is its class pattern shifted by up to 2 pixels, at a random brightness,
    with Gaussian noise: varied enough to need learning, easy enough to learn in a few steps.
    """
    rng = np.random.default_rng(seed)
    templates = class_templates()
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    images = np.empty((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        dy, dx = rng.integers(-2, 3, size=2)
        img = np.roll(templates[label], (dy, dx), axis=(0, 1)) * rng.uniform(170, 255)
        img += rng.normal(0, 20, size=img.shape)
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels


def write_idx_dataset(dir: str | os.PathLike, n_train: int, n_test: int, seed: int = 0,
                      gz: bool = True) -> Path:
    """Write synthetic MNIST-format files under the four standard names; returns the directory.

    A split with 0 images is not written at all (so n_train=0 gives a test-only folder like
    ../shared/data/mnist). gz=False writes the uncompressed names (without .gz).
    """
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = synthetic_digits(n_train + n_test, seed)
    parts = {"train": slice(0, n_train), "test": slice(n_train, n_train + n_test)}
    for split, sl in parts.items():
        if sl.stop == sl.start:
            continue
        images_name, labels_name = SPLIT_FILES[split]
        if not gz:
            images_name, labels_name = images_name[:-3], labels_name[:-3]
        write_idx_images(out / images_name, images[sl])
        write_idx_labels(out / labels_name, labels[sl])
    return out
