"""Walk / class-transition videos and stills: checkpoint + latent path + render engine + video writer."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline import __version__
from pipeline.checkpoint import Checkpoint, load_checkpoint
from pipeline.errors import UserError
from pipeline.latents import EASINGS, class_path, load_keyframes, parse_classes, walk_keyframes, walk_path
from pipeline.render import Renderer, default_batch
from pipeline.video import atomic_path, check_size, check_writable, open_writer, output_format, probe, write_sidecar

DEFAULT_CHECKPOINT = "e24"  # bundled checkpoint used when none is given

Progress = Callable[[int], None]  # called with the number of frames just finished


@dataclass(frozen=True)
class WalkSettings:
    """Everything that determines a walk video's frames and encoding (written to its sidecar)."""
    frames: int = 600              # frames in the video
    size: int = 1080               # frame width and height in pixels
    fps: float = 30.0              # frames per second
    seed: int = 0                  # seed of the random keyframes
    keyframes: int = 8             # random keyframes visited by the walk
    loop: bool = False             # return to the first keyframe (seamless loop, no duplicated frame)
    ease: str = "linear"           # easing within each segment: linear, sine (the article's), smoothstep
    interp: str = "slerp"          # slerp (great circles) or cubic (smooth spline through keyframes)
    scale: float = 8.0             # coordinate range [-scale, scale]; larger zooms out (training used 8)
    invert: bool = False           # dark strokes on white, as the article's "normal" renders
    classes: str | None = None     # class order such as "0-9": class transitions instead of a random walk
    keyframes_file: str | None = None  # .npy [K, z_dim] keyframes instead of random ones
    crf: int = 18                  # H.264 quality (lower is better; 0 is lossless but plays in few players)
    preset: str = "medium"         # x264 speed/size trade-off
    lossless: bool = False         # exact gray frames (tests, segment joins); few players can play it
    fmt: str | None = None         # mp4, gif or png; None picks from the output's suffix
    device: str = "auto"           # auto, cpu or cuda[:N]
    path: str = "auto"             # render path: auto, cpu-fused, triton, torch, reference
    batch: int | None = None       # frames per render batch (None: by frame size); never changes the bytes

    def validate(self) -> None:
        if self.frames < 1:
            raise UserError(f"--frames must be at least 1, got {self.frames}")
        if self.keyframes < 1 and self.classes is None and self.keyframes_file is None:
            raise UserError(f"--keyframes must be at least 1, got {self.keyframes}")
        if self.ease not in EASINGS:
            raise UserError(f"unknown easing {self.ease!r}; choose one of {', '.join(EASINGS)}")
        if self.batch is not None and self.batch < 1:
            raise UserError(f"--batch must be at least 1, got {self.batch}")
        if self.classes is not None and self.keyframes_file is not None:
            raise UserError("--classes and --keyframes-file both choose the path; give only one")


@dataclass(frozen=True)
class StillSettings:
    size: int = 3240               # image width and height in pixels
    seed: int = 0                  # seed of the latent (ignored with digit)
    digit: int | None = None       # render this class's latent instead of a random one
    scale: float = 8.0             # coordinate range [-scale, scale]
    invert: bool = False           # dark strokes on white
    device: str = "auto"           # auto, cpu or cuda[:N]
    path: str = "auto"             # render path


def _checkpoint(ckpt) -> Checkpoint:
    return ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt if ckpt is not None else DEFAULT_CHECKPOINT)


def path_latents(settings: WalkSettings, z_dim: int, class_latents: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """(keyframes [K, z_dim], per-frame latents [frames, z_dim]) of a walk or class transition."""
    s = settings
    if s.classes is not None:
        order = parse_classes(s.classes)
        keys = np.asarray(class_latents, dtype=np.float32)[order]
        return keys, class_path(class_latents, order, s.frames, loop=s.loop, ease=s.ease)
    keys = load_keyframes(s.keyframes_file, z_dim) if s.keyframes_file else walk_keyframes(s.seed, s.keyframes, z_dim)
    return keys, walk_path(keys, s.frames, loop=s.loop, ease=s.ease, interp=s.interp)


def checkpoint_info(ck: Checkpoint) -> dict:
    return {"path": str(ck.path), "name": ck.name, "sha256": ck.sha256, "family": ck.family,
            "epoch": ck.epoch, "kind": ck.kind}


def stream_frames(renderer: Renderer, latents: np.ndarray, writer, batch: int, invert: bool,
                  progress: Progress | None = None) -> None:
    """Render latents in batches into a writer; the writer encodes one batch while the next renders."""
    for start in range(0, len(latents), batch):
        frames = renderer.render(latents[start:start + batch], invert=invert)  # [b, H, W] uint8
        writer.write(frames)
        if progress is not None:
            progress(len(frames))


def render_walk(ckpt, out, settings: WalkSettings = WalkSettings(), progress: Progress | None = None) -> dict:
    """Render a latent walk (or class transition) video from a checkpoint; returns the sidecar's contents.

    Every input is checked and ffmpeg is probed before the first frame renders; the video appears at
    `out` only when complete, with `<out>.json` beside it holding everything needed to reproduce it.
    """
    s = settings
    s.validate()
    out = Path(out)
    fmt = output_format(out, s.fmt)
    check_size((s.size, s.size), fmt)
    check_writable(out, fmt)
    ck = _checkpoint(ckpt)
    keys, latents = path_latents(s, ck.z_dim, ck.class_latents)
    probe(fmt, (s.size, s.size), fps=s.fps, crf=s.crf, preset=s.preset, lossless=s.lossless)
    if progress is not None:
        progress(0)  # checks passed: rendering starts
    t0 = time.perf_counter()
    with Renderer(ck.generator, s.size, s.size, scale=s.scale, path=s.path, device=s.device) as renderer:
        batch = s.batch or default_batch(s.size, s.size, renderer.device)
        with open_writer(out, (s.size, s.size), fps=s.fps, fmt=fmt, crf=s.crf, preset=s.preset,
                         lossless=s.lossless) as writer:
            stream_frames(renderer, latents, writer, batch, s.invert, progress)
        render_path, device = renderer.path, str(renderer.device)
    seconds = time.perf_counter() - t0
    info = {
        "kind": "walk" if s.classes is None else "classes",
        "version": __version__,
        "output": str(out), "format": fmt, "frames": len(latents), "width": s.size, "height": s.size,
        "fps": s.fps, "settings": asdict(replace(s, batch=None)), "checkpoint": checkpoint_info(ck),
        "keyframes": keys, "render_path": render_path, "device": device,
        "seconds": round(seconds, 3), "frames_per_second": round(len(latents) / seconds, 3),
    }
    write_sidecar(out, info)
    return info


def render_still(ckpt, out, settings: StillSettings = StillSettings()) -> dict:
    """Render one image (PNG) from a checkpoint; returns the sidecar's contents."""
    import imageio.v3 as iio

    s = settings
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"stills are written as PNG; name the output {out.with_suffix('.png')}")
    check_writable(out, "gif")  # any single-file format: only the directory matters
    ck = _checkpoint(ckpt)
    if s.digit is not None:
        if not 0 <= s.digit < ck.class_latents.shape[0]:
            raise UserError(f"--digit must be 0..{ck.class_latents.shape[0] - 1}, got {s.digit}")
        z = ck.class_latents[s.digit : s.digit + 1].numpy()
    else:
        z = walk_keyframes(s.seed, 1, ck.z_dim)
    t0 = time.perf_counter()
    with Renderer(ck.generator, s.size, s.size, scale=s.scale, path=s.path, device=s.device) as renderer:
        image = renderer.render(z, invert=s.invert)[0]  # [H, W] uint8
        render_path = renderer.path
    with atomic_path(out) as tmp:
        iio.imwrite(tmp, image, extension=".png")
    info = {"kind": "still", "version": __version__, "output": str(out), "width": s.size, "height": s.size,
            "settings": asdict(s), "checkpoint": checkpoint_info(ck), "latent": z[0], "render_path": render_path,
            "seconds": round(time.perf_counter() - t0, 3)}
    write_sidecar(out, info)
    return info
