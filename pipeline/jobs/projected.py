"""Keyframes from pictures of digits (`walk --images a.png,b.png`, `still --image`, compare per panel): each
image read as MNIST's were made (pipeline.project.images) and projected into the checkpoint being rendered
(pipeline.project.fit). The one place every render kind reaches for it (jobs.render's checkpoint_path and
still_latent), so walk, still, compare, presets, batch and the farm all project the same way.

A render's sidecar records each image's path and SHA-256 and the projected latents (`keyframes`, per panel for
a comparison, `latent` for a still); replay hands those back through `recorded`, so it never projects again and
never needs the images.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

_CACHE: dict = {}       # (checkpoint sha256, ((path, image sha256), ...), steps) -> latents: a walk's framing and
_CACHE_SIZE = 8         # its path both ask, and a render projects once
_RECORDED: dict = {}    # checkpoint sha256 -> (latents, image records): a replay's recorded projection


def image_paths(spec) -> list[str]:
    """`a.png,b.png` (or a list of paths) -> the paths, in order; empty names are refused."""
    if spec is None:
        return []
    paths = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else [str(p) for p in spec]
    if not paths or any(not p for p in paths):
        raise UserError(f"--images {spec!r} has an empty name; give image paths separated by commas, "
                        f"e.g. --images a.png,b.png", key="images")
    return paths


def read_images(spec) -> list:
    """Every image read and checked (one UserError line for the first bad one), before anything is projected."""
    from pipeline.project.images import read_digit_image

    return [read_digit_image(p) for p in image_paths(spec)]


def check_images(s) -> None:
    """A render's pictures (`images`, a still's `image`) all read and checked: one UserError line for the first
    bad one. Not in a replay (`recorded`), which needs none of them."""
    spec = getattr(s, "images", None) or getattr(s, "image", None)
    if spec is not None and not _RECORDED:
        read_images(spec)


@contextmanager
def recorded(entries: dict):
    """Within this block, projecting into a checkpoint whose SHA-256 is a key of `entries` returns the recorded
    (latents [K, Z], image records [{path, sha256}]) instead: replay renders what the original rendered."""
    saved = dict(_RECORDED)
    _RECORDED.update(entries)
    try:
        yield
    finally:
        _RECORDED.clear()
        _RECORDED.update(saved)


def project_keyframes(spec, ck, steps: int | None = None, progress=None) -> tuple[np.ndarray, list[dict]]:
    """(latents [K, z_dim] float32, [{path, sha256}] per image) of the images in `spec` projected into `ck`.

    steps: Adam steps of the fit (None: pipeline.project.fit.STEPS, what the quality numbers were measured
    with). progress(step, total) as `cppn-video project` reports it."""
    if ck.sha256 in _RECORDED:
        latents, records = _RECORDED[ck.sha256]
        return np.asarray(latents, dtype=np.float32), records
    read = read_images(spec)
    records = [{"path": r.path, "sha256": r.sha256} for r in read]
    from pipeline.project.fit import STEPS, project_images

    steps = STEPS if steps is None else int(steps)
    key = (ck.sha256, tuple((r.path, r.sha256) for r in read), steps)
    if key not in _CACHE:
        total = steps
        pr = project_images(ck, np.stack([r.image for r in read]), steps=steps,
                            progress=(lambda s: progress(s, total)) if progress else None)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = pr.latents
    return _CACHE[key].copy(), records


def projection_record(s, ck) -> dict:
    """The sidecar entries of a render whose keyframes are projected images (empty otherwise): the images (path,
    SHA-256) and how they were fitted. The latents themselves are the sidecar's keyframes."""
    spec = getattr(s, "images", None) or getattr(s, "image", None)
    if spec is None:
        return {}
    from pipeline.project.fit import LR, STARTS, STEPS

    if ck.sha256 in _RECORDED:
        records = _RECORDED[ck.sha256][1]
    else:
        records = [{"path": r.path, "sha256": r.sha256} for r in read_images(spec)]
    steps = getattr(s, "projection_steps", None)
    return {"images": records,
            "projection": {"steps": STEPS if steps is None else steps, "starts": STARTS, "lr": LR}}


def recorded_images(info: dict, where) -> list[dict]:
    """The image records of a sidecar (for replay), checked."""
    images = info.get("images")
    if (not isinstance(images, list) or not images
            or not all(isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("sha256"), str)
                       for e in images)):
        raise UserError(f"{where}: images: expected a list of tables (path, sha256); the sidecar was edited or "
                        f"damaged: render again instead of replaying", key="images")
    return images


def image_inputs(s) -> list[Path]:
    """The image files a render reads (outputs must never replace them)."""
    spec = getattr(s, "images", None) or getattr(s, "image", None)
    try:
        return [Path(p) for p in image_paths(spec)]
    except UserError:
        return []
