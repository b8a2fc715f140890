#!/usr/bin/env python
"""x264 presets measured on a real walk: quality against the lossless render, size and encoder cost.

    python benchmarks/encoder_presets.py                          # e24, 1080x1080, 60 frames, CRF 18
    python benchmarks/encoder_presets.py --size 540 --frames 120 --presets veryfast,medium --json

Renders the project's default walk (stored digits, e24) once, keeps its exact gray frames, then encodes them
with each preset exactly as `walk` does (video._ffmpeg_command: yuv420p, tagged BT.709) with ONE encoder thread,
so the wall time per frame is the cost per core. Quality is ffmpeg's psnr and ssim filters on the decoded video
against those exact frames (both as gray). One line per preset: PSNR (dB), SSIM, kB per frame, ms/frame/core.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = "ultrafast,veryfast,faster,medium"


def exact_frames(ckpt: str, size: int, frames: int, device: str = "auto"):
    """The default walk's gray frames [N, H, W] uint8, as the renderer makes them (no encoder involved)."""
    from pipeline.jobs.render import WalkSettings, prepare_walk, walk_camera
    from pipeline.render import Renderer

    s = WalkSettings(frames=frames, size=size, scale=None, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        w = prepare_walk(ckpt, Path(tmp) / "x.mp4", s)
    with Renderer(w.ck.generator, size, size, scale=w.settings.scale, device=device) as r:
        return r.render(w.latents, camera=walk_camera(w.settings))


def encode(frames, out: Path, preset: str, crf: int, threads: int = 1) -> float:
    """Encode with walk's own ffmpeg command; returns wall seconds."""
    from pipeline.video import _ffmpeg_command

    n, h, w = frames.shape
    cmd = _ffmpeg_command("mp4", (w, h), "30", crf, preset, False, out, None, threads)
    t0 = time.perf_counter()
    subprocess.run(cmd, input=frames.tobytes(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def quality(video: Path, reference: Path, size: int) -> tuple[float, float]:
    """(PSNR dB, SSIM) of `video` decoded to gray against the raw gray `reference`, by ffmpeg's filters."""
    from pipeline.video import ffmpeg_exe

    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(video),
           "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{size}x{size}", "-framerate", "30", "-i", str(reference),
           "-lavfi", "[0:v]format=gray,split[a][b];[1:v]split[c][d];[a][c]psnr;[b][d]ssim", "-f", "null", "-"]
    err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    psnr = re.search(r"PSNR .*average:([\d.]+|inf)", err).group(1)
    ssim = re.search(r"SSIM .*All:([\d.]+)", err).group(1)
    return float(psnr), float(ssim)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default="e24")
    ap.add_argument("--size", type=int, default=1080)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--presets", default=PRESETS)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", action="store_true", help="one JSON line per preset")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    frames = exact_frames(args.ckpt, args.size, args.frames, args.device)
    render_s = time.perf_counter() - t0
    if not args.json:
        print(f"{args.frames} frames of {args.size}x{args.size} rendered in {render_s:.1f} s; CRF {args.crf}, "
              f"1 encoder thread")
    rows = []
    with tempfile.TemporaryDirectory(prefix="presets-") as tmp:
        ref = Path(tmp) / "exact.gray"
        ref.write_bytes(frames.tobytes())
        for preset in args.presets.split(","):
            out = Path(tmp) / f"{preset}.mp4"
            seconds = encode(frames, out, preset, args.crf)
            psnr, ssim = quality(out, ref, args.size)
            row = {"preset": preset, "crf": args.crf, "size": args.size, "frames": args.frames, "psnr_db": psnr,
                   "ssim": ssim, "kb_per_frame": round(out.stat().st_size / 1024 / args.frames, 2),
                   "ms_per_frame_core": round(1000 * seconds / args.frames, 2)}
            rows.append(row)
            print(json.dumps(row) if args.json else
                  f"{preset:>10}: PSNR {psnr:6.2f} dB  SSIM {ssim:.5f}  {row['kb_per_frame']:7.2f} kB/frame  "
                  f"{row['ms_per_frame_core']:6.2f} ms/frame/core", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
