"""`cppn-video project`: pictures -> a keyframes file (`--keyframes-file` reads it) with a sidecar that says
where each latent came from (the image's SHA-256, how it was read, how well the render matches)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.atomic import check_replaceable, temp_sibling
from pipeline.checkpoint import load_checkpoint
from pipeline.errors import UserError
from pipeline.project.fit import FEATURE_WEIGHT, PRIOR_WEIGHT, CLASS_WEIGHT, LR, STARTS, STEPS, project_images
from pipeline.project.images import read_digit_image
from pipeline.provenance import check_not_input, publish

MAX_IMAGES = 10_000
CONFIDENT = 0.5   # below this top probability the render is reported as not read as a digit


@dataclass(frozen=True)
class ProjectedImage:
    path: str
    sha256: str
    inverted: bool
    blank: bool
    pixel_rmse: float
    read: int | None        # the judge's class for the render (None without a judge)
    confidence: float | None
    warning: str            # "" when the image was blank-free and the render is read confidently


def project_files(ckpt, images: list[str], out=None, judge: Callable | None = None, progress=None) -> dict:
    """Read every image (all checked before any work), project them into `ckpt` in one batch, write the
    latents [N, z_dim] float32 to `out` (.npy, atomically, with `<out>.json`) when given. judge: a callable
    float [N, 26, 26] -> class probabilities [N, 10] that reports what each render reads as (the CLI passes
    the evaluation classifier: never the network the projection fits). Returns the sidecar dict, with
    "latents" as an array."""
    if not images:
        raise UserError("give at least one image to project")
    if len(images) > MAX_IMAGES:
        raise UserError(f"{len(images):,} images is over {MAX_IMAGES:,}; project them in smaller groups")
    ck = load_checkpoint(ckpt)
    if out is not None:
        out = Path(out)
        if out.suffix != ".npy":
            raise UserError(f"output {out} must end in .npy (a keyframes file for --keyframes-file)")
        check_not_input(out, [ck.path, *images])
        check_replaceable(out)
    read = [read_digit_image(p) for p in images]
    targets = np.stack([r.image for r in read])
    steps = STEPS
    pr = project_images(ck, targets, steps=steps, progress=(lambda s: progress(s, total=steps)) if progress else None)
    probs = np.asarray(judge(pr.renders)) if judge is not None else None
    rows = []
    for i, r in enumerate(read):
        cls = conf = None
        warning = ""
        if probs is not None:
            cls, conf = int(probs[i].argmax()), float(probs[i].max())
        if r.blank:
            warning = "the image is blank (nothing stands out from its background)"
        elif conf is not None and conf < CONFIDENT:
            warning = f"the render is not read as a digit (best guess {cls} at {conf:.0%})"
        rows.append(ProjectedImage(path=r.path, sha256=r.sha256, inverted=r.inverted, blank=r.blank,
                                   pixel_rmse=float(pr.pixel_rmse[i]), read=cls, confidence=conf, warning=warning))
    info = {"kind": "projection", "checkpoint": {"path": str(ck.path), "sha256": ck.sha256, "name": ck.name},
            "method": {"steps": steps, "starts": STARTS, "lr": LR, "feature_weight": FEATURE_WEIGHT,
                       "class_weight": CLASS_WEIGHT, "prior_weight": PRIOR_WEIGHT},
            "images": [r.__dict__ for r in rows], "latents": pr.latents}
    if out is not None:
        buf = io.BytesIO()
        np.save(buf, pr.latents, allow_pickle=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_sibling(out)
        tmp.write_bytes(buf.getvalue())
        publish(tmp, out, info)
    return info
