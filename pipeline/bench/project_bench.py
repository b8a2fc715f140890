"""How long projecting your own digits takes (`cppn-video project`, walk --images): one image, and many in one
batch, from PNG files on disk to latents (reading, normalising, the fit), on this machine's default threads."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.bench.machine import machine_info


def _digit_pngs(folder: Path, n: int) -> list[str]:
    """n pictures of digits 0-9 in Pillow's own font (the same on every machine), dark on light as a scan is."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=140)
    paths = []
    for i in range(n):
        im = Image.new("L", (300, 200), 240)
        ImageDraw.Draw(im).text((100 + 3 * (i % 7), 20 + 2 * (i % 5)), str(i % 10), fill=20, font=font)
        p = folder / f"digit{i:04d}.png"
        im.save(p)
        paths.append(str(p))
    return paths


def run_project_bench(ckpt: str = "e24", batch: int = 100, repeats: int = 3, steps: int | None = None,
                      starts: int | None = None, progress=None) -> dict:
    """Seconds to project one image (median of `repeats`, after one untimed warm-up that loads the networks)
    and `batch` images in one batch, each from its PNG file to its latent."""
    from pipeline.checkpoint import load_checkpoint
    from pipeline.project.fit import STARTS, STEPS, load_feature_cnn, project_images
    from pipeline.project.images import read_digit_image

    steps = STEPS if steps is None else steps
    starts = STARTS if starts is None else starts
    t0 = time.perf_counter()
    ck = load_checkpoint(ckpt)
    features = load_feature_cnn()
    load_s = time.perf_counter() - t0

    def project(paths):
        t = time.perf_counter()
        images = np.stack([read_digit_image(p).image for p in paths])
        project_images(ck, images, features=features, steps=steps, starts=starts)
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory(prefix="cppn-video-bench-") as tmp:
        paths = _digit_pngs(Path(tmp), max(batch, 1))
        if progress:
            progress("one image")
        first = project(paths[:1])  # the first call pays the kernels' warm-up
        one = sorted(project(paths[i % len(paths):i % len(paths) + 1]) for i in range(1, repeats + 1))
        if progress:
            progress(f"{batch} images in one batch")
        many = project(paths[:batch])
    return {"machine": machine_info(torch.device("cpu")), "ckpt": ckpt, "steps": steps, "starts": starts,
            "load_seconds": round(load_s, 3), "first_image_seconds": round(first, 3),
            "one_image_seconds": round(one[len(one) // 2], 3), "batch": batch, "batch_seconds": round(many, 3),
            "seconds_per_image_batched": round(many / max(batch, 1), 4)}
