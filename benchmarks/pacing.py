"""Even pacing measured on the article's kind of video: e24 through real digits 8,6,4,2,0,1,3,5,7, lerp, linear,
30 frames per transition (241 frames). Per transition: the largest frame-to-frame change over the mean (1.0 is
perfectly even), steps that change by more than 15 grey levels (the mean absolute change of some pixel region
is not it: here the largest per-pixel-averaged step, in grey levels, as the issue measured), the largest jump in
mean brightness; and the proxy's cost against the 1080 render of the same video.

    python benchmarks/pacing.py [--size 128] [--ckpt e24]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def measure(ckpt: str, size: int, pace: str, ease: str = "linear") -> dict:
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs.render import checkpoint_path
    from pipeline.jobs.settings import WalkSettings
    from pipeline.render import Renderer
    from pipeline.scene.pacing import step_evenness

    ck = load_checkpoint(ckpt)
    s = WalkSettings(size=size, digits="8,6,4,2,0,1,3,5,7", interp="lerp", ease=ease, frames_per_transition=30,
                     pace=pace).resolved()
    t0 = time.perf_counter()
    keys, latents, _ = checkpoint_path(s, ck)
    path_seconds = time.perf_counter() - t0
    with Renderer(ck.generator, size, size) as r:
        frames = np.concatenate([r.render(latents[i:i + 16]) for i in range(0, len(latents), 16)]).astype(np.float64)
    transitions = [(30 * k, 30 * (k + 1)) for k in range(len(keys) - 1)]
    ratios = step_evenness(frames, transitions)
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))
    brightness = np.abs(np.diff(frames.mean(axis=(1, 2))))
    return {"pace": pace, "ease": ease, "size": size, "frames": len(frames),
            "peak_over_mean_median": round(float(np.median(ratios)), 3), "peak_over_mean_worst": round(max(ratios), 3),
            "steps_over_15_levels": int((steps > 15).sum()), "largest_brightness_jump": round(float(brightness.max()), 2),
            "path_seconds": round(path_seconds, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default="e24")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--render-1080", action="store_true", help="also time 8 frames at 1080 for the proxy's share")
    a = ap.parse_args()
    rows = [measure(a.ckpt, a.size, pace) for pace in ("none", "uniform")]
    rows.append(measure(a.ckpt, a.size, "uniform", ease="ease-in-out-sine"))
    if a.render_1080:
        from pipeline.checkpoint import load_checkpoint
        from pipeline.render import Renderer

        ck = load_checkpoint(a.ckpt)
        z = np.random.default_rng(0).standard_normal((8, ck.z_dim)).astype(np.float32)
        with Renderer(ck.generator, 1080, 1080) as r:
            r.render(z[:1])
            t0 = time.perf_counter()
            for i in range(8):
                r.render(z[i:i + 1])
            per_frame = (time.perf_counter() - t0) / 8
        proxy = rows[1]["path_seconds"] - rows[0]["path_seconds"]
        rows.append({"render_1080_seconds_per_frame": round(per_frame, 3), "proxy_seconds": round(proxy, 3),
                     "proxy_share_of_241_frames_at_1080": round(proxy / (241 * per_frame), 4)})
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
