"""Requests of the web app checked into library values, with the library's own validation (WalkSettings.validate,
check_frame_size, check_video_size, walk_path): every problem is a UserError naming the field and the fix."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError
from pipeline.jobs.settings import WalkSettings
from pipeline.jobs.typecheck import Mismatch, convert, show, toml_type
from pipeline.latents import DEFAULT_EASE, parse_seeds, walk_path
from pipeline.render.engine import check_frame_size
from pipeline.serve.workspace import (MAX_KEYFRAMES, MAX_SEEDS, PREVIEW_MAX, THUMB_MAX, WALK_PREVIEW_FRAMES,
                                      WALK_PREVIEW_MAX, Workspace, check_file_name)
from pipeline.scene.canvas import canvas_text, parse_canvas
from pipeline.scene.preflight import preflight
from pipeline.video import check_video_size

_MISSING = object()


def field(body: dict, key: str, kind, default=_MISSING, lo=None, hi=None):
    """body[key] as `kind` (bool, int, float or str) within [lo, hi]; missing -> default (or an error)."""
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    value = body.get(key, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise UserError(f"{key} is missing; give it", key=key)
        return default
    try:  # the check a preset's options and a sidecar's settings get (jobs.typecheck)
        value = convert(value, kind)
    except Mismatch as e:
        raise UserError(f"{key} must be {e.expected}, got {toml_type(value)} {show(value)}", key=key) from None
    if kind is float and not math.isfinite(value):
        raise UserError(f"{key} must be a finite number, got {value!r}", key=key)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise UserError(f"{key} must be between {lo} and {hi}, got {value!r}", key=key)
    return value


def latents(value, z_dim: int, key: str = "z", max_rows: int = 1) -> np.ndarray:
    """A latent [z_dim] (max_rows 1) or rows of them [K, z_dim] from JSON lists: float32 [K, z_dim], finite."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{key} must be a list of {z_dim} numbers" + (" per row" if max_rows > 1 else ""),
                        key=key) from None
    if arr.ndim == 1 and max_rows == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != z_dim or not 1 <= arr.shape[0] <= max_rows:
        want = f"[{z_dim}]" if max_rows == 1 else f"[K, {z_dim}] with 1 <= K <= {max_rows}"
        raise UserError(f"{key} must have shape {want}, got {list(arr.shape)}", key=key)
    if not np.all(np.isfinite(arr)) or np.abs(arr).max() > 1e6:
        raise UserError(f"{key} holds NaN, infinite or absurdly large values; use finite latents", key=key)
    return arr.astype(np.float32)


def size(body: dict, key: str, default: int, most: int, even: bool = False) -> int:
    n = field(body, key, int, default)
    check_frame_size(n, n)  # the library's limits first, then the web app's own
    if n > most:
        raise UserError(f"{key} {n} is more than the {most} px this view renders; use a smaller one", key=key)
    if even:
        check_video_size((n, n), "mp4")
    return n


def canvas(body: dict, key: str, default: int) -> int | str:
    """A render's frame size: 512 (square) or "960x540", through the library's preflight and MP4's even sides."""
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UserError(f"{key} must be pixels such as 512 or \"960x540\", got {value!r}", key=key)
    width, height = preflight(*parse_canvas(value, key, key), fmt="mp4", what=key, key=key)
    return width if width == height else canvas_text(width, height)


def camera(body: dict) -> dict:
    """The camera's schedules from the page (zoom, pan, rotate: WalkSettings fields, checked by its validate)."""
    out = {}
    for key in ("zoom", "pan", "rotate"):
        value = body.get(key)
        if isinstance(value, bool) or value is not None and not isinstance(value, (str, int, float)):
            raise UserError(f"{key} must be a value or schedule such as \"0s=1, 4s=16\", got {value!r}", key=key)
        out[key] = None if value is None or value == "" else str(value)
    return out


def scene(body: dict) -> dict:
    """The scene's controls a walk takes from the page: hold, pace and colour (WalkSettings fields)."""
    hold = body.get("hold")
    if hold is not None and not isinstance(hold, (str, int, float)) or isinstance(hold, bool):
        raise UserError(f"hold must be a time such as \"0.5s\", got {hold!r}", key="hold")
    if isinstance(hold, (int, float)):
        hold = f"{hold}s"  # a number from the page's seconds field
    return {"hold": hold or None, "pace": field(body, "pace", str, WalkSettings.pace),
            "palette": field(body, "palette", str, None) or None, "colors": field(body, "colors", str, None) or None}


@dataclass(frozen=True)
class Preview:
    id: int
    ckpt: str
    z: np.ndarray       # [1, Z]
    size: int
    invert: bool
    camera: object = None  # the camera's first frame (scene.camera.CameraTrack), or None


def preview(ws: Workspace, body: dict) -> Preview:
    ckpt = field(body, "ckpt", str, ws.default_id)
    ws.choice(ckpt)
    from pipeline.jobs.render import walk_camera
    from pipeline.scene.camera import check_camera

    view = WalkSettings(frames=1, **camera(body))
    check_camera(view)
    return Preview(id=field(body, "id", int, 0, 0, 2**31), ckpt=ckpt,
                   z=latents(body.get("z"), ws.checkpoint(ckpt).z_dim), size=size(body, "size", 384, PREVIEW_MAX),
                   invert=field(body, "invert", bool, False), camera=walk_camera(view))


@dataclass(frozen=True)
class WalkPreview:
    id: int
    ckpt: str
    latents: np.ndarray  # every frame's latent [frames, Z]
    size: int
    invert: bool
    fps: float
    camera: object = None  # every frame's camera (scene.camera.CameraTrack), or None


def walk_preview(ws: Workspace, body: dict) -> WalkPreview:
    ckpt = field(body, "ckpt", str, ws.default_id)
    ws.choice(ckpt)
    keys = latents(body.get("keyframes"), ws.checkpoint(ckpt).z_dim, "keyframes", MAX_KEYFRAMES)
    frames = field(body, "frames", int, 48, 1, WALK_PREVIEW_FRAMES)
    s = WalkSettings(frames=frames, ease=field(body, "ease", str, DEFAULT_EASE),
                     interp=field(body, "interp", str, "slerp"), loop=field(body, "loop", bool, False),
                     keyframes=len(keys), **scene(body), **camera(body), **soundtrack(ws, body))
    s.validate()
    from pipeline.jobs.render import pace_maps, walk_camera

    pacing = pace_maps(s, keys, s.interp, [ws.checkpoint(ckpt).generator]) if s.pace == "uniform" else None
    path = walk_path(keys, s.frames, loop=s.loop, ease=s.ease, interp=s.interp, timeline=s.timeline(len(keys)),
                     pacing=pacing)
    return WalkPreview(id=field(body, "id", int, 0, 0, 2**31), ckpt=ckpt, latents=path,
                       size=size(body, "size", 128, WALK_PREVIEW_MAX), invert=field(body, "invert", bool, False),
                       fps=field(body, "fps", float, 24.0, 1e-3, 240.0), camera=walk_camera(s))


@dataclass(frozen=True)
class RenderRequest:
    ckpt: str
    keyframes: np.ndarray   # [K, Z]
    settings: WalkSettings  # without keyframes_file (the job writes it)
    name: str | None        # output stem asked for, or None for a fresh one


def soundtrack(ws: Workspace, body: dict) -> dict:
    """The soundtrack a render takes from the page: a track uploaded to /api/audio (by the name it returned) and
    the WalkSettings fields audio_offset, sync, beats_per_keyframe and react (checked by its validate)."""
    name = field(body, "audio", str, None)
    if name is None:
        return {}
    return {"audio": str(ws.output_file(name)), "audio_offset": field(body, "audio_offset", str, None),
            "sync": field(body, "sync", str, None), "beats_per_keyframe": field(body, "beats_per_keyframe", int, 1),
            "react": field(body, "react", str, None)}


def render(ws: Workspace, body: dict) -> RenderRequest:
    """A render job's request: the same checks as `cppn-video walk` makes (WalkSettings.validate, the frame
    size, even sides for MP4, fps, the walk itself) before anything is written."""
    ckpt = field(body, "ckpt", str, ws.default_id)
    ws.choice(ckpt)
    keys = latents(body.get("keyframes"), ws.checkpoint(ckpt).z_dim, "keyframes", MAX_KEYFRAMES)
    fps = field(body, "fps", float, 30.0, 1e-3, 1000.0)
    if fps <= 0:
        raise UserError(f"fps must be positive, got {fps}", key="fps")
    has_frames, has_seconds = body.get("frames") is not None, body.get("seconds") is not None
    if has_frames and has_seconds:
        raise UserError("frames and seconds both set the video's length; give one", key="seconds")
    if has_seconds:
        frames = max(1, round(field(body, "seconds", float, None, 0.0) * fps))
    else:
        frames = field(body, "frames", int, 120)
    s = WalkSettings(frames=frames, size=canvas(body, "size", 512), fps=fps,
                     ease=field(body, "ease", str, DEFAULT_EASE), interp=field(body, "interp", str, "slerp"),
                     loop=field(body, "loop", bool, False), invert=field(body, "invert", bool, False),
                     keyframes=len(keys), **scene(body), **camera(body), **soundtrack(ws, body))
    s.validate()
    walk_path(keys, s.frames, loop=s.loop, ease=s.ease, interp=s.interp,  # e.g. 1 frame without loop: refused now
              timeline=s.timeline(len(keys)))
    name = field(body, "name", str, None)
    if name is not None:
        check_file_name(name)
        if "." in name:
            raise UserError(f"name {name!r}: give a name without a suffix (the job adds .mp4, .mp4.json, ...)",
                            key="name")
    return RenderRequest(ckpt, keys, s, name)


def seeds(body: dict) -> list[int]:
    spec = field(body, "seeds", str, "0-15")
    out = parse_seeds(spec)
    if not 1 <= len(out) <= MAX_SEEDS:
        raise UserError(f"seeds {spec!r} names {len(out)} seeds; give 1 to {MAX_SEEDS}", key="seeds")
    return out


@dataclass(frozen=True)
class Thumbs:
    ckpt: str
    seeds: list[int]
    size: int
    invert: bool


def thumbs(ws: Workspace, body: dict) -> Thumbs:
    """A grid of seed thumbnails: seeds like "0-15" (1 to MAX_SEEDS of them)."""
    ckpt = field(body, "ckpt", str, ws.default_id)
    ws.choice(ckpt)
    return Thumbs(ckpt, seeds(body), size(body, "size", 96, THUMB_MAX), field(body, "invert", bool, False))
