"""`cppn-video bench serve`: the live preview's latency end to end (see pipeline.serve.latency), with the machine."""
from __future__ import annotations

from typing import Callable

from pipeline.bench.machine import machine_info


def run_serve_bench(sizes=(256, 384), frames: int = 100, warmup: int = 5, ckpt: str = "e24",
                    progress: Callable[[str], None] | None = None) -> dict:
    """ms per preview frame (median, p95, mean) at each size, and the render alone for comparison."""
    from pipeline.serve.latency import preview_latency

    results = preview_latency(sizes, frames, warmup, ckpt, progress)
    return {"machine": machine_info(), "checkpoint": ckpt, "results": results}
