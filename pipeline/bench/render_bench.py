"""Render benchmark: ms per frame of the reference and every available path, end-to-end MP4 fps, peak memory."""
from __future__ import annotations

import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline.bench.machine import machine_info
from pipeline.models import ResnetGenerator
from pipeline.render import Renderer, available_paths, resolve_device
from pipeline.render.engine import default_batch

def flops_per_pixel(gen) -> float:
    """Multiply-adds x 2 per pixel (resnet: ~8.7 kFLOP, as ARTICLE.md says; prev: ~98 kFLOP)."""
    cfg = gen.cfg
    if cfg.family == "resnet":
        per_block = (cfg.relu_layers + 1) * 2 * cfg.width * cfg.width
        return cfg.n_blocks * per_block + 2 * 3 * cfg.width + 2 * cfg.width
    return cfg.tanh_layers * 2 * cfg.width * cfg.width + 2 * 3 * cfg.width + 2 * cfg.width


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) so each measurement reports its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _time_path(gen, path: str, size: int, latents: np.ndarray, device, batch: int) -> tuple[float, float | None]:
    """Median seconds per frame over the latents (after one warm-up batch) and the peak RSS in MB."""
    _reset_peak_rss()
    with Renderer(gen, size, size, path=path, device=device) as r:
        r.render(latents[:1])  # warm-up: kernel compile/JIT, caches
        per_frame = []
        for start in range(0, len(latents), batch):
            chunk = latents[start:start + batch]
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            r.render(chunk)
            if device.type == "cuda":
                torch.cuda.synchronize()
            per_frame.append((time.perf_counter() - t) / len(chunk))
    return statistics.median(per_frame), _peak_rss_mb()


def run_render_bench(sizes=(1080, 3240), frames: int = 8, families=("resnet", "prev"), device: str = "auto",
                     paths: tuple[str, ...] | None = None, mp4_frames: int = 150, reference_frames: int = 1,
                     progress: Callable[[str], None] | None = None, scenes: bool = True) -> dict:
    """Benchmark every available render path in one run; returns {"machine": ..., "results": [...]}.

    The reference (whole frame, layer by layer) is timed on `reference_frames` frames; the others on
    `frames`. The prev family is measured at the first size only (its reference at 3240x3240 needs
    ~15 GB). End to end: `mp4_frames` frames into an MP4 (libx264, preset medium, CRF 18) against the same
    frames rendered only, at the first size: the fastest path, or each fast path of `paths` when given (the
    scene rows, `scenes`, for the first only).
    """
    from pipeline.models import PrevGenerator

    dev = resolve_device(device)
    say = progress or (lambda msg: None)
    results = []
    rng = np.random.default_rng(0)
    for family in families:
        torch.manual_seed(0)
        gen = (ResnetGenerator() if family == "resnet" else PrevGenerator()).eval()
        fpp = flops_per_pixel(gen)
        for size in sizes if family == "resnet" else sizes[:1]:
            lat = rng.standard_normal((frames, gen.cfg.z_dim)).astype(np.float32)
            options = [p for p in available_paths(family, dev) if paths is None or p in paths]
            ref_ms = None
            for path in reversed(options):  # reference first: the baseline of this run
                n = reference_frames if path == "reference" else frames
                if n == 0:
                    continue  # --reference-frames 0: no reference (nothing to warm up or time)
                batch = 1 if path == "reference" else default_batch(size, size, dev)
                say(f"{family} {size}x{size} {path} ({n} frames)")
                s, peak = _time_path(gen, path, size, lat[:n], dev, batch)
                ms = s * 1000
                if path == "reference":
                    ref_ms = ms
                results.append({
                    "what": "render", "family": family, "path": path, "size": size, "frames": n, "batch": batch,
                    "ms_per_frame": round(ms, 2), "fps": round(1000 / ms, 3),
                    "gflops": round(fpp * size * size / s / 1e9, 2),
                    "speedup_vs_reference": round(ref_ms / ms, 2) if ref_ms else None,
                    "peak_rss_mb": round(peak, 1) if peak else None,
                })
    results.extend(_end_to_end(sizes[0], mp4_frames, dev, paths, say, scenes))
    return {"machine": machine_info(dev), "results": results}


# The moving camera the benchmark times: zooming 64x in while turning a quarter and drifting (every frame differs).
MOVING = {"zoom": "1:64", "rotate": "0:90", "pan": "0,0:0.5,-0.5"}


def _cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) used so far by this process's threads and by its finished children (ffmpeg)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def e2e_ratios(frames: int, render_s: float, render_cpu_s: float, mp4_s: float, mp4_cpu_s: float,
               encoder_cpu_s: float) -> dict:
    """The end-to-end row's ratios. mp4_vs_render: end-to-end fps / render-only fps (wall clock, same run: what
    the 85% goal reads, but it moves with other work's load between the two passes). cpu_bound_mp4_vs_render:
    render CPU-s a frame / end-to-end CPU-s a frame (this process's threads and ffmpeg's together): the ratio the
    same cores reach when they are kept busy, which another job's load hardly changes."""
    return {"render_fps": round(frames / render_s, 3), "mp4_fps": round(frames / mp4_s, 3),
            "ms_per_frame": round(1000 * mp4_s / frames, 2), "mp4_vs_render": round(render_s / mp4_s, 3),
            "render_cpu_ms_per_frame": round(1000 * render_cpu_s / frames, 1),
            "mp4_cpu_ms_per_frame": round(1000 * mp4_cpu_s / frames, 1),
            "encoder_cpu_ms_per_frame": round(1000 * encoder_cpu_s / frames, 1),
            "cpu_bound_mp4_vs_render": round(render_cpu_s / mp4_cpu_s, 3) if mp4_cpu_s > 0 else None}


def _end_to_end(size: int, n: int, dev, paths, say, scenes: bool = True) -> list[dict]:
    """Render-only fps vs render+encode fps of the same frames, in this run: the fastest resnet path, or each fast
    path of `paths`; the scene rows (paced, held, coloured, moving) for the first path only, when `scenes`."""
    options = [p for p in available_paths("resnet", dev) if p != "reference" and (paths is None or p in paths)]
    if not options or n < 1:
        return []
    return [_end_to_end_path(size, n, dev, path, say, scenes and i == 0)
            for i, path in enumerate(options if paths is not None else options[:1])]


def _end_to_end_path(size: int, n: int, dev, path: str, say, scenes: bool) -> dict:
    from pipeline.checkpoint import save_render_checkpoint
    from pipeline.jobs import WalkSettings, render_walk
    from pipeline.jobs.render import path_latents, walk_camera

    torch.manual_seed(0)
    gen = ResnetGenerator().eval()
    settings = WalkSettings(frames=n, size=size, keyframes=4, path=path, device=str(dev), pace="none")
    _, lat = path_latents(settings, gen.cfg.z_dim, None)
    batch = default_batch(size, size, dev)
    camera = walk_camera(replace(settings, **MOVING))
    say(f"end to end: {n} frames {size}x{size} {path} render only, static and moving camera batch by batch")
    with Renderer(gen, size, size, path=path, device=dev) as r:
        r.render(lat[:1])
        r.render(lat[:1], camera=camera[:1])
        # Each batch renders with the static and then the moving camera, so load that changes during the run
        # (the box is shared) falls on both alike; the ratio is of the per-batch medians.
        static, moving, render_cpu = [], [], 0.0
        for start in range(0, n, batch):
            for times, cam in ((static, None), (moving, camera[start:start + batch])):
                c, t = _cpu_seconds()[0], time.perf_counter()
                r.render(lat[start:start + batch], camera=cam)
                times.append(time.perf_counter() - t)
                if cam is None:
                    render_cpu += _cpu_seconds()[0] - c
        moving_ratio = statistics.median(moving) / statistics.median(static)
    with tempfile.TemporaryDirectory(prefix="cppn-bench-") as tmp:
        ck = save_render_checkpoint(Path(tmp) / "bench.pt", gen, torch.zeros(10, gen.cfg.z_dim), {"bench": True})
        times = {}  # the same walk as a static scene (equal steps, grey), paced, held and coloured, in this run
        extra = (("paced", {"pace": "uniform"}), ("held", {"hold": "0.25s"}), ("coloured", {"palette": "magma"}),
                 ("moving", MOVING)) if scenes else ()
        for name, changes in (("static", {}),) + extra:
            say(f"end to end: {n} frames {size}x{size} {path} -> MP4 ({name} scene)")
            (c_me, c_kids), t = _cpu_seconds(), time.perf_counter()
            render_walk(ck, Path(tmp) / f"bench-{name}.mp4", replace(settings, **changes))
            times[name] = time.perf_counter() - t
            if name == "static":
                me, kids = _cpu_seconds()
                mp4_cpu, encoder_cpu = (me - c_me) + (kids - c_kids), kids - c_kids
    row = {"what": "mp4", "family": "resnet", "path": path, "size": size, "frames": n,
           **e2e_ratios(n, sum(static), render_cpu, times["static"], mp4_cpu, encoder_cpu),
           **{f"{name}_time_vs_static": round(t / times["static"], 3) for name, t in times.items() if name != "static"}}
    row["moving_render_time_vs_static"] = round(moving_ratio, 3)
    return row
