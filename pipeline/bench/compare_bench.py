"""How long `cppn-video compare` takes: seconds per composed frame, measured, projected to a whole video."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from pipeline.bench.machine import machine_info
from pipeline.jobs.compare import render_compare
from pipeline.jobs.settings import CompareSettings
from pipeline.render import resolve_device


DEFAULT_CHECKPOINTS = ("prev", "e6", "e24")  # the comparison the README shows


def run_compare_bench(checkpoints=DEFAULT_CHECKPOINTS, frames: int = 6, panel_size: int = 1080,
                      project_to: int = CompareSettings.DEFAULT_FRAMES, device: str = "auto",
                      batch: int | None = None) -> dict:
    """Render `frames` frames of the default comparison into a throwaway MP4 (the real encoder, preset
    medium) and project the measured seconds per frame (after the first batch, which pays start-up) to a
    video of `project_to` frames. batch: frames per batch (None: the compare's own choice, as a user's
    render makes it: one frame at a time at 1080 on the CPU, whole batches on a GPU). Returns the machine,
    the measurement (with the whole render's frames per second, start-up included) and the projection."""
    times: list[float] = []
    import time

    last = [0.0]

    def progress(n: int) -> None:
        now = time.perf_counter()
        if n:
            times.extend([(now - last[0]) / n] * n)
        last[0] = now

    with tempfile.TemporaryDirectory(prefix="cppn-video-bench-") as tmp:
        t0 = time.perf_counter()
        render_compare(list(checkpoints), Path(tmp) / "compare.mp4",
                       CompareSettings(frames=frames, panel_size=panel_size, device=device, batch=batch),
                       progress=progress)
        total = time.perf_counter() - t0
    steady = times[1:] or times
    per_frame = sorted(steady)[len(steady) // 2]
    return {
        "machine": machine_info(resolve_device(device)),
        "checkpoints": list(checkpoints), "panel_size": panel_size, "frames": frames,
        "seconds": round(total, 2), "seconds_per_frame": round(per_frame, 4), "batch": batch,
        "frames_per_second": round(frames / total, 2),
        "projected_frames": project_to, "projected_seconds": round(per_frame * project_to, 1),
        "torch_threads": torch.get_num_threads(),
    }
