"""The header every render's JSON sidecar starts with (walk, grid, compare, still, contact sheet): what was
made, by which version, at what size and length, with which settings, and the scene (canvas, exact frame rate,
keyframe times and holds, pacing, palette). Each job adds what is its own (checkpoints, keyframes, timing)."""
from __future__ import annotations

from dataclasses import asdict, replace

from pipeline import __version__
from pipeline.scene.timeline import fps_text, parse_fps


def scene_record(settings, width: int, height: int, frames: int | None = None, timeline=None) -> dict:
    """The scene as it was rendered: canvas, fps (exact ratio), length in seconds, keyframe arrivals and holds in
    frames, pacing and palette."""
    scene = {"canvas": [int(width), int(height)]}
    if frames is not None:
        fps = parse_fps(settings.fps)
        scene.update(fps=fps_text(fps), seconds=round(float(frames / fps), 6), pace=getattr(settings, "pace", "none"))
        if timeline is not None:
            scene["timeline"] = {"arrive": list(timeline.arrive), "hold": list(timeline.hold)}
    palette = getattr(settings, "palette", None) or (f"colors:{settings.colors}" if getattr(settings, "colors", None)
                                                      else None)
    scene["palette"] = palette
    return scene


def header(kind: str, out, width: int, height: int, settings, fmt: str | None = None, frames: int | None = None,
           timeline=None) -> dict:
    """The first entries of a sidecar; `settings` is recorded without its batch size (never changes the bytes)."""
    info = {"kind": kind, "version": __version__, "output": str(out)}
    if fmt is not None:
        info["format"] = fmt
    if frames is not None:
        info["frames"] = frames
    info.update(width=int(width), height=int(height))
    if frames is not None:
        info["fps"] = settings.fps
    recorded = replace(settings, batch=None) if hasattr(settings, "batch") else settings
    if hasattr(settings, "rendered_interp"):  # what was rendered (class transitions lerp whatever --interp says)
        recorded = replace(recorded, interp=settings.rendered_interp())
    info["settings"] = asdict(recorded)
    info["scene"] = scene_record(settings, width, height, frames, timeline)
    if getattr(settings, "audio", None) is not None and frames is not None:
        from pipeline.audio.music import audio_record

        info["audio"] = audio_record(settings, frames, timeline)
    return info
