"""Even pacing: re-time each transition so the image changes by the same amount every frame.

A generator's response along a straight (or great-circle) path is uneven: e24 through real digits holds a
shape for most of a transition and then snaps to the next. Pacing measures how much the picture changes along
each transition on a cheap proxy render (PROXY_SIDE pixels on the canvas's shorter side, SAMPLES + 1 points per
transition), takes the cumulative mean absolute change as the transition's arc length, and maps the frames'
progress through that arc length back to path progress. Keyframes stay on their frames (progress 0 and 1 map to
themselves); easing is applied first, so with linear easing every step changes the picture equally.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

PROXY_SIDE = 48
SAMPLES = 240   # at most, per transition (8 per frame of the transition below that)
PACES = ("none", "uniform")


def transition_maps(segment_latents: Callable[[int, np.ndarray], np.ndarray], n_segments: int,
                    render: Callable[[np.ndarray], np.ndarray], samples: int = SAMPLES) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per transition s: (arc [samples+1] from 0 to 1, u [samples+1]) with arc(u) the share of the transition's
    change reached at path progress u. segment_latents(s, u) -> latents [T, Z]; render(latents) -> float frames
    [T, h, w] (several checkpoints: their changes are summed, so panels keep one shared timing)."""
    u = np.linspace(0.0, 1.0, samples + 1)
    maps = []
    for s in range(n_segments):
        frames = np.asarray(render(segment_latents(s, u)), dtype=np.float64)
        step = np.abs(np.diff(frames.reshape(frames.shape[0], -1), axis=0)).mean(axis=1)  # [samples]
        arc = np.concatenate([[0.0], np.cumsum(step)])
        if not arc[-1] > 0:  # nothing changes (identical keyframes): keep the timing as it is
            arc = u.copy()
        else:
            arc = arc / arc[-1]
        arc[-1] = 1.0
        maps.append((arc, u))
    return maps


def repace(j: np.ndarray, u: np.ndarray, maps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Path progress for eased progress u [N] of frames in segments j [N]: where the picture has changed by u
    of the transition's total. Exact at 0 and 1."""
    out = u.astype(np.float64).copy()
    for s, (arc, grid) in enumerate(maps):
        rows = j == s
        if rows.any():
            v = np.interp(u[rows], arc, grid)
            out[rows] = np.where(u[rows] == 0.0, 0.0, np.where(u[rows] == 1.0, 1.0, v))
    return out


def speed_warp(j: np.ndarray, u: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Progress u [N] of frames in segments j [N] re-timed so each step moves in proportion to speed [N] (the
    soundtrack's loudness: pipeline.audio.music.speed_weights) while every keyframe stays on its frame: within a
    transition the moving frames (0 < u < 1) advance by their own speed, normalised so the transition still ends
    at 1. Applied before easing and pacing (walk_path), so a loud passage moves further per frame."""
    out = np.asarray(u, dtype=np.float64).copy()
    speed = np.asarray(speed, dtype=np.float64)
    for s in np.unique(j):
        rows = np.nonzero((j == s) & (out > 0.0) & (out < 1.0))[0]
        if rows.size == 0:
            continue
        arrival = min(rows[-1] + 1, len(speed) - 1)
        steps = np.concatenate([speed[rows], [speed[arrival]]])
        out[rows] = np.cumsum(steps)[:-1] / steps.sum()
    return out


def step_evenness(frames: np.ndarray, transitions: list[tuple[int, int]]) -> list[float]:
    """Peak over mean of the frame-to-frame change within each transition (1.0: perfectly even), from frames
    [N, ...] and each transition's (first, last) frame: the frame that departs a keyframe and the one that
    arrives at the next."""
    d = np.abs(np.diff(frames.reshape(frames.shape[0], -1).astype(np.float64), axis=0)).mean(axis=1)
    ratios = []
    for first, last in transitions:
        steps = d[first:last]
        if steps.size >= 2 and steps.mean() > 0:
            ratios.append(float(steps.max() / steps.mean()))
    return ratios
