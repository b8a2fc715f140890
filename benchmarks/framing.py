#!/usr/bin/env python
"""The automatic framing (pipeline/jobs/framing.py) measured: keyframes whose ink reaches the frame's outer 2%.

    python benchmarks/framing.py                       # e24's article-style keyframes, 8,6,4,2,0,1,3,5,7, 1080x1080
    python benchmarks/framing.py --digits 3,8,5,2,9,0,6 --size 1280x720

Renders each keyframe at the video's own size, at the training scale 8 and at the scale the automatic framing
chooses, and counts the keyframes with ink (intensity >= framing.INK) in the outer framing.MARGIN of any side.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs import framing
    from pipeline.latents import digit_keyframes, parse_digits
    from pipeline.scene.canvas import parse_canvas

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default="e24")
    ap.add_argument("--digits", default="8,6,4,2,0,1,3,5,7")
    ap.add_argument("--size", default="1080")
    args = ap.parse_args(argv)
    ck = load_checkpoint(args.ckpt)
    order = parse_digits(args.digits)
    keys, _ = digit_keyframes(order, ck.digit_latents, ck.digit_labels, source=args.ckpt)
    canvas = parse_canvas(args.size)
    t0 = time.perf_counter()
    chosen = framing.auto_scale([ck.generator], keys, canvas)
    seconds = time.perf_counter() - t0
    for scale, what in ((framing.TRAINING_SCALE, "training scale"), (chosen, f"automatic ({seconds:.2f} s)")):
        touching = framing.edge_touching(ck.generator, keys, canvas, scale)
        named = [d for d, t in zip(order, touching) if t]
        print(f"{args.ckpt} --digits {args.digits} at {canvas[0]}x{canvas[1]}, scale {scale:g} ({what}): "
              f"{sum(touching)} of {len(order)} keyframes touch the outer {framing.MARGIN:.0%} {named}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
