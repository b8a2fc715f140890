"""Encoders sized to the box: how many x264 encoders one renderer feeds and how the cores divide between renderers
and encoders (issue 26: one GPU renders ~1,800 fps, one x264 medium encoder ~40-50 fps per core, so the encoder is
the limit unless several run, each held to its share of the cores).

A renderer with `encoders` > 1 feeds a SplitWriter: the video is cut into that many contiguous frame ranges
(jobs.joins.segment_bounds), each its own x264 encode with its own thread budget; the renderer renders their
batches round robin, so every encoder has work at once, and the encodes are joined without re-encoding
(jobs.joins.join_segments), as segment workers' are: lossless output is the same bytes for any count."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import temp_sibling
from pipeline.errors import UserError
from pipeline.jobs.joins import join_segments, segment_bounds
from pipeline.provenance import publish
from pipeline.video import check_output, open_writer, output_format

CORES_PER_ENCODER = 4  # auto: one encoder per this many cores when a GPU renders (issue 26's "roughly cores/4")


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count: containers, taskset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_encoders(value) -> int | None:
    """--encoders N|auto: a count >= 1, or None for auto. Raises UserError (one line)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if isinstance(value, bool) or n < 1 or str(n) != str(value).strip():
        raise UserError(f"--encoders must be a whole number >= 1 or 'auto', got {value!r}")
    return n


def auto_encoders(device_type: str, cores: int, workers: int = 1) -> int:
    """Encoders per renderer when none is asked for: on a GPU (cores // workers) // CORES_PER_ENCODER, at least
    1; on the CPU 1 (the renderer already uses every core, and a split encoder only adds start-up)."""
    if device_type != "cuda":
        return 1
    return max(1, (max(1, cores) // max(1, workers)) // CORES_PER_ENCODER)


@dataclass(frozen=True)
class CoreBudget:
    """Threads for each renderer's torch and for each of its encoders."""
    render_threads: int
    encoder_threads: int
    encoders: int

    def total(self, workers: int = 1, gpu: bool = True) -> int:
        """Threads started by `workers` renderers with their encoders (on the CPU renderer and encoders take
        turns on the same cores, so only the larger of the two counts)."""
        enc = self.encoders * self.encoder_threads
        return workers * (self.render_threads + enc if gpu else max(self.render_threads, enc))


def split_cores(cores: int, workers: int = 1, encoders: int | None = None, device_type: str = "cpu") -> CoreBudget:
    """Divide `cores` between `workers` renderers and their encoders (None: auto_encoders). On a GPU a renderer
    needs one host thread and its encoders share the rest; on the CPU the renderer's torch takes all of its
    share (rendering and encoding alternate batch by batch) and the encoders split the same share. Never more
    threads than cores unless each part would get less than one."""
    cores, workers = max(1, int(cores)), max(1, int(workers))
    n = auto_encoders(device_type, cores, workers) if encoders is None else int(encoders)
    share = max(1, cores // workers)
    if device_type == "cuda":
        return CoreBudget(1, max(1, (share - 1) // n), n)
    return CoreBudget(share, max(1, share // n), n)


class SplitWriter:
    """`encoders` MP4 encoders, one per contiguous frame range of a video of `frames` frames, joined losslessly
    into `path` on close. Same contract as video.VideoWriter (write/finish/close/abort, context manager), plus
    write_segment for a renderer that feeds the ranges round robin (stream_split)."""

    def __init__(self, path, size, frames: int, encoders: int, threads: int | None = None, fps=30, crf=18,
                 preset="medium", lossless=False, palette=None, before_publish=None, queue_batches: int = 2):
        self.path = Path(path)
        self.width, self.height = size
        self.frames = int(frames)
        self.bounds = segment_bounds(self.frames, encoders)
        self.before_publish = before_publish
        self._tmpdir = temp_sibling(self.path, "encoders")
        self._tmpdir.mkdir()
        self._joined = self._tmpdir / "joined.mp4"
        self._closed = False
        self._finished = False
        self.writers = []
        try:
            for i in range(len(self.bounds)):
                self.writers.append(open_writer(self._tmpdir / f"segment_{i:03d}.mp4", size, fps=fps, fmt="mp4",
                                                crf=crf, preset=preset, lossless=lossless, palette=palette,
                                                queue_batches=queue_batches, threads=threads))
        except BaseException:
            self.abort()
            raise
        self.command = self.writers[0].command

    @property
    def frames_written(self) -> int:
        return sum(w.frames_written for w in self.writers)

    def __enter__(self) -> "SplitWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def write_segment(self, index: int, frames, copy: bool = True) -> None:
        self.writers[index].write(frames, copy=copy)

    def write(self, frames, copy: bool = True) -> None:
        """Frames in video order (a plain sequential caller): each goes to the range it falls in."""
        import numpy as np

        if hasattr(frames, "release"):  # a host slot (render.host_ring) may span two ranges: take its bytes
            lease = frames
            try:
                lease.wait()
                frames, copy = np.array(lease.array), False
            finally:
                lease.release()
        arr = np.asarray(frames)
        arr = arr[None] if arr.ndim == 2 else arr
        pos = self.frames_written
        while len(arr):
            i = next(k for k, (a, b) in enumerate(self.bounds) if a <= pos < b)
            take = self.bounds[i][1] - pos
            self.writers[i].write(arr[:take], copy=copy)
            arr, pos = arr[take:], pos + min(take, len(arr))

    def finish(self) -> None:
        """Every encoder finished and the ranges joined (at a temp name until close)."""
        if self._finished:
            return
        try:
            parts = [w.close() for w in self.writers]  # each read back (frame count) before the join
            join_segments(parts, self._joined)
        except BaseException:
            self.abort()
            raise
        self._finished = True

    def close(self, sidecar: dict | None = None) -> Path:
        if self._closed:
            return self.path
        try:
            self.finish()
            if self.before_publish is not None:
                self.before_publish(self._joined, self.frames_written)
            check_output(self._joined, self.path, "mp4", self.width, self.height, self.frames_written)
            publish(self._joined, self.path, sidecar)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        shutil.rmtree(self._tmpdir, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in self.writers:
            w.abort()
        shutil.rmtree(self._tmpdir, ignore_errors=True)


def open_encoders(path, size, frames: int, encoders: int, threads: int | None = None, fmt: str | None = None,
                  **kw):
    """A writer with `encoders` encoders at `threads` each: a SplitWriter for an MP4 of more than one frame per
    encoder, else one video.VideoWriter (GIF and PNG are one stream; kw: open_writer's settings)."""
    fmt = output_format(Path(path), fmt)
    n = max(1, min(int(encoders), int(frames)))
    if fmt != "mp4" or n == 1:
        return open_writer(path, size, fmt=fmt, threads=threads, **kw)
    return SplitWriter(path, size, frames, n, threads=threads, **kw)


def stream_split(renderer, latents, writer, batch: int, invert: bool, progress=None, camera=None) -> None:
    """Render latents into `writer` (stream_frames), each batch as the renderer made it."""
    def render(start: int, stop: int):
        cam = None if camera is None else camera[start:stop]
        return renderer.render_tensor(latents[start:stop], invert=invert, camera=cam)  # [n, H, W] uint8

    stream_frames(render, renderer.device, len(latents), writer, batch, progress)


def stream_frames(render, device, frames: int, writer, batch: int, progress=None, fresh: bool = True) -> None:
    """Frames [0, frames) into `writer` (stream_batches), where render(start, stop) gives a uint8 tensor
    [stop - start, H, W] on `device` (a torch.device; render is a renderer's render_tensor, or a Mosaic's composed
    frames). Each batch is handed over without a second copy: on the CPU as a numpy view (fresh: a new tensor
    each call, handed over as it is; else the writer copies it, and render may reuse its memory); on a GPU through
    a slot of pinned host memory the batch is copied into asynchronously (render.host_ring), which the writer waits
    on, pipes and gives back while the GPU makes the next batches (a tensor reused on the GPU is safe: the copy is
    queued before the next batch's work on the same stream)."""
    ranges = writer.bounds if isinstance(writer, SplitWriter) else [(0, frames)]
    ring = None
    if device.type == "cuda":
        from pipeline.render.host_ring import HostRing, ring_slots

        ring = HostRing(ring_slots(len(ranges)))

    def host(start: int, stop: int):
        out = render(start, stop)
        if ring is None:
            return out.numpy() if hasattr(out, "numpy") else out
        return ring.put(out)

    try:
        stream_batches(host, frames, writer, batch, progress, fresh=fresh or ring is not None)
    except BaseException:
        if ring is not None:
            ring.abort()  # a renderer waiting for a slot must not outlive the writers (they abort next)
        raise


def stream_batches(render, frames: int, writer, batch: int, progress=None, fresh: bool = True) -> None:
    """Frames [0, frames) into `writer`, `batch` at a time: render(start, stop) gives frames [stop - start, H, W]
    uint8 (an array, or a host slot's lease). A SplitWriter is fed round robin, one batch of each range in turn,
    so all its encoders run while the renderer works (each blocks it only when its own queue is full); any other
    writer gets the frames in order. fresh: render returns a new array every call, handed over without a copy
    (else the writer copies it, and render may reuse its buffer)."""
    ranges = writer.bounds if isinstance(writer, SplitWriter) else [(0, frames)]
    cursors = [a for a, _ in ranges]
    while True:
        active = False
        for i, (a, b) in enumerate(ranges):
            start = cursors[i]
            if start >= b:
                continue
            active = True
            stop = min(b, start + batch)
            out = render(start, stop)
            if isinstance(writer, SplitWriter):
                writer.write_segment(i, out, copy=not fresh)
            else:
                writer.write(out, copy=not fresh)
            cursors[i] = stop
            if progress is not None:
                progress(stop - start)
        if not active:
            return


def walk_encoders(settings, device_type: str, cores: int | None = None, workers: int = 1) -> tuple[int, int | None]:
    """(encoders, threads per encoder) for a render of `settings` on `device_type`. encoders "auto" on the CPU
    keeps what renders did before (one encoder, x264's own thread count: threads None); any other choice
    divides the cores (split_cores)."""
    n = parse_encoders(settings.encoders)
    if n is None and device_type != "cuda":
        return 1, None
    b = split_cores(cpu_cores() if cores is None else cores, workers, n, device_type)
    return b.encoders, b.encoder_threads
