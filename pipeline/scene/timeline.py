"""Time in a scene: frame rates (fractional ones exact), durations and keyframe times in seconds or frames,
holds, and which point of the keyframe path every frame shows.

Time values follow Deforum's schedules, whose keys are frame numbers, and add seconds: a bare number is frames
("48"), a suffix `s` seconds ("2s", "0.5s"), `ms` milliseconds, and `m:ss` / `h:mm:ss` clock time ("1:30").
Frame counts are exact: 2 s at 24 fps is 48 frames, 1:30 at 30000/1001 fps is round(90 * 30000 / 1001) = 2697.
No numpy beyond the per-frame arrays, no torch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from pipeline.errors import UserError

_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
_CLOCK = re.compile(rf"^(?:(\d+):)?(\d+):({_NUMBER})$")
_UNIT = re.compile(rf"^({_NUMBER})\s*(s|ms|f)?$")
MAX_FPS = 1000


def parse_fps(value) -> Fraction:
    """A frame rate as an exact fraction: 30, 29.97, "30000/1001", "24"; UserError when not positive."""
    if isinstance(value, Fraction):
        fps = value
    else:
        try:
            if isinstance(value, bool):
                raise ValueError
            fps = Fraction(str(value).strip()) if not isinstance(value, float) else Fraction(value).limit_denominator(1001000)
        except (ValueError, ZeroDivisionError):
            raise UserError(f"fps must be a positive number or a ratio such as 30000/1001, got {value!r}",
                            key="fps") from None
    if not 0 < fps <= MAX_FPS:
        raise UserError(f"fps must be between 0 and {MAX_FPS} frames per second, got {value!r}", key="fps")
    return fps


def fps_text(value) -> str:
    """The frame rate as ffmpeg takes it: "30", "29.97", "30000/1001"."""
    fps = parse_fps(value)
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def to_frames(value, fps, what: str = "a time", key: str | None = None) -> int:
    """A time value (see the module doc) as a whole number of frames at `fps` (seconds are rounded to the nearest
    frame, halves up)."""
    text = str(value).strip().lower()
    if isinstance(value, bool) or not text:
        raise UserError(f"{what} must be frames (48), seconds (2s) or clock time (1:30), got {value!r}", key=key)
    rate = parse_fps(fps)
    clock = _CLOCK.match(text)
    if clock:
        hours, minutes, seconds = clock.groups()
        secs = Fraction(int(hours or 0) * 3600 + int(minutes) * 60) + Fraction(seconds)
    else:
        unit = _UNIT.match(text)
        if not unit:
            raise UserError(f"{what} must be frames (48), seconds (2s) or clock time (1:30), got {value!r}", key=key)
        number, suffix = Fraction(unit.group(1)), unit.group(2)
        if suffix in (None, "f"):
            if number.denominator != 1:
                raise UserError(f"{what} {value!r} is a fraction of a frame; give whole frames or seconds such as "
                                f"{value}s", key=key)
            return int(number)
        secs = number / 1000 if suffix == "ms" else number
    return int(secs * rate + Fraction(1, 2))  # round half up, exactly


def parse_times(spec, fps, what: str, key: str) -> list[int]:
    """A comma-separated list of time values (or a list) -> frames each."""
    items = spec if isinstance(spec, (list, tuple)) else str(spec).split(",")
    return [to_frames(item, fps, what, key) for item in items]


@dataclass(frozen=True)
class Timeline:
    """When each keyframe is reached and for how many frames it shows, in frames.

    arrive[k]: the first frame showing keyframe k; hold[k]: how many frames show it (at least 1: a hold of
    0.5 s at 24 fps is 12 identical frames, no hold the one frame the path passes it on). Between keyframe k's
    last frame and k+1's first the path moves; the last transition of a loop returns to keyframe 0 at frame
    `frames`, which is frame 0 of the next pass. Keyframes land on whole frames, so a held frame is exactly its
    keyframe.
    """
    frames: int
    arrive: tuple[int, ...]
    hold: tuple[int, ...]
    loop: bool = False

    def transitions(self) -> list[tuple[int, int]]:
        """(departure, arrival) frames of each transition: the last frame of keyframe k, the first of k+1."""
        ends = list(self.arrive[1:]) + ([self.frames + self.arrive[0]] if self.loop else [])
        return [(self.arrive[k] + self.hold[k] - 1, end) for k, end in enumerate(ends)]

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(segment j [frames], progress u [frames] in [0, 1]) of every frame before easing; a frame showing
        keyframe k has (k, 0), or (K-2, 1) for the last keyframe of a walk that does not loop."""
        K = len(self.arrive)
        i = np.arange(self.frames, dtype=np.int64)
        j = np.zeros(self.frames, np.int64)
        u = np.zeros(self.frames, np.float64)
        for k, (depart, end) in enumerate(self.transitions()):
            moving = (i > depart) & (i < end)
            j[(i >= self.arrive[k]) & (i < end)] = k
            u[moving] = (i[moving] - depart) / (end - depart)
        if not self.loop and K > 1:
            last = i >= self.arrive[-1]
            j[last], u[last] = K - 2, 1.0
        return j, u


def build_timeline(n_keys: int, frames: int | None, fps, loop: bool = False, times=None, hold=None) -> Timeline:
    """The timeline of a walk through n_keys keyframes.

    times: each keyframe's time (a list or "0,2s,5s"), the first 0; without them the transitions share the
    frames left after the holds equally (rounded to whole frames). hold: one time value for every keyframe or
    one per keyframe. frames: the video's length (None: up to the last keyframe's hold with times, else an
    error); with times it must reach the last keyframe's hold (looping, one frame more), and a walk that does
    not loop holds its last keyframe to the end.
    """
    if n_keys < 1:
        raise UserError("a timeline needs at least one keyframe")
    holds = [max(1, h) for h in parse_times(hold if hold is not None else "0", fps, "--hold", "hold")]
    if len(holds) == 1:
        holds = holds * n_keys
    if len(holds) != n_keys:
        raise UserError(f"--hold has {len(holds)} values for {n_keys} keyframes; give one for all or one per keyframe",
                        key="hold")
    n_seg = n_keys if loop else n_keys - 1
    if times is not None:
        arrive = parse_times(times, fps, "--times", "times")
        if len(arrive) != n_keys:
            raise UserError(f"--times has {len(arrive)} values for {n_keys} keyframes; give one time per keyframe",
                            key="times")
        if arrive[0] != 0:
            raise UserError(f"--times must start at 0 (the first keyframe opens the video), got {times!r}", key="times")
        for k in range(1, n_keys):
            if arrive[k] < arrive[k - 1] + holds[k - 1]:
                raise UserError(f"keyframe {k + 1} at frame {arrive[k]} comes before keyframe {k}'s hold ends (frame "
                                f"{arrive[k - 1] + holds[k - 1] - 1}); give increasing --times with room for the holds",
                                key="times")
        least = arrive[-1] + holds[-1] + (1 if loop else 0)
        if frames is None:
            frames = least
        elif frames < least:
            raise UserError(f"the video has {frames} frames but its last keyframe is at frame {arrive[-1]} (shown "
                            f"{holds[-1]}); give at least {least} frames or earlier --times", key="times")
        elif not loop:
            holds[-1] += frames - least  # the walk ends on its last keyframe: it holds to the end
    else:
        if frames is None:
            raise UserError("give the video's length (--frames or --duration) or each keyframe's --times")
        held = sum(h - 1 for h in holds)
        moving = frames - held - (0 if loop else 1)  # frames of movement, shared by the transitions
        if n_seg and moving < n_seg:
            raise UserError(f"{frames} frames leave {max(moving, 0)} steps for {n_seg} transitions after the holds "
                            f"({held} frames held); give more frames or shorter holds", key="hold")
        if not n_seg:
            holds = [frames]
        arrive, done = [], 0
        for k in range(n_keys):
            arrive.append(done + (k * moving // n_seg if n_seg else 0))
            done += holds[k] - 1
    return Timeline(int(frames), tuple(int(a) for a in arrive), tuple(int(h) for h in holds), bool(loop))
