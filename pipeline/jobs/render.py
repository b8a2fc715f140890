"""Walk / class-transition / real-digit videos and stills: checkpoint + latent path + render engine + video writer."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from pipeline.checkpoint import Checkpoint, load_checkpoint
from pipeline.errors import UserError
from pipeline.atomic import check_replaceable, temp_sibling
from pipeline.scene.preflight import MAX_FRAMES, preflight  # noqa: F401 (MAX_FRAMES: API)
from pipeline.jobs.projected import check_images, image_inputs, projection_record
from pipeline.jobs.sidecar import header
from pipeline.scene.palette import palette_of
from pipeline.jobs.settings import DEFAULT_CHECKPOINT, Progress, StillSettings, WalkSettings
from pipeline.latents import (class_path, digit_keyframes, load_keyframes, parse_classes, parse_digits,
                              parse_seeds, seed_latents, walk_keyframes, walk_path)
from pipeline.render import Renderer, default_batch
from pipeline.scene.camera import camera_track
from pipeline.provenance import check_not_input, publish, sidecar_path
from pipeline.video import check_video_size, check_writable, output_format, probe

__all__ = ["DEFAULT_CHECKPOINT", "MAX_FRAMES", "StillSettings", "WalkSettings", "render_walk", "render_still",
           "render_stills", "path_latents", "checkpoint_path"]


def _checkpoint(ckpt) -> Checkpoint:
    return ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt if ckpt is not None else DEFAULT_CHECKPOINT)


def digit_bank(ck: Checkpoint) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A checkpoint's stored single-digit encodings as (latents [N, Z], labels [N]), or None if it has none."""
    if ck.digit_latents is None or ck.digit_labels is None:
        return None
    return ck.digit_latents, ck.digit_labels


def _path(s: WalkSettings, z_dim: int, class_latents, bank, source: str, generators=(), rows_given=None,
          image_keys=None):
    """(keyframes [K, Z], per-frame latents [frames, Z], bank rows of the keyframes [K] or None).

    generators: what `pace = "uniform"` measures the picture's change on (a comparison's every panel); without
    any the walk is not re-paced. They also choose the default stored-digit keyframes (jobs.keyframes), unless
    rows_given names them (a comparison chooses once for every panel). image_keys: the projected keyframes of
    an `images` walk (jobs.projected)."""
    s = s.resolved()
    rows = None
    if s.classes is not None:
        order = parse_classes(s.classes)
        keys = np.asarray(class_latents, dtype=np.float32)[order]
        interp = s.rendered_interp()  # class means: straight lines (latents.class_path)
    elif s.digits is not None:
        order = parse_digits(s.digits)
        keys, rows = digit_keyframes(order, *(bank if bank is not None else (None, None)), source=source)
        if keys.shape[1] != z_dim:
            raise UserError(f"{source}: its digit encodings have z_dim {keys.shape[1]} but its generator takes "
                            f"{z_dim}; the file is corrupt")
        interp = s.interp
    else:
        if s.images is not None:
            if image_keys is None:
                raise UserError("--images needs the checkpoint to project into; render it through checkpoint_path")
            keys = np.asarray(image_keys, dtype=np.float32)
        elif s.seeds is not None:
            keys = seed_latents(parse_seeds(s.seeds), z_dim)
        elif s.keyframes_file:
            keys = load_keyframes(s.keyframes_file, z_dim)
        elif from_bank(s, bank, z_dim):
            rows = np.asarray(rows_given if rows_given is not None else default_rows(s, bank, generators),
                              dtype=np.int64)
            keys = np.asarray(bank[0], dtype=np.float32)[rows]
        else:  # --random-keyframes, or a checkpoint that stores no encodings
            keys = walk_keyframes(s.seed, s.keyframes, z_dim)
        interp = s.interp
    from pipeline.audio.music import speed_weights

    timing = dict(loop=s.loop, ease=s.ease, repeat_keyframes=s.repeat_keyframes, timeline=s.timeline(len(keys)),
                  pacing=pace_maps(s, keys, interp, generators) if s.pace == "uniform" else None,
                  speed=speed_weights(s, s.frames))
    if s.classes is not None:
        return keys, class_path(class_latents, order, s.frames, **timing), None
    return keys, walk_path(keys, s.frames, interp=interp, **timing), rows


def default_rows(s: WalkSettings, bank, generators) -> np.ndarray:
    """The default stored-digit keyframes' bank rows (jobs.keyframes), chosen for this walk's interpolation,
    easing and pacing on these generators' renders."""
    from pipeline.jobs.keyframes import default_keyframe_rows

    return default_keyframe_rows(s.seed, s.keyframes, bank[1], generators, [bank[0]], s.interp, s.ease, s.pace)


def pace_maps(s: WalkSettings, keys: np.ndarray, interp: str, generators) -> list | None:
    """The even-pacing maps of a walk (scene.pacing), measured on a small render of the same framing of every
    generator given (their changes summed); None with fewer than two keyframes or no generator."""
    from pipeline.latents import segment_latents
    from pipeline.scene.pacing import PROXY_SIDE, SAMPLES, transition_maps

    if len(keys) < 2 or not generators:
        return None
    width, height = s.canvas()
    shorter = min(width, height)
    side = min(PROXY_SIDE, shorter)  # a small canvas is its own proxy
    pw, ph = max(2, round(side * width / shorter)), max(2, round(side * height / shorter))
    n_segments = len(keys) if s.loop else len(keys) - 1
    samples = int(min(SAMPLES, max(16, 8 * s.frames // n_segments)))  # 8 per frame is smooth; 240 at most
    renderers = [Renderer(g, ph, pw, scale=s.scale, path="auto", device=s.device) for g in generators]
    try:
        def render(latents):
            return sum(r.render_float(latents.astype(np.float32)).numpy().astype(np.float64) for r in renderers)

        return transition_maps(lambda seg, u: segment_latents(keys, seg, u, interp, s.loop), n_segments, render,
                               samples)
    finally:
        for r in renderers:
            r.close()


def path_latents(settings: WalkSettings, z_dim: int, class_latents: torch.Tensor | None,
                 digit_bank: tuple | None = None, source: str = "the checkpoint") -> tuple[np.ndarray, np.ndarray]:
    """(keyframes [K, z_dim], per-frame latents [frames, z_dim]) of a walk, class transition or digit walk.

    class_latents [10, Z] is used by `classes`; digit_bank (latents [N, Z], labels [N]) by `digits`
    (None: the checkpoint stores no encodings, a UserError naming `source` and the fixes).
    """
    keys, latents, _ = _path(settings, z_dim, class_latents, digit_bank, source)
    return keys, latents


def checkpoint_path(settings: WalkSettings, ck: Checkpoint, generators=None, rows=None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The path of `settings` through this checkpoint's own latents (class means, digit encodings).

    Returns (keyframes [K, Z], per-frame latents [frames, Z], the keyframes' rows in the checkpoint's
    digit bank [K] for a `digits` walk, else None). generators: what even pacing measures (default: this
    checkpoint's own).
    """
    image_keys = None
    if getattr(settings, "images", None) is not None:  # pictures of digits projected into this checkpoint
        from pipeline.jobs.projected import project_keyframes

        image_keys, _ = project_keyframes(settings.images, ck, settings.projection_steps)
    return _path(settings, ck.z_dim, ck.class_latents, digit_bank(ck), f"checkpoint {ck.name}",
                 (ck.generator,) if generators is None else generators, rows, image_keys)


def stored_keyframes(settings) -> bool:
    """Whether a walk's keyframes are the default stored real digits (no path chosen, not --random-keyframes)."""
    return (not getattr(settings, "random_keyframes", True) and settings.digits is None and settings.classes is None
            and settings.seeds is None and settings.keyframes_file is None
            and getattr(settings, "images", None) is None)


def from_bank(settings, bank, z_dim: int) -> bool:
    """Whether a walk takes the default stored digits from this checkpoint's digit bank (None: it has none):
    its keyframes are the default ones and the bank's latents are of this z size."""
    return stored_keyframes(settings) and bank is not None and np.asarray(bank[0]).shape[-1] == z_dim


def path_kind(settings) -> str:
    """What a walk's keyframes are: "classes" (class means), "digits" (real digits, given or the default),
    "images" (pictures projected into the checkpoint) or "walk" (latents that do not depend on the checkpoint:
    random, seeds, a file)."""
    if settings.classes is not None:
        return "classes"
    if getattr(settings, "images", None) is not None:
        return "images"
    return "digits" if settings.digits is not None or stored_keyframes(settings) else "walk"


def path_info(settings, rows: np.ndarray | None, labels=None) -> dict:
    """Sidecar entries describing a digit walk's keyframes (empty for other paths); labels: the bank's [N]."""
    if rows is None:
        return {}
    digits = (parse_digits(settings.digits) if settings.digits is not None
              else [int(np.asarray(labels).reshape(-1)[r]) for r in rows])
    return {"keyframe_digits": digits, "digit_bank_rows": [int(r) for r in rows]}


def checkpoint_record(ck: Checkpoint) -> dict:
    return {"path": str(ck.path), "name": ck.name, "sha256": ck.sha256, "family": ck.family,
            "epoch": ck.epoch, "kind": ck.kind}


def walk_sidecar(s: WalkSettings, ck: Checkpoint, out: Path, fmt: str, keys: np.ndarray, frames: int,
                 bank_rows, render_path: str, device: str, seconds: float, **extra) -> dict:
    """The sidecar of a walk video (render_walk's and the segmented render's, which adds `extra`)."""
    width, height = s.canvas()
    return {
        **header(path_kind(s), out, width, height, s, fmt=fmt, frames=frames, timeline=s.timeline(len(keys))),
        "checkpoint": checkpoint_record(ck),
        "keyframes": keys, **path_info(s, bank_rows, ck.digit_labels), **projection_record(s, ck),
        "render_path": render_path, "device": device,
        "seconds": round(seconds, 3), "frames_per_second": round(frames / seconds, 3), **extra,
    }


def walk_camera(settings, start: int = 0, stop: int | None = None):
    """The camera of frames [start, stop) of a walk or comparison (scene.camera.CameraTrack), or None when it never
    leaves the still's framing. Decided for the whole video, so a frame's bytes never depend on its segment."""
    s = settings.resolved() if hasattr(settings, "resolved") else settings
    track = camera_track(s, getattr(s, "frames", None) or 1)
    return None if track is None else track[start:stop]


@dataclass
class PreparedWalk:
    """A walk whose inputs all checked out: what render_walk and the segmented render start from."""
    settings: WalkSettings        # resolved (frames worked out)
    out: Path
    fmt: str
    ck: Checkpoint
    keys: np.ndarray              # keyframes [K, Z]
    latents: np.ndarray           # every frame's latent [frames, Z]
    bank_rows: np.ndarray | None  # the keyframes' rows in the checkpoint's digit bank (digit walks)


def prepare_walk(ckpt, out, settings: WalkSettings, rows=None) -> PreparedWalk:
    """The checks every walk render makes before its first frame (settings, output format, size and folder,
    the checkpoint, outputs that would replace inputs) and its latent path."""
    s = settings
    s.validate()
    s = s.resolved()
    out = Path(out)
    fmt = output_format(out, s.fmt)
    check_video_size(s.canvas(), fmt)
    check_writable(out, fmt)
    check_images(s)  # every picture readable, before the checkpoint loads
    ck = _checkpoint(ckpt)
    check_not_input(out, [ck.path, s.keyframes_file, *image_inputs(s)])
    check_soundtrack(out, fmt, s)
    s, rows = framed_walk(s, ck, rows)
    keys, latents, bank_rows = checkpoint_path(s, ck, rows=rows)
    return PreparedWalk(s, out, fmt, ck, keys, latents, bank_rows)


def framed_walk(s: WalkSettings, ck: Checkpoint, rows=None) -> tuple[WalkSettings, np.ndarray | None]:
    """The settings with their scale decided (scale None: jobs.framing's automatic margin around the keyframes;
    with a camera, the training scale) and the default keyframes' bank rows: `rows` when given (a replay's
    recorded ones), else those it chose when it needed them (else None)."""
    from pipeline.jobs import framing

    if s.scale is not None:
        return s, rows
    if framing.has_camera(s):
        return replace(s, scale=framing.TRAINING_SCALE), rows
    bank = digit_bank(ck)
    if rows is None and from_bank(s, bank, ck.z_dim):
        rows = default_rows(s, bank, (ck.generator,))  # chosen for the walk's own pacing, not the probe's
    keys, _, rows = checkpoint_path(framing.probe_settings(s), ck, rows=rows)
    return replace(s, scale=framing.auto_scale([ck.generator], keys, s.canvas())), rows


def soundtrack_hook(settings):
    """What a video writer runs on its finished temp MP4 to add --audio's sound (None without it)."""
    if getattr(settings, "audio", None) is None:
        return None
    from pipeline.audio.mux import mux_audio

    return lambda tmp, frames: mux_audio(tmp, settings, frames)


def check_soundtrack(out, fmt: str, settings) -> None:
    """--audio goes into MP4 only, and the output never replaces the track (pipeline.audio)."""
    from pipeline.audio.music import check_music_format
    from pipeline.audio.mux import check_not_audio

    check_music_format(settings, fmt)
    check_not_audio(out, settings)


def render_walk(ckpt, out, settings: WalkSettings = WalkSettings(), progress: Progress | None = None,
                rows=None) -> dict:
    """Render a latent walk (class transition, real-digit walk) video from a checkpoint in this process; returns
    the sidecar. `settings.workers` is honoured by jobs.kinds.run_walk (the CLI, batch and replay run walks
    through it), which renders segments in parallel when it is above 1.

    Every input is checked and ffmpeg is probed before the first frame renders; the video appears at
    `out` only when complete, with `<out>.json` beside it holding everything needed to reproduce it.
    """
    w = prepare_walk(ckpt, out, settings, rows)  # rows: the default keyframes' bank rows, when given (replay)
    s, out, fmt, ck, keys, latents, bank_rows = w.settings, w.out, w.fmt, w.ck, w.keys, w.latents, w.bank_rows
    width, height = s.canvas()
    colours = palette_of(s)
    probe(fmt, (width, height), fps=s.fps, crf=s.crf, preset=s.preset, lossless=s.lossless, palette=colours)
    if progress is not None:
        progress(0)  # checks passed: rendering starts
    t0 = time.perf_counter()
    with Renderer(ck.generator, height, width, scale=s.scale, path=s.path, device=s.device) as renderer:
        batch = s.batch or default_batch(height, width, renderer.device)
        from pipeline.jobs.encoders import open_encoders, stream_split, walk_encoders

        encoders, threads = walk_encoders(s, renderer.device.type)  # several x264 encodes joined (issue 26)
        with open_encoders(out, (width, height), len(latents), encoders, threads, fmt=fmt, fps=s.fps, crf=s.crf,
                           preset=s.preset, lossless=s.lossless, palette=colours,
                           before_publish=soundtrack_hook(s)) as writer:
            stream_split(renderer, latents, writer, batch, s.invert, progress, camera=walk_camera(s))
            writer.finish()
            seconds = time.perf_counter() - t0
            info = walk_sidecar(s, ck, out, fmt, keys, len(latents), bank_rows, renderer.path, str(renderer.device),
                                seconds)
            writer.close(sidecar=info)
    return info


def still_latent(settings: StillSettings, ck: Checkpoint) -> tuple[np.ndarray, dict]:
    """The latent [1, Z] of a still and where it came from (for the sidecar).

    digit set: the checkpoint's `sample`-th stored encoding of that real digit (wrapping around the
    ones stored), or the class mean with class_means or when the checkpoint stores no encodings;
    digit unset: a random latent from `seed`.
    """
    s = settings
    if s.image is not None:  # a picture of a digit projected into the checkpoint (jobs.projected)
        from pipeline.jobs.projected import project_keyframes

        z, records = project_keyframes(s.image, ck, s.projection_steps)
        return z[:1], {"kind": "projected image", **records[0]}
    if s.digit is None:
        return walk_keyframes(s.seed, 1, ck.z_dim), {"kind": "random", "seed": s.seed}
    if not 0 <= s.digit < ck.class_latents.shape[0]:
        raise UserError(f"--digit must be 0..{ck.class_latents.shape[0] - 1}, got {s.digit}")
    bank = digit_bank(ck)
    if s.class_means or bank is None:
        why = "asked for (class_means)" if s.class_means else "the checkpoint stores no single-digit encodings"
        return ck.class_latents[s.digit : s.digit + 1].numpy(), {"kind": "class mean", "digit": s.digit,
                                                                 "why": why}
    digit_keyframes([s.digit], *bank, source=f"checkpoint {ck.name}")  # no encoding of this digit: UserError
    rows = np.nonzero(np.asarray(bank[1], dtype=np.int64) == s.digit)[0]
    row = int(rows[s.sample % rows.size])
    return (np.asarray(bank[0][row : row + 1], dtype=np.float32),
            {"kind": "digit encoding", "digit": s.digit, "sample": s.sample, "digit_bank_row": row})


def _write_png(image: np.ndarray, out: Path, info: dict, colours=None) -> None:
    """An image (grey, or RGB through the palette `colours`) and its sidecar, published together (see
    video.publish)."""
    import imageio.v3 as iio

    tmp = temp_sibling(out)
    try:
        iio.imwrite(tmp, image if colours is None else colours.apply(image), extension=".png")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    publish(tmp, out, info)


def _still_info(s: StillSettings, ck: Checkpoint, out: Path, z: np.ndarray, source: dict, render_path: str,
                seconds: float) -> dict:
    return {**header("still", out, *s.canvas(), s), "checkpoint": checkpoint_record(ck), "latent": z[0],
            "latent_source": source, "render_path": render_path, "seconds": round(seconds, 3)}


def render_still(ckpt, out, settings: StillSettings = StillSettings()) -> dict:
    """Render one image (PNG) from a checkpoint; returns the sidecar's contents."""
    s = settings
    s.validate()
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"stills are written as PNG; name the output {out.with_suffix('.png')}")
    check_writable(out, "gif")  # any single-file format: only the directory matters
    check_images(s)  # a bad picture: one line before the checkpoint loads
    ck = _checkpoint(ckpt)
    check_not_input(out, [ck.path, *image_inputs(s)])
    z, source = still_latent(s, ck)
    if s.scale is None:  # the automatic margin around the still's digit (jobs.framing)
        from pipeline.jobs import framing

        s = replace(s, scale=framing.TRAINING_SCALE if framing.has_camera(s) else
                    framing.auto_scale([ck.generator], z, s.canvas()))
    colours = palette_of(s)
    width, height = s.canvas()
    t0 = time.perf_counter()
    with Renderer(ck.generator, height, width, scale=s.scale, path=s.path, device=s.device) as renderer:
        image = renderer.render(z, invert=s.invert, camera=walk_camera(s))[0]  # [H, W] uint8
        render_path = renderer.path
    info = _still_info(s, ck, out, z, source, render_path, time.perf_counter() - t0)
    _write_png(image, out, info, colours)
    return info


SEED_NAME = "seed{:04d}.png"  # stylegan3's gen_images names
GRID_NAME = "grid.png"


def render_stills(ckpt, outdir, seeds, settings: StillSettings = StillSettings(), grid: str | None = None,
                  progress: Progress | None = None) -> list[dict]:
    """One still per seed in `outdir` (seed0017.png, each with its sidecar), in one process with one renderer;
    with grid "CxR" also a contact sheet grid.png of C columns by R rows (filled row by row) beside them.

    seeds: a list of ints or a spec such as "0-31,40". Seed s is the latent of `still --seed s` and the
    keyframe of `walk --seeds ...,s,...`. Returns the sidecars (the grid's last when asked for).
    """
    s = settings
    s.validate()
    if s.digit is not None:
        raise UserError("--seeds renders random latents; leave out --digit (or render digits one --sample at a time)")
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else [int(x) for x in seeds]
    if not seeds:
        raise UserError("no seeds given; give seeds like 0-31,40")
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"--outdir {outdir} is a file; give a folder")
    outs = [outdir / SEED_NAME.format(seed) for seed in seeds]
    width, height = s.canvas()
    colours = palette_of(s)
    columns = rows = 0
    if grid is not None:
        from pipeline.jobs.layout import parse_layout

        columns, rows = parse_layout(grid, len(seeds))
        preflight(columns * width, rows * height, fmt="png", what=f"the contact sheet of a --grid {grid} of --size "
                  f"{s.size}")
        outs.append(outdir / GRID_NAME)
    ck = _checkpoint(ckpt)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --outdir {outdir} ({e.strerror or e}); choose a writable folder") from None
    check_writable(outs[0], "gif")
    for out in outs:
        check_not_input(out, [ck.path])
        check_replaceable(out)  # every still of the sheet, not only the first: before any renders
        check_replaceable(sidecar_path(out))
    latents = seed_latents(seeds, ck.z_dim)
    if s.scale is None:  # one automatic margin for every seed's still (jobs.framing), so a sheet's cells agree
        from pipeline.jobs import framing

        s = replace(s, scale=framing.TRAINING_SCALE if framing.has_camera(s) else
                    framing.auto_scale([ck.generator], latents, s.canvas()))
    background = 255 if s.invert else 0
    sheet = np.full((rows * height, columns * width), background, np.uint8) if grid is not None else None
    infos = []
    if progress is not None:
        progress(0)
    with Renderer(ck.generator, height, width, scale=s.scale, path=s.path, device=s.device) as renderer:
        for i, (seed, out) in enumerate(zip(seeds, outs)):
            t0 = time.perf_counter()
            z = latents[i : i + 1]
            image = renderer.render(z, invert=s.invert, camera=walk_camera(s))[0]  # [H, W] uint8
            info = _still_info(replace(s, seed=seed), ck, out, z, {"kind": "random", "seed": seed},
                               renderer.path, time.perf_counter() - t0)
            _write_png(image, out, info, colours)
            infos.append(info)
            if sheet is not None:
                r, c = divmod(i, columns)
                sheet[r * height:(r + 1) * height, c * width:(c + 1) * width] = image
            if progress is not None:
                progress(1)
    if sheet is not None:
        info = {**header("still grid", outs[-1], sheet.shape[1], sheet.shape[0], s), "columns": columns, "rows": rows,
                "seeds": seeds, "cells": [str(p.name) for p in outs[:-1]], "checkpoint": checkpoint_record(ck)}
        _write_png(sheet, outs[-1], info, colours)
        infos.append(info)
    return infos
