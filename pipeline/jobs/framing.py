"""The automatic framing: a scale that keeps every keyframe's digit off the frame's edge.

At the training scale 8 a digit fills the frame as it filled its 26x26 crop, and some stored digits reach past
it (e24's article-style keyframes: a 3 and a 7 touch the frame's outer 2%). When no --scale is given
(settings.scale None), each keyframe is rendered once on a small proxy that sees twice the training square, the
ink's extent is measured (pixels of at least INK, plus one proxy pixel), and the scale is the smallest that keeps
all of it inside the frame's inner 96% on both axes (the outer MARGIN of each side clear): never below the
training scale, at most the proxy's reach. A keyframe whose ink reaches the proxy's edge (a streak the model
draws off towards infinity, as e6 does on some digits) runs off the frame at every scale this could choose, so
it is left out rather than shrinking every other digit to the smallest size. The chosen scale is what the sidecar records, so a replay renders
exactly it; an explicit --scale is kept as given, and a camera (--zoom, --pan, --rotate) frames the training
scale, its plane units being the ones the user gave.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

TRAINING_SCALE = 8.0
MARGIN = 0.02        # the band of each side of the frame the ink keeps out of
INK = 0.25           # intensity (0..1) counted as ink: a faint stroke shows at a quarter of white
PROXY_SIDE = 128     # the proxy render's side
PROXY_SCALE = 16.0   # the plane the proxy sees, [-16, 16]: at most this scale is ever chosen


def has_camera(settings) -> bool:
    return any(getattr(settings, name, None) is not None for name in ("zoom", "pan", "rotate"))


def probe_settings(settings):
    """The walk settings whose keyframes the automatic framing measures: at the training scale, without
    pacing (only the keyframes matter, not the frames between them)."""
    return replace(settings, pace="none", scale=TRAINING_SCALE)


def ink_extents(generators, keys: np.ndarray) -> np.ndarray:
    """The ink's largest |x| and |y| in plane units of each keyframe, over the generators: float64 [K, 2]
    (0 for a keyframe with no ink; PROXY_SCALE when the ink reaches the proxy's edge)."""
    from pipeline.render import Renderer

    pitch = 2 * PROXY_SCALE / (PROXY_SIDE - 1)
    axis = PROXY_SCALE * (np.arange(PROXY_SIDE) - (PROXY_SIDE - 1) / 2) / ((PROXY_SIDE - 1) / 2)
    out = np.zeros((len(keys), 2))
    for g in generators:
        with Renderer(g, PROXY_SIDE, PROXY_SIDE, scale=PROXY_SCALE, path="auto", device="cpu") as r, torch.no_grad():
            ink = r.render_float(np.asarray(keys, dtype=np.float32)).numpy() >= INK  # [K, side, side]
        for i, k in enumerate(ink):
            cols, rows = np.nonzero(k.any(0))[0], np.nonzero(k.any(1))[0]
            if cols.size:
                ex = min(PROXY_SCALE, np.abs(axis[cols]).max() + pitch)
                ey = min(PROXY_SCALE, np.abs(axis[rows]).max() + pitch)
                out[i] = np.maximum(out[i], (ex, ey))
    return out


def scale_for(extents: np.ndarray, canvas: tuple[int, int]) -> float:
    """The smallest scale (rounded up to 0.1, at least TRAINING_SCALE, at most PROXY_SCALE) whose frame of
    `canvas` (width, height) holds ink of these extents [K, 2] inside its inner 1 - 2 * MARGIN; extents of
    PROXY_SCALE (ink to the proxy's edge) are left out."""
    width, height = canvas
    shorter = min(width, height)
    # the shorter side's pixel centres span [-scale, scale]; the longer side reaches (its pixels - 1) / (shorter's - 1)
    # times as far
    reach_x = (width - 1) / max(1, shorter - 1)
    reach_y = (height - 1) / max(1, shorter - 1)
    need = 0.0
    extents = np.asarray(extents, dtype=np.float64).reshape(-1, 2)
    extents = extents[(extents < PROXY_SCALE).all(1)]  # ink to the proxy's edge runs off any frame: left out
    if len(extents):
        need = max(float(extents[:, 0].max()) / reach_x, float(extents[:, 1].max()) / reach_y) / (1 - 2 * MARGIN)
    return float(min(PROXY_SCALE, max(TRAINING_SCALE, math.ceil(need * 10 - 1e-9) / 10)))


def auto_scale(generators, keys: np.ndarray, canvas: tuple[int, int]) -> float:
    """The scale that keeps every keyframe (latents [K, Z]) of every generator inside the frame."""
    return scale_for(ink_extents(generators, keys), canvas)


def edge_touching(generator, keys: np.ndarray, canvas: tuple[int, int], scale: float) -> list[bool]:
    """Whether each keyframe's render at this canvas and scale has ink in the frame's outer MARGIN (measured on the
    render itself, pixels of at least INK): what the automatic scale avoids."""
    from pipeline.render import Renderer

    width, height = canvas
    bx, by = max(1, math.ceil(MARGIN * width)), max(1, math.ceil(MARGIN * height))
    with Renderer(generator, height, width, scale=scale, path="auto", device="cpu") as r, torch.no_grad():
        ink = r.render_float(np.asarray(keys, dtype=np.float32)).numpy() >= INK  # [K, H, W]
    return [bool(k[:by].any() or k[-by:].any() or k[:, :bx].any() or k[:, -bx:].any()) for k in ink]
