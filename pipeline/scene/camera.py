"""The camera: zoom, pan and rotation as schedules over the video, one more track of the scene's timeline.

A schedule is one of
- a constant: `--zoom 2`, `--pan 0.5,-1` (or `(0.5,-1)`), `--rotate 90`;
- a ramp over the whole video, first frame to last: `--zoom 1:64`, `--pan 0,0:2,1`, `--rotate 0:360`, optionally
  eased: `--zoom "1:64 smoothstep"`;
- keyframes in the scene's time syntax (frames `48`, seconds `2s`, `500ms`, clock `1:30`; pipeline.scene.timeline):
  `--zoom "0s=1, 4s=16, 6s=2"`, `--pan "0=(0,0), 2s=(1.5,-2)"`. A keyframe may name the easing of the segment
  that leaves it, as CSS keyframes do: `"0s=1 smoothstep, 4s=16, 6s=2"` (default linear). Before the first
  keyframe the camera holds its value, after the last it holds that one.

Zoom is interpolated geometrically (log zoom moves linearly: constant zoom speed); pan (plane units, the point at
the frame's centre, about which the camera zooms and turns) and rotation (degrees, the picture turns
counterclockwise) linearly. `--zoom 2` shows exactly what `--scale` halved shows. numpy only, no torch.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError
from pipeline.latents import EASINGS, ease
from pipeline.scene.timeline import to_frames

KEYS = ("zoom", "pan", "rotate")
DEFAULT_CAMERA_EASE = "linear"  # a ramp or segment moves at constant speed unless it names an easing
_FLOAT = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def _fail(key: str, spec, problem: str) -> UserError:
    example = {"zoom": '2, 1:64 or "0s=1, 4s=16, 6s=2"', "pan": '0.5,-1, 0,0:2,1 or "0s=(0,0), 4s=(1.5,-2)"',
               "rotate": '90, 0:360 or "0s=0, 4s=90"'}[key]
    return UserError(f"--{key} {spec!r}: {problem}; give a value, a ramp or keyframes such as {example}", key=key)


def _number(key: str, spec, text: str) -> float:
    text = text.strip()
    if not re.fullmatch(_FLOAT, text):
        raise _fail(key, spec, f"{text!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise _fail(key, spec, f"{text!r} is not a finite number")
    if key == "zoom" and value <= 0:
        raise _fail(key, spec, f"zoom must be above 0 (1 is the still's framing, 2 twice as close), got {text}")
    return value


def _value(key: str, spec, text: str) -> tuple[float, ...]:
    """One value of a schedule: (zoom,), (x, y) or (degrees,)."""
    text = text.strip()
    if key != "pan":
        return (_number(key, spec, text),)
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    parts = text.split(",")
    if len(parts) != 2:
        raise _fail(key, spec, f"a pan is a point x,y in plane units, got {text!r}")
    return tuple(_number(key, spec, p) for p in parts)


def _easing(key: str, spec, text: str) -> str:
    text = text.strip().lower()
    if not text:
        return DEFAULT_CAMERA_EASE
    if text not in EASINGS:
        raise _fail(key, spec, f"unknown easing {text!r} (choose one of {', '.join(EASINGS)})")
    return text


def _split_easing(text: str) -> tuple[str, str]:
    """("value", "easing") from "value easing" (the easing is the last word when it starts with a letter)."""
    m = re.match(r"^(.*?)(?:\s+([A-Za-z][\w-]*))?\s*$", text)
    return m.group(1), m.group(2) or ""


def _items(spec: str) -> list[str]:
    """Comma-separated items outside parentheses."""
    items, depth, cur = [], 0, ""
    for ch in spec:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return items + [cur]


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: keyframes (frame, value, easing of the segment leaving it), or a ramp (frames None:
    from the first frame to the last)."""
    key: str
    values: tuple[tuple[float, ...], ...]
    frames: tuple[int, ...] | None  # keyframe frames; None for a constant (one value) or a ramp (two)
    eases: tuple[str, ...]

    def at(self, n_frames: int) -> np.ndarray:
        """The value at every frame of a video of n_frames: float64 [n_frames, len(value)]."""
        vals = np.asarray(self.values, np.float64)
        if len(vals) == 1:
            return np.repeat(vals, n_frames, axis=0)
        frames = self.frames if self.frames is not None else (0, max(1, n_frames - 1))
        i = np.arange(n_frames, dtype=np.float64)
        out = np.repeat(vals[:1], n_frames, axis=0)
        for k in range(len(frames) - 1):
            f0, f1 = frames[k], frames[k + 1]
            inside = (i >= f0) & (i <= f1) if k == len(frames) - 2 else (i >= f0) & (i < f1)
            u = ease(self.eases[k], (i[inside] - f0) / (f1 - f0))[:, None]
            a, b = vals[k], vals[k + 1]
            if self.key == "zoom":  # geometric: log zoom moves linearly, and the keyframes are hit exactly
                seg = a * np.power(b / a, u)
                seg = np.where(u == 1.0, b, seg)
            else:
                seg = a + u * (b - a)
            out[inside] = seg
        out[i > frames[-1]] = vals[-1]
        return out


def parse_schedule(key: str, spec, fps) -> Schedule:
    """A schedule from its text (or a number); UserError naming `--key` for a bad one."""
    if key not in KEYS:
        raise ValueError(f"unknown camera key {key!r}")
    if isinstance(spec, bool):
        raise _fail(key, spec, "not a value")
    if isinstance(spec, (int, float)):
        return Schedule(key, (_value(key, spec, repr(float(spec))),), None, ())
    text = str(spec).strip()
    if not text:
        raise _fail(key, spec, "it is empty")
    items = _items(text)
    if any("=" in item for item in items):
        keys = []
        for item in items:
            if "=" not in item:
                hint = " (write each keyframe's point in parentheses: 0s=(0,0))" if key == "pan" else ""
                raise _fail(key, spec, f"{item.strip()!r} is not time=value{hint}")
            when, rest = item.split("=", 1)
            when = when.strip()
            value, easing = _split_easing(rest)
            frame = to_frames(when, fps, f"--{key} keyframe time", key)
            if keys and frame <= keys[-1][0]:
                raise _fail(key, spec, f"keyframe times must increase, but {when} (frame {frame}) follows "
                                       f"{keys[-1][3]} (frame {keys[-1][0]})")
            keys.append((frame, _value(key, spec, value), _easing(key, spec, easing), when))
        return Schedule(key, tuple(k[1] for k in keys), tuple(k[0] for k in keys), tuple(k[2] for k in keys))
    value, easing = _split_easing(text)
    ends = value.split(":")
    if len(ends) > 2:
        raise _fail(key, spec, "a ramp is start:end")
    values = tuple(_value(key, spec, e) for e in ends)
    if len(values) == 1:
        if easing:
            raise _fail(key, spec, f"{easing!r}: an easing needs a ramp or keyframes")
        return Schedule(key, values, None, ())
    return Schedule(key, values, None, (_easing(key, spec, easing),))


@dataclass(frozen=True)
class CameraTrack:
    """The camera of every frame: zoom [F], pan [F, 2] (plane units) and rotation [F] (degrees), float64."""
    zoom: np.ndarray
    pan: np.ndarray
    rotate: np.ndarray

    def __len__(self) -> int:
        return len(self.zoom)

    @property
    def static(self) -> bool:
        """Every frame is the plain framing (zoom 1, no pan, no turn): render as without a camera."""
        return bool(np.all(self.zoom == 1.0) and np.all(self.pan == 0.0) and np.all(np.mod(self.rotate, 360) == 0))

    def __getitem__(self, index) -> "CameraTrack":
        index = slice(index, index + 1) if isinstance(index, (int, np.integer)) else index
        return CameraTrack(self.zoom[index], self.pan[index], self.rotate[index])


def camera_track(settings, frames: int) -> CameraTrack | None:
    """The camera of every frame from settings with zoom, pan and rotate schedules (None where unset), or None when
    the camera never moves from the plain framing (such renders take the static paths, byte for byte as
    without a camera)."""
    specs = {k: getattr(settings, k, None) for k in KEYS}
    from pipeline.audio.music import zoom_pulse

    pulse = zoom_pulse(settings, frames)  # --react zoom: the soundtrack's onsets multiply the zoom
    if all(v is None for v in specs.values()) and pulse is None:
        return None
    fps = getattr(settings, "fps", 30)
    tracks = {k: parse_schedule(k, v, fps).at(frames) if v is not None else None for k, v in specs.items()}
    if pulse is not None:
        tracks["zoom"] = (tracks["zoom"] if tracks["zoom"] is not None else np.ones((frames, 1))) * pulse[:, None]
    track = CameraTrack(tracks["zoom"][:, 0] if tracks["zoom"] is not None else np.ones(frames),
                        tracks["pan"] if tracks["pan"] is not None else np.zeros((frames, 2)),
                        tracks["rotate"][:, 0] if tracks["rotate"] is not None else np.zeros(frames))
    return None if track.static else track


def check_camera(settings) -> None:
    """Parse every schedule of the settings (UserError naming the key), before anything renders."""
    fps = getattr(settings, "fps", 30)
    for k in KEYS:
        spec = getattr(settings, k, None)
        if spec is not None:
            parse_schedule(k, spec, fps)
