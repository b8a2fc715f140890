"""Live-preview latency, end to end: a WebSocket message out to its frame back, through a real uvicorn server
on this machine, one request in flight (as the page sends them), each frame a new latent."""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from typing import Callable

from pipeline.latents import walk_keyframes, walk_path


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def preview_latency(sizes=(256, 384), frames: int = 100, warmup: int = 5, ckpt: str = "e24",
                    progress: Callable[[str], None] | None = None) -> list[dict]:
    """Per size: ms per preview frame (median, p95, mean), and the render alone for comparison."""
    from websockets.sync.client import connect

    from pipeline.serve.app import FRAME_HEADER, background_server, create_app

    results = []
    with tempfile.TemporaryDirectory() as out:
        app = create_app([ckpt], out)
        ws_ = app.state.workspace
        cid = ws_.default_id
        z_dim = ws_.checkpoint(cid).z_dim
        # a slow walk: every frame a different latent, as while dragging
        path = walk_path(walk_keyframes(0, 4, z_dim), warmup + frames, loop=True)
        with background_server(app) as url:
            with connect(url.replace("http://", "ws://") + "/ws", max_size=64 << 20) as sock:
                sock.recv()  # the job status every page gets first
                for size in sizes:
                    if progress:
                        progress(f"{size}x{size} previews over the WebSocket")
                    times = []
                    for i, z in enumerate(path):
                        t0 = time.perf_counter()
                        sock.send(json.dumps({"type": "preview", "id": i + 1, "ckpt": cid, "z": z.tolist(),
                                              "size": size}))
                        reply = sock.recv()
                        dt = time.perf_counter() - t0
                        if not isinstance(reply, bytes):
                            raise RuntimeError(f"the server answered {reply!r}")
                        rid, w, h, n, _ = FRAME_HEADER.unpack(reply[:FRAME_HEADER.size])
                        if (rid, w, h, n) != (i + 1, size, size, 1) or len(reply) != FRAME_HEADER.size + size * size:
                            raise RuntimeError(f"unexpected frame {rid} {w}x{h}x{n}")
                        if i >= warmup:
                            times.append(dt * 1000)
                    renderer = ws_.renderer(cid, size)
                    render_ms = []
                    for z in path[warmup:warmup + min(frames, 30)]:
                        t0 = time.perf_counter()
                        renderer.render(z[None])
                        render_ms.append((time.perf_counter() - t0) * 1000)
                    results.append({"size": size, "frames": frames, "path": renderer.path,
                                    "median_ms": round(statistics.median(times), 2),
                                    "p95_ms": round(_percentile(times, 0.95), 2),
                                    "mean_ms": round(statistics.fmean(times), 2),
                                    "render_only_median_ms": round(statistics.median(render_ms), 2)})
    return results
