"""What a soundtrack does to a video, from its settings (audio, audio_offset, sync, beats_per_keyframe, react):
the video's length in frames, keyframe times on the beats or strongest onsets, the zoom pulse and the speed of
the walk, and the sidecar's record of it. Decoding and analysis are cached, so asking again costs nothing."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError

SYNCS = ("beats", "onsets")
REACT_KEYS = ("zoom", "speed")
PULSE_ATTACK_S = 0.03        # the zoom pulse rises over ~1 frame at 30 fps ...
PULSE_DECAY_S = 0.25         # ... and falls back over a quarter of a second
SPEED_SMOOTH_S = 0.5         # loudness is smoothed over half a second before it sets the walk's speed
MIN_SPEED = 0.1              # the quietest passage still moves at a tenth of the mean speed
_analyses: dict[tuple, object] = {}


def parse_react(spec) -> dict[str, float]:
    """"zoom=0.2,speed=0.5" -> {"zoom": 0.2, "speed": 0.5}; UserError (key react) for anything else."""
    if spec is None:
        return {}
    out = {}
    for item in str(spec).split(","):
        if not item.strip():
            continue
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if not eq or name not in REACT_KEYS:
            raise UserError(f"--react {spec!r}: {item.strip()!r} is not zoom=AMOUNT or speed=AMOUNT; give e.g. "
                            f"zoom=0.2,speed=0.5", key="react")
        try:
            amount = float(value)
        except ValueError:
            amount = float("nan")
        if not (np.isfinite(amount) and 0 <= amount <= (4 if name == "zoom" else 1)):
            raise UserError(f"--react {name}={value.strip()}: give a number from 0 to "
                            f"{4 if name == 'zoom' else 1} (zoom: how much further in on a loud onset, 0.2 = 20%; "
                            f"speed: how much loudness changes the walk's speed)", key="react")
        out[name] = amount
    return out


def offset_seconds(settings) -> float:
    """--audio-offset in seconds (a time value: 12s, 1:30, or frames at the video's fps)."""
    from pipeline.scene.timeline import parse_fps, to_frames

    spec = getattr(settings, "audio_offset", None)
    if spec in (None, "", 0, "0"):
        return 0.0
    fps = parse_fps(settings.fps)
    text = str(spec).strip().lower()
    if text.endswith("s") and not text.endswith("ms"):  # seconds exactly, not rounded to a frame
        try:
            value = float(text[:-1])
        except ValueError:
            value = -1.0
        if value >= 0 and np.isfinite(value):
            return value
    return float(to_frames(spec, fps, "--audio-offset", "audio_offset") / fps)


@dataclass(frozen=True)
class Soundtrack:
    path: str
    sha256: str
    offset: float                # seconds into the file where the video starts
    seconds: float               # of sound after the offset
    samples: np.ndarray          # after the offset, mono at `rate`
    rate: int


def soundtrack(settings) -> Soundtrack | None:
    """The decoded track of settings.audio from its offset, or None without --audio; UserError for a bad file
    or an offset past its end."""
    path = getattr(settings, "audio", None)
    if path is None:
        return None
    from pipeline.audio.decode import load_track

    track = load_track(path)
    offset = offset_seconds(settings)
    start = int(round(offset * track.rate))
    if start >= len(track.samples):
        raise UserError(f"--audio-offset {settings.audio_offset} is past the end of {path} ({track.seconds:.2f} s); "
                        f"give an earlier offset", key="audio_offset")
    samples = track.samples[start:]
    return Soundtrack(track.path, track.sha256, offset, len(samples) / track.rate, samples, track.rate)


def track_frames(settings) -> int | None:
    """The video's length when the track sets it (no --frames/--duration): the sound after the offset, in whole
    frames (at least 1)."""
    from pipeline.scene.timeline import parse_fps

    snd = soundtrack(settings)
    if snd is None:
        return None
    return max(1, int(round(snd.seconds * float(parse_fps(settings.fps)))))


def analysis(settings):
    """The beat analysis (audio.analysis.Analysis) of the track from its offset, or None without --audio."""
    snd = soundtrack(settings)
    if snd is None:
        return None
    key = (snd.sha256, snd.offset, snd.rate)
    if key not in _analyses:
        from pipeline.audio.analysis import analyse

        if len(_analyses) > 8:
            _analyses.clear()
        _analyses[key] = analyse(snd.samples, snd.rate)
    return _analyses[key]


def check_music(settings) -> None:
    """The soundtrack settings as a render needs them, before anything renders (UserError naming the key)."""
    sync = getattr(settings, "sync", None)
    react = parse_react(getattr(settings, "react", None))
    if getattr(settings, "audio", None) is None:
        for key, value in (("sync", sync), ("react", react or None), ("audio_offset", getattr(settings, "audio_offset", None))):
            if value:
                raise UserError(f"--{key.replace('_', '-')} needs a soundtrack; give --audio FILE", key=key)
        return
    if sync is not None and sync not in SYNCS:
        raise UserError(f"unknown --sync {sync!r}; choose beats or onsets", key="sync")
    n = getattr(settings, "beats_per_keyframe", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"--beats-per-keyframe must be a whole number of at least 1, got {n!r}",
                        key="beats_per_keyframe")
    if sync is not None and getattr(settings, "times", None) is not None:
        raise UserError("--sync places the keyframes on the track; leave out --times", key="sync")
    if sync is not None and (getattr(settings, "frames_per_transition", None) is not None
                             or getattr(settings, "repeat_keyframes", False)):
        raise UserError("--sync places the keyframes on the track; leave out --frames-per-transition and "
                        "--repeat-keyframes", key="sync")
    soundtrack(settings)


def check_music_format(settings, fmt: str) -> None:
    """A soundtrack goes into MP4 only: GIF and PNG frames have nowhere to put it."""
    if getattr(settings, "audio", None) is not None and fmt != "mp4":
        raise UserError(f"--audio needs an MP4 output ({fmt.upper()} has no sound); name the output .mp4 or "
                        f"leave out --audio", key="audio")


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """One warning per message in a process (the timeline is asked for several times per render)."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def sync_points(settings, frames: int) -> list[int] | None:
    """Frames of the track's beats (or strongest onsets) the keyframes may land on, every beats_per_keyframe-th,
    frame 0 first; None without --sync or when the track has no beat (warned once, and the walk is timed as
    without --sync)."""
    sync = getattr(settings, "sync", None)
    if sync is None or getattr(settings, "audio", None) is None:
        return None
    from pipeline.scene.timeline import parse_fps

    a = analysis(settings)
    fps = float(parse_fps(settings.fps))
    n = settings.beats_per_keyframe
    if sync == "beats":
        if a.tempo is None:
            _warn_once(f"--sync beats: {a.problem} in {settings.audio}; rendering a plain walk (keyframes evenly "
                       f"timed)")
            return None
        times = a.beats[::n]
    else:
        strong = np.sort(a.onsets[: max(1, len(a.onsets) // n)]) if len(a.onsets) else a.onsets
        if len(strong) == 0:
            _warn_once(f"--sync onsets: {a.problem or 'the track has no onsets'} in {settings.audio}; rendering a "
                       f"plain walk (keyframes evenly timed)")
            return None
        times = strong
    points = sorted({int(round(t * fps)) for t in times if 0 <= t * fps < frames})
    if points and points[0] <= 1:
        points[0] = 0
    else:
        points.insert(0, 0)
    return points


def sync_count(settings, frames: int) -> int | None:
    """How many keyframes fit the sync points of a video of `frames` (the default keyframes become that many)."""
    points = sync_points(settings, frames)
    if points is None:
        return None
    last = frames - (1 if getattr(settings, "loop", False) else 0)
    return max(1, len([p for p in points if p < last]))


def keyframe_times(settings, n_keys: int, frames: int) -> list[int] | None:
    """Each keyframe's frame on the track's beats (None: not synced), or a UserError when the track has fewer
    beats than keyframes."""
    points = sync_points(settings, frames)
    if points is None:
        return None
    last = frames - (1 if getattr(settings, "loop", False) else 0)
    points = [p for p in points if p < last]
    if n_keys > len(points):
        raise UserError(f"--sync {settings.sync}: {n_keys} keyframes but the video's {frames} frames of "
                        f"{settings.audio} have {len(points)} places for them (every {settings.beats_per_keyframe} "
                        f"{'beat' if settings.sync == 'beats' else 'onset'}(s)); give fewer keyframes, a smaller "
                        f"--beats-per-keyframe or a longer video", key="sync")
    return points[:n_keys]


def _per_frame(values: np.ndarray, rate: float, frames: int, fps: float, how) -> np.ndarray:
    """Envelope values [n] at `rate` Hz reduced to each video frame's span [frames]; 0 past the track's end."""
    out = np.zeros(frames)
    edges = np.round(np.arange(frames + 1) / fps * rate).astype(np.int64)
    for i in range(frames):
        a, b = edges[i], max(edges[i + 1], edges[i] + 1)
        if a < len(values):
            out[i] = how(values[a:b])
    return out


def zoom_pulse(settings, frames: int) -> np.ndarray | None:
    """Each frame's zoom factor from the onset envelope (1 + amount x a smoothed pulse in [0, 1]), None without
    --react zoom."""
    amount = parse_react(getattr(settings, "react", None)).get("zoom")
    if not amount or getattr(settings, "audio", None) is None:
        return None
    from pipeline.scene.timeline import parse_fps

    a = analysis(settings)
    fps = float(parse_fps(settings.fps))
    env = _per_frame(a.envelope, a.env_rate, frames, fps, np.max)
    top = np.percentile(env, 99) if env.size else 0.0
    if not top > 0:
        return np.ones(frames)
    env = np.clip(env / top, 0.0, 1.0)
    up, down = 1 - np.exp(-1 / (PULSE_ATTACK_S * fps)), 1 - np.exp(-1 / (PULSE_DECAY_S * fps))
    pulse = np.zeros(frames)
    level = 0.0
    for i, target in enumerate(env):
        level += (up if target > level else down) * (target - level)
        pulse[i] = level
    return 1.0 + amount * pulse


def speed_weights(settings, frames: int) -> np.ndarray | None:
    """How fast the walk moves on each frame, relative to its mean (1 + amount x (smoothed loudness / mean - 1),
    at least MIN_SPEED); None without --react speed. scene.pacing.speed_warp turns it into path progress."""
    amount = parse_react(getattr(settings, "react", None)).get("speed")
    if not amount or getattr(settings, "audio", None) is None:
        return None
    from scipy.ndimage import gaussian_filter1d

    from pipeline.scene.timeline import parse_fps

    a = analysis(settings)
    fps = float(parse_fps(settings.fps))
    loud = _per_frame(a.rms, a.env_rate, frames, fps, np.mean)
    loud = gaussian_filter1d(loud, SPEED_SMOOTH_S * fps, mode="nearest") if frames > 1 else loud
    mean = loud.mean()
    if not mean > 0:
        return np.ones(frames)
    return np.maximum(MIN_SPEED, 1.0 + amount * (loud / mean - 1.0))


def fit_note(settings, frames: int) -> str:
    """One line: how the sound fits the video (as long, cut, or padded with silence)."""
    from pipeline.scene.timeline import parse_fps

    snd = soundtrack(settings)
    video = frames / float(parse_fps(settings.fps))
    if abs(snd.seconds - video) < 0.5 / float(parse_fps(settings.fps)) + 1e-6:
        return f"sound: {settings.audio} from {snd.offset:g} s, as long as the video ({video:.2f} s)"
    if snd.seconds > video:
        return (f"sound: {settings.audio} from {snd.offset:g} s is cut at {video:.2f} s (the track has "
                f"{snd.seconds - video:.2f} s more; leave out --frames/--duration to play it all)")
    return (f"sound: {settings.audio} from {snd.offset:g} s is padded with {video - snd.seconds:.2f} s of silence "
            f"(it ends at {snd.seconds:.2f} s, the video at {video:.2f} s)")


def audio_record(settings, frames: int, timeline=None) -> dict | None:
    """The sidecar's "audio": the file and its SHA-256, offset, how it fits, and with --sync the tempo found and
    the beat (or onset) times within the video."""
    snd = soundtrack(settings)
    if snd is None:
        return None
    from pipeline.scene.timeline import parse_fps

    fps = float(parse_fps(settings.fps))
    rec = {"file": snd.path, "sha256": snd.sha256, "offset_s": snd.offset, "sound_s": round(snd.seconds, 6),
           "video_s": round(frames / fps, 6), "note": fit_note(settings, frames), "codec": "aac"}
    if getattr(settings, "sync", None) is not None or getattr(settings, "react", None):
        a = analysis(settings)
        inside = lambda t: [round(float(x), 4) for x in np.sort(t) if x < frames / fps]  # noqa: E731
        rec.update(tempo_bpm=None if a.tempo is None else round(a.tempo, 3), beats_s=inside(a.beats),
                   onsets_s=inside(a.onsets[:256]), problem=a.problem, sync=getattr(settings, "sync", None),
                   react=parse_react(getattr(settings, "react", None)))
        if timeline is not None and settings.sync is not None:
            rec["keyframe_frames"] = list(timeline.arrive)
    return rec
