"""Side-by-side comparison videos: several checkpoints on one latent path, one captioned panel each."""
from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.checkpoint import Checkpoint, load_checkpoint
from pipeline.errors import UserError
from pipeline.jobs.projected import check_images, image_inputs, projection_record
from pipeline.jobs.sidecar import header
from pipeline.scene.palette import palette_of
from pipeline.jobs.framing import TRAINING_SCALE
from pipeline.jobs.encoders import open_encoders, stream_frames, walk_encoders
from pipeline.jobs.mosaic import Mosaic, PanelClock
from pipeline.jobs.layout import Geometry, caption_height, grid_geometry  # noqa: F401 (caption_height: API)
from pipeline.jobs.render import (check_soundtrack, checkpoint_record, checkpoint_path, digit_bank, path_info,
                                  path_kind, soundtrack_hook, stored_keyframes, walk_camera)
from pipeline.jobs.settings import CompareSettings, Progress, WalkSettings
from pipeline.render import Renderer, default_batch
from pipeline.provenance import check_not_input
from pipeline.video import check_writable, output_format, probe

_CANVAS_BUDGET = 256 * 2**20  # bytes of composed frames per batch (the writer queues two more copies)
_MIN_FONT = 6  # px; below this a caption is unreadable anyway, so it is clipped instead of shrunk further


_FAMILY_WORDS = {"prev": "previous model", "resnet": "resnet"}


def default_label(ck) -> str:
    """The checkpoint's name (file stem or bundled name) and what it is: 'e24 (resnet, 24 epochs)',
    'prev (previous model, 24 epochs)'; just the name when it records no epoch."""
    if ck.epoch is None:
        return ck.name
    family = _FAMILY_WORDS.get(ck.family, ck.family)
    return f"{ck.name} ({family}, {ck.epoch} epoch{'s' if ck.epoch != 1 else ''})"


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, ImportError, OSError, AttributeError):
        return ImageFont.load_default()  # older Pillow: the fixed bitmap font


def render_caption(label: str, width: int, height: int, invert: bool = False) -> np.ndarray:
    """A caption strip: `label` centred on the panels' background colour, uint8 [height, width].

    The font scales with the strip (60% of its height) and shrinks until the label fits the width.
    """
    from PIL import Image, ImageDraw

    bg, fg = (255, 0) if invert else (0, 255)  # the panels' background, so the strip continues the panel
    img = Image.new("L", (width, height), bg)
    draw = ImageDraw.Draw(img)
    size = max(_MIN_FONT, round(height * 0.6))
    while True:
        font = _font(size)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        if right - left <= width - 4 or size <= _MIN_FONT:
            break
        size -= 1
    x = (width - (right - left)) / 2 - left
    y = (height - (bottom - top)) / 2 - top
    draw.text((x, y), label, fill=fg, font=font)
    return np.asarray(img, dtype=np.uint8)


def _template(geo: Geometry, labels: list[str], invert: bool) -> np.ndarray:
    """The frame with background and captions drawn, panels left blank: uint8 [H, W]."""
    frame = np.full((geo.height, geo.width), 255 if invert else 0, dtype=np.uint8)
    for i, label in enumerate(labels):
        x, y = geo.origin(i)
        frame[y + geo.panel : y + geo.panel + geo.caption, x : x + geo.panel] = render_caption(
            label, geo.panel, geo.caption, invert)
    return frame


def _labels(labels, cks) -> list[str]:
    if labels is None:
        return [default_label(ck) for ck in cks]
    if isinstance(labels, str):
        labels = labels.split(",")
    return [str(label).strip() for label in labels]  # as many as cks: CompareSettings.check


def _latents_note(walk: WalkSettings) -> str:
    if walk.classes is not None:
        return ("per checkpoint: the same class order and timing, but each panel uses its own checkpoint's "
                "class latents (they differ per model)")
    if walk.digits is not None:
        return ("per checkpoint: the same digit sequence and timing, but each panel uses its own checkpoint's "
                "stored encodings of real digits (they differ per model)")
    if path_kind(walk) == "images":
        return "per checkpoint: each panel's keyframes are the images projected into its own checkpoint"
    if path_kind(walk) == "digits":
        return ("per checkpoint: the same seeded choice from each checkpoint's stored encodings of real digits "
                "(--random-keyframes: one shared random path)")
    return "shared: every panel renders the same latents"


def _shared_default_rows(walk: WalkSettings, cks: list):
    """The default stored-digit keyframes chosen once, on every panel's renders, when every checkpoint stores the
    same bank of real digits (as the bundled ones do): each panel then shows its own encodings of the same
    digits. None otherwise (each panel chooses its own)."""
    banks = [digit_bank(ck) for ck in cks]
    if not stored_keyframes(walk) or any(b is None for b in banks):
        return None
    labels = np.asarray(banks[0][1])
    if any(not np.array_equal(np.asarray(b[1]), labels) for b in banks[1:]):
        return None
    from pipeline.jobs.keyframes import default_keyframe_rows

    return default_keyframe_rows(walk.seed, walk.keyframes, labels, [ck.generator for ck in cks],
                                 [b[0] for b in banks], walk.interp, walk.ease, walk.pace)


def compare_scale(walk: WalkSettings, cks: list, rows, panel: tuple[int, int]) -> float:
    """The automatic scale of a comparison (jobs.framing): one for every panel, the smallest that keeps every
    panel's own keyframes (its checkpoint's class means, digit encodings or projections; `rows`: the shared
    default digits) inside its panel of `panel` (width, height). One scale, not one a panel, so the panels
    show the same square of the plane and a difference between them is the models', not the zoom's. With a
    camera: the training scale, the camera's units being the user's."""
    from pipeline.jobs import framing

    if framing.has_camera(walk):
        return TRAINING_SCALE
    probe = framing.probe_settings(walk)
    if path_kind(walk) == "walk":
        keys = checkpoint_path(probe, cks[0], ())[0]
        extents = [framing.ink_extents([ck.generator for ck in cks], keys)]
    else:
        extents = [framing.ink_extents([ck.generator], checkpoint_path(probe, ck, (ck.generator,), rows)[0])
                   for ck in cks]
    return framing.scale_for(np.concatenate(extents), panel)


def render_compare(ckpts: list, out, settings: CompareSettings = CompareSettings(),
                   progress: Progress | None = None, panel_times=None) -> dict:
    """Render checkpoints side by side on one latent path into one video; returns the sidecar's contents.

    Geometry: panels of panel_size x panel_size, each with a caption strip of caption_height(panel_size)
    pixels below it (80 px at 1080), laid out `layout` = C columns by R rows, filled row by row; the video
    is C * panel_size wide and R * (panel_size + caption) high (both even for MP4, since panel_size must be
    even). 3 panels of 1080 in a row: 3240 x 1160. Unused cells stay background.

    Every panel renders the same latents (same seed, keyframes, easing). Class transitions (`classes`) and
    real-digit walks (`digits`) go through the same order with the same timing, but each panel uses its
    own checkpoint's class latents or stored digit encodings, since those differ per model (every
    checkpoint must store encodings for `digits`). All checks (settings, output, checkpoints, latent sizes,
    labels, layout, ffmpeg probe, render path) run before the first frame; the video appears at `out`
    only when complete, with `<out>.json` beside it.
    """
    s = settings  # scale None: one automatic scale for every panel (compare_scale), decided below
    out = Path(out)
    fmt = output_format(out, s.fmt)
    geo = s.check(len(ckpts), fmt)
    walk = s.walk().resolved()
    frames = walk.frames
    columns, rows = geo.columns, geo.rows
    check_writable(out, fmt)
    check_images(walk)  # every picture readable, before the checkpoints load
    cks = [c if isinstance(c, Checkpoint) else load_checkpoint(c) for c in ckpts]
    check_not_input(out, [ck.path for ck in cks] + [s.keyframes_file, *image_inputs(walk)])
    check_soundtrack(out, fmt, s)
    z_dims = {ck.z_dim for ck in cks}
    if len(z_dims) > 1:
        sizes = ", ".join(f"{ck.name}: {ck.z_dim}" for ck in cks)
        raise UserError(f"the checkpoints have different latent sizes ({sizes}), so they cannot share a "
                        f"latent path; compare checkpoints with the same z size")
    labels = _labels(s.labels, cks)
    colours = palette_of(s)
    chosen = None if path_kind(walk) == "walk" else _shared_default_rows(walk, cks)
    if s.scale is None:
        scale = compare_scale(walk, cks, chosen, (geo.panel, geo.ph))
        s, walk = replace(s, scale=scale), replace(walk, scale=scale)
    if path_kind(walk) == "walk":  # the same keyframes in every panel: one path, paced on all of them together
        paths = [checkpoint_path(walk, cks[0], [ck.generator for ck in cks])] * len(cks)
    else:  # each panel's own class means or digit encodings (and its own pacing between them)
        paths = [checkpoint_path(walk, ck, rows=chosen) for ck in cks]  # (keys [K, Z], latents [N, Z], bank rows) each
    probe(fmt, (geo.width, geo.height), fps=s.fps, crf=s.crf, preset=s.preset, lossless=s.lossless, palette=colours)
    camera = walk_camera(walk)

    t0 = time.perf_counter()
    with ExitStack() as stack:
        # One renderer per checkpoint, built once (coordinates, kernels) and before progress(0), so an
        # unavailable path or device fails like any other bad input.
        renderers = [stack.enter_context(Renderer(ck.generator, geo.ph, geo.panel, scale=s.scale,
                                                  path=s.path, device=s.device)) for ck in cks]
        if progress is not None:
            progress(0)  # checks passed: rendering starts
        device = renderers[0].device
        batch = s.batch or max(1, min(default_batch(geo.ph, geo.panel, device),
                                      _CANVAS_BUDGET // (geo.width * geo.height)))
        # Captions and background are drawn once; each batch only overwrites the panels.
        mosaic = Mosaic(_template(geo, labels, s.invert), batch)
        clock = PanelClock(len(cks), device)

        def compose(start: int, stop: int):
            b = stop - start
            cam = None if camera is None else camera[start:stop]  # every panel shares the camera
            for i, (renderer, (_, latents, _)) in enumerate(zip(renderers, paths)):
                def panel():
                    return renderer.render_tensor(latents[start:stop], invert=s.invert, camera=cam)  # [b, P, P]

                # The first batch carries each renderer's warm-up, so it is not timed.
                mosaic.place(clock.timed(i, b, panel) if start else panel(), *geo.origin(i))
            if start and panel_times is not None:
                per_frame = clock.per_frame()
                if None not in per_frame:
                    panel_times(per_frame)  # seconds per frame of each panel
            return mosaic.frames(b)  # the reused canvas: copied by the writer, or into a pinned slot on a GPU

        encoders, threads = walk_encoders(s, device.type)  # several x264 encodes joined (issue 26)
        with open_encoders(out, (geo.width, geo.height), frames, encoders, threads, fmt=fmt, fps=s.fps, crf=s.crf,
                           preset=s.preset, lossless=s.lossless, palette=colours,
                           before_publish=soundtrack_hook(s)) as writer:
            stream_frames(compose, device, frames, writer, batch, progress, fresh=False)
            writer.finish()
            seconds = time.perf_counter() - t0
            panels, per_frame = [], clock.per_frame(wait=True)
            for i, (ck, label, (keys, _, bank_rows)) in enumerate(zip(cks, labels, paths)):
                x, y = geo.origin(i)
                spent = None if per_frame[i] is None else round(per_frame[i], 4)
                panels.append({**checkpoint_record(ck), "label": label, "x": x, "y": y,
                               "seconds_per_frame": spent, "keyframes": keys,
                               **path_info(walk, bank_rows, ck.digit_labels), **projection_record(walk, ck)})
            info = header("compare", out, geo.width, geo.height, s, fmt=fmt, frames=frames,
                          timeline=walk.timeline(len(paths[0][0])))
            info["settings"]["labels"] = labels
            info.update({
                "layout": {"columns": columns, "rows": rows, "panel_size": geo.panel, "panel_height": geo.ph,
                           "caption_height": geo.caption},
                "path": path_kind(walk),
                "latents": _latents_note(walk),
                "checkpoints": panels,
                "render_path": ",".join(sorted({r.path for r in renderers})), "device": str(renderers[0].device),
                "seconds": round(seconds, 3), "frames_per_second": round(frames / seconds, 3),
            })
            writer.close(sidecar=info)
    return info


def grid_scale(s: WalkSettings, ck: Checkpoint, cell_settings: list) -> float:
    """The automatic scale of a --grid walk (jobs.framing): one for every cell, the smallest that keeps every
    cell's keyframes inside a cell, so the cells show the same square of the plane; with a camera the training
    scale."""
    from pipeline.jobs import framing

    if framing.has_camera(s):
        return TRAINING_SCALE
    keys = np.concatenate([checkpoint_path(framing.probe_settings(cs), ck, ())[0]
                           for cs in cell_settings])
    return framing.auto_scale([ck.generator], keys, s.canvas())


def render_walk_grid(ckpt, out, settings: WalkSettings, grid: str, progress: Progress | None = None) -> dict:
    """Several walks of one checkpoint side by side, as stylegan3's gen_video --grid: the --seeds are shared
    out in order, len(seeds) / (C x R) keyframes per cell (e.g. --grid 4x2 --seeds 0-31: 4 per cell), cells
    filled row by row, each size x size with no caption. Every cell has the same timing (frames, easing,
    loop), so frame i of cell j is frame i of `walk --seeds <cell j's seeds>`. Returns the sidecar.
    """
    s = settings  # scale None: one automatic scale for every cell (grid_scale), decided below
    out = Path(out)
    fmt = output_format(out, s.fmt)
    geo, cell_settings = grid_geometry(s, grid, fmt)
    frames = cell_settings[0].frames
    cw, ch = s.canvas()
    check_writable(out, fmt)
    ck = ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt)
    check_not_input(out, [ck.path])
    check_soundtrack(out, fmt, s)
    if s.scale is None:
        s = replace(s, scale=grid_scale(s, ck, cell_settings))
        cell_settings = [replace(cs, scale=s.scale) for cs in cell_settings]
    paths = [checkpoint_path(cs, ck) for cs in cell_settings]  # (keys, latents [frames, Z], None) per cell
    colours = palette_of(s)
    probe(fmt, (geo.width, geo.height), fps=s.fps, crf=s.crf, preset=s.preset, lossless=s.lossless, palette=colours)
    t0 = time.perf_counter()
    with Renderer(ck.generator, ch, cw, scale=s.scale, path=s.path, device=s.device) as renderer:
        if progress is not None:
            progress(0)
        batch = s.batch or max(1, min(default_batch(ch, cw, renderer.device),
                                      _CANVAS_BUDGET // (geo.width * geo.height)))
        mosaic = Mosaic(np.zeros((geo.height, geo.width), np.uint8), batch)
        camera = walk_camera(cell_settings[0])  # every cell has the same timing, so the same camera

        def compose(start: int, stop: int):
            cam = None if camera is None else camera[start:stop]
            for i, (_, latents, _) in enumerate(paths):
                mosaic.place(renderer.render_tensor(latents[start:stop], invert=s.invert, camera=cam),
                             *geo.origin(i))
            return mosaic.frames(stop - start)  # the reused canvas: copied by the writer (or into a pinned slot)

        encoders, threads = walk_encoders(s, renderer.device.type)  # several x264 encodes joined (issue 26)
        with open_encoders(out, (geo.width, geo.height), frames, encoders, threads, fmt=fmt, fps=s.fps, crf=s.crf,
                           preset=s.preset, lossless=s.lossless, palette=colours,
                           before_publish=soundtrack_hook(s)) as writer:
            stream_frames(compose, renderer.device, frames, writer, batch, progress, fresh=False)
            writer.finish()
            seconds = time.perf_counter() - t0
            info = {
                **header("walk grid", out, geo.width, geo.height, s, fmt=fmt, frames=frames,
                         timeline=cell_settings[0].timeline(len(paths[0][0]))),
                "grid": {"columns": geo.columns, "rows": geo.rows}, "checkpoint": checkpoint_record(ck),
                "cells": [{"seeds": cs.seeds, "x": geo.origin(i)[0], "y": geo.origin(i)[1], "keyframes": keys}
                          for i, (cs, (keys, _, _)) in enumerate(zip(cell_settings, paths))],
                "render_path": renderer.path, "device": str(renderer.device),
                "seconds": round(seconds, 3), "frames_per_second": round(frames / seconds, 3),
            }
            writer.close(sidecar=info)
    return info
