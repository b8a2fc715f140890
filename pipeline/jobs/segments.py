"""One long walk video rendered as contiguous frame segments in parallel processes, joined without re-encoding."""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shutil
import signal
import threading
import time
import warnings
import traceback
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.checkpoint import load_checkpoint
from pipeline import stops
from pipeline.errors import UserError
from pipeline.jobs.render import Progress, WalkSettings, prepare_walk, render_walk, walk_sidecar
from pipeline.render import available_paths, resolve_device
from pipeline.atomic import temp_sibling
from pipeline.provenance import publish
from pipeline.jobs.joins import join_segments, segment_bounds  # noqa: F401 (segment_bounds: API, farm)
from pipeline.video import check_output, output_format, probe

_POLL_S = 0.1  # how often the parent looks at its workers while waiting for messages
_JOIN_S = 10.0  # how long a stopped worker gets to kill its ffmpeg and clean up before it is killed


MIN_CPU_THREADS = 4  # below this many cores per CPU worker, start-up and encoding costs outweigh the split


# ----------------------------------------------------------------------------- the worker process


def _stop_worker(signum, frame):
    # The parent's SIGTERM: unwind through the writer's `with`, which kills this segment's ffmpeg and
    # removes its temp file. Ignore a repeat so the cleanup itself is not interrupted.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def render_segment(ck, latents: np.ndarray, settings: WalkSettings, device: str, threads: int, out,
                   progress: Progress | None = None, start: int = 0, encoder_threads: int | None = None) -> dict:
    """Render one segment's frames (latents [n, Z], already sliced from frame `start` on) into the MP4 `out`, its
    own x264 encode;
    returns its sidecar entry (render_path, device, seconds). The one per-segment render: the local worker
    processes and the Ray farm's segment tasks both call it, so their joined videos are the same bytes.
    threads: torch's; encoder_threads: x264's (None: the same share, jobs.encoders.split_cores on this device).
    settings.encoders > 1 (or auto on a GPU: threads // 4) feeds that many x264 encodes of the segment, joined
    losslessly into `out` (jobs.encoders.open_encoders), as a one-process walk does."""
    import torch

    from pipeline.jobs.encoders import auto_encoders, open_encoders, parse_encoders, split_cores, stream_split
    from pipeline.jobs.render import walk_camera
    from pipeline.render import Renderer, default_batch

    torch.set_num_threads(threads)
    s = settings
    t0 = time.perf_counter()
    from pipeline.scene.palette import palette_of

    width, height = s.canvas()
    with Renderer(ck.generator, height, width, scale=s.scale, path=s.path, device=device,
                  threads=threads) as renderer:
        batch = s.batch or default_batch(height, width, renderer.device)
        encoders = parse_encoders(s.encoders)
        encoders = auto_encoders(renderer.device.type, threads) if encoders is None else encoders
        if encoder_threads is None:  # this worker's share of the cores, divided between torch and its encoders
            encoder_threads = split_cores(threads, 1, encoders, renderer.device.type).encoder_threads
        with open_encoders(out, (width, height), len(latents), encoders, encoder_threads, fmt="mp4", fps=s.fps,
                           crf=s.crf, preset=s.preset, lossless=s.lossless, palette=palette_of(s)) as writer:
            stream_split(renderer, latents, writer, batch, s.invert, progress=progress,
                         camera=walk_camera(s, start, start + len(latents)))
        info = {"render_path": renderer.path, "device": str(renderer.device)}
    info["seconds"] = round(time.perf_counter() - t0, 3)
    return info


def publish_segments(w, parts: list[Path], done: dict, bounds: list[tuple[int, int]], t0: float,
                     tmpdir: Path) -> dict:
    """Join finished segments (in `tmpdir`) losslessly and publish the walk `w.out` with its sidecar
    (render_walk's, plus workers and segments: done[i] is segment i's render_segment entry)."""
    joined = tmpdir / "joined.mp4"
    join_segments(parts, joined)
    from pipeline.audio.mux import mux_audio

    mux_audio(joined, w.settings, len(w.latents))  # the soundtrack once, after the lossless join
    check_output(joined, w.out, "mp4", *w.settings.canvas(), len(w.latents))  # every segment's frames, once
    seconds = time.perf_counter() - t0
    first = done[0]
    info = walk_sidecar(w.settings, w.ck, w.out, w.fmt, w.keys, len(w.latents), w.bank_rows, first["render_path"],
                        first["device"], seconds, workers=len(bounds),
                        segments=[{"index": i, "start": a, "stop": b, **done[i]} for i, (a, b) in enumerate(bounds)])
    publish(joined, w.out, info)
    return info


def _segment_worker(index: int, ckpt_path: str, sha256: str, latents_file: str, start: int, stop: int,
                    settings: WalkSettings, device: str, threads: int, out: str, messages, parent: int) -> None:
    """Render frames [start, stop) of the path in `latents_file` into the MP4 `out`; report
    ("progress", i, n), ("done", i, info) or ("error", i, message, is_user_error) on `messages`."""
    signal.signal(signal.SIGTERM, _stop_worker)

    def report(n: int) -> None:
        if os.getppid() != parent:  # the parent died without stopping us: nobody will join this segment
            raise KeyboardInterrupt
        messages.put(("progress", index, n))

    try:
        latents = np.load(latents_file)[start:stop]  # [n, Z]
        ck = load_checkpoint(ckpt_path)
        if ck.sha256 != sha256:
            raise UserError(f"checkpoint {ckpt_path} changed while rendering (SHA-256 differs); "
                            f"render again from a file that stays put")
        info = render_segment(ck, latents, settings, device, threads, out, progress=report, start=start)
        messages.put(("done", index, info))
    except KeyboardInterrupt:
        pass  # stopped by the parent: it already knows, and cleans up the rest
    except UserError as e:
        messages.put(("error", index, str(e), True))
    except BaseException:  # reported to the parent with its traceback, never lost in a child
        messages.put(("error", index, traceback.format_exc(), False))


# ----------------------------------------------------------------------------- joining


# ----------------------------------------------------------------------------- the job


@contextmanager
def _group_signals_ignored():
    """Start workers deaf to the signals a terminal sends its whole process group (Ctrl-C's SIGINT, and
    SIGHUP when it closes): the parent alone should react, stopping its workers with SIGTERM, rather than
    each worker dying with a traceback halfway through importing torch, or at once with its encoder left
    running.

    In the main thread they are ignored while the workers start (an ignored signal survives exec, and the
    worker keeps it so; see pipeline.stops). Elsewhere (a batch runner's thread) handlers cannot change,
    so the thread blocks them instead: a child inherits its parent thread's signal mask, so the worker never
    receives them, while the process still does (the kernel delivers them to a thread that does not block
    them)."""
    group = {signal.SIGINT, signal.SIGHUP}
    if threading.current_thread() is threading.main_thread():
        old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in group}
        try:
            yield
        finally:
            stops.restore(old)
        return
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, group)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _stop(procs) -> None:
    """Ask every live worker to stop (SIGTERM: it aborts its writer), then kill any that do not exit."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + _JOIN_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def render_walk_segmented(ckpt, out, settings: WalkSettings = WalkSettings(), workers: int | None = None,
                          devices: list[str] | None = None, progress: Progress | None = None, rows=None) -> dict:
    """Render a walk (or class transition) MP4 as `workers` frame segments in parallel processes.

    The latent path is computed once and sliced, so every frame is the one `render_walk` makes; each
    process renders its contiguous range into a temp MP4 beside `out` (its own x264 encode, so it starts
    with a keyframe), with `torch.set_num_threads(cpu_count // workers)` and the device `devices[i %
    len(devices)]` (default: settings.device for all). The segments are joined without re-encoding
    (ffmpeg's concat demuxer, stream copy, +faststart): the joined video has the same frame count as a
    single render, the same frames when both are lossless, and at the same CRF nearly the same quality
    (each segment's rate control starts afresh). Returns the sidecar's contents (render_walk's, plus
    `workers` and `segments`). Ctrl-C or a failing worker stops every worker and leaves nothing at `out`.
    workers=1 is a plain render_walk (on devices[0] when given).
    """
    workers = settings.workers if workers is None else workers  # the argument wins (tests, library callers)
    if int(workers) < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if int(workers) == 1:
        return render_walk(ckpt, out, replace(settings, device=devices[0]) if devices else settings,
                           progress=progress, rows=rows)
    if output_format(Path(out), settings.fmt) != "mp4":
        raise UserError(f"segmented rendering joins MP4 files only, but {Path(out).name} is not; "
                        f"name the output .mp4 or render with one worker")
    w = prepare_walk(ckpt, out, settings, rows)  # the whole path, once: [frames, Z]
    s, out, fmt, ck, latents = w.settings, w.out, w.fmt, w.ck, w.latents
    devices = list(devices) if devices else [s.device]
    for dev in devices:  # an unusable device or path fails here, not in a child a few seconds later
        resolved = resolve_device(dev)
        if s.path != "auto" and s.path not in available_paths(ck.family, resolved):
            raise UserError(f"render path {s.path!r} is not available for a {ck.family} generator on {resolved}; "
                            f"available: {', '.join(available_paths(ck.family, resolved))}")
    from pipeline.scene.palette import palette_of

    probe(fmt, s.canvas(), fps=s.fps, crf=s.crf, preset=s.preset, lossless=s.lossless, palette=palette_of(s))
    bounds = segment_bounds(s.frames, workers)
    threads = max(1, (os.cpu_count() or 1) // len(bounds))
    if threads < MIN_CPU_THREADS and all(resolve_device(d).type == "cpu" for d in devices):
        warnings.warn(f"--workers {len(bounds)} on {os.cpu_count()} CPU cores leaves each worker {threads} thread(s); "
                      f"one render already uses every core, so this is usually slower (1.8x on 2 cores). Segments "
                      f"pay off with a GPU per worker (batch --devices) or {MIN_CPU_THREADS}+ cores per worker",
                      RuntimeWarning, stacklevel=2)

    if progress is not None:
        progress(0)  # checks passed: rendering starts
    t0 = time.perf_counter()
    tmpdir = temp_sibling(out, "segments")
    ctx = mp.get_context("spawn")  # fork would copy torch's thread pools and CUDA state; spawn starts clean
    with _group_signals_ignored():
        # The queue's lock starts multiprocessing's resource tracker: a child in our process group that
        # ignores SIGINT and SIGTERM but not SIGHUP (killed by it, it is relaunched with tracebacks).
        messages = ctx.Queue()
    parts = [tmpdir / f"segment_{i:03d}.mp4" for i in range(len(bounds))]
    procs = []
    try:
        tmpdir.mkdir()
        # Workers read the path from a file: arguments larger than a pipe buffer would make each start()
        # wait until its child has imported torch, starting the workers one after another.
        latents_file = tmpdir / "latents.npy"
        np.save(latents_file, latents)
        with _group_signals_ignored():
            for i, (start, stop) in enumerate(bounds):
                p = ctx.Process(target=_segment_worker, name=f"cppn-video-segment-{i}", daemon=True,
                                args=(i, str(ck.path), ck.sha256, str(latents_file), start, stop, s,
                                      devices[i % len(devices)], threads, str(parts[i]), messages, os.getpid()))
                p.start()
                procs.append(p)
        done: dict[int, dict] = {}
        while len(done) < len(procs):
            try:
                msg = messages.get(timeout=_POLL_S)
            except queue.Empty:
                # A worker that died without a word (killed, out of memory): its messages are all in by
                # now unless it exited in the last instant, so look once more before calling it lost.
                lost = [i for i, p in enumerate(procs) if i not in done and p.exitcode is not None]
                if lost and messages.empty():
                    time.sleep(_POLL_S)
                    if messages.empty():
                        i = lost[0]
                        raise RuntimeError(f"segment worker {i} (frames {bounds[i][0]}..{bounds[i][1] - 1}) "
                                           f"exited with code {procs[i].exitcode} without finishing")
                continue
            kind, i = msg[0], msg[1]
            if kind == "progress":
                if progress is not None:
                    progress(msg[2])
            elif kind == "done":
                done[i] = msg[2]
            else:
                where = f"segment {i} (frames {bounds[i][0]}..{bounds[i][1] - 1})"
                if msg[3]:
                    raise UserError(f"{where}: {msg[2]}")
                raise RuntimeError(f"{where} failed in its worker process:\n{msg[2]}")
        for p in procs:
            p.join()
        info = publish_segments(w, parts, done, bounds, t0, tmpdir)
    finally:
        _stop(procs)
        messages.close()
        messages.join_thread()
        shutil.rmtree(tmpdir, ignore_errors=True)
    return info
