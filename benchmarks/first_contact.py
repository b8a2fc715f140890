#!/usr/bin/env python
"""First contact: does the README's quick-start walk show digits? Judged by a classifier the project never
chooses anything by (benchmarks/judge.py, trained by scripts/train_judge.py).

    python benchmarks/first_contact.py                 # the quick start, `cppn-video walk --frames 120`, seeds 0-5
    python benchmarks/first_contact.py --seeds 0-2 --ckpt e6 --args "--frames 240 --random-keyframes"

For each seed it builds exactly the walk that `cppn-video walk --frames 120 --seed S -o walk.mp4` renders (the
CLI's own option parsing and the library's walk preparation: default keyframes, even pacing, the frame's scale),
then renders every frame's latent at 26x26 over the generators' training square [-8, 8] (the digit's place,
the middle of every frame since no default frame is zoomed in past it) and lets the judge read it. A frame is
a confident digit when the judge's largest softmax probability is at least 0.9 (judge.CONFIDENT); the classes
are those of the confident frames. Goal (issue 27): >= 85% confident frames and >= 6 classes.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from judge import CONFIDENT, load_judge  # noqa: E402

QUICK_START = "--frames 120"  # the README's quick start: `cppn-video walk --frames 120 -o walk.mp4`
SIDE, TRAINING_SCALE = 26, 8.0


def walk_settings(args: str, seed: int):
    """The WalkSettings `cppn-video walk ARGS --seed SEED` builds (the CLI's parsing, nothing rendered)."""
    from click.testing import CliRunner

    import pipeline.jobs.kinds as kinds
    from pipeline.cli import cli

    seen = {}

    def capture(ckpt, output, settings, progress=None):
        seen.update(ckpt=ckpt, settings=settings)
        return {}

    real, kinds.run_walk = kinds.run_walk, capture
    try:
        result = CliRunner().invoke(cli, ["walk", *shlex.split(args), "--seed", str(seed), "--quiet"])
    finally:
        kinds.run_walk = real
    if "settings" not in seen:
        raise SystemExit(f"cppn-video walk {args} did not parse: {result.output.strip()}")
    return seen["ckpt"], seen["settings"]


def measure(ckpt_name: str, settings, judge) -> dict:
    """One walk's frames as the judge reads them."""
    from pipeline.jobs.render import prepare_walk
    from pipeline.render import Renderer

    with tempfile.TemporaryDirectory() as tmp:
        w = prepare_walk(ckpt_name, Path(tmp) / "walk.mp4", settings)
    with Renderer(w.ck.generator, SIDE, SIDE, scale=TRAINING_SCALE, path="auto", device="cpu") as r, torch.no_grad():
        images = r.render_float(np.asarray(w.latents, dtype=np.float32))
    p = judge.probabilities(images)
    sure = p.max(1).values >= CONFIDENT
    classes = sorted({int(c) for c in p.argmax(1)[sure]})
    return {"seed": settings.seed, "frames": len(w.latents), "confident": int(sure.sum()),
            "share": round(float(sure.float().mean()), 4), "classes": classes, "scale": w.settings.scale,
            "keyframe_digits": [int(w.ck.digit_labels[r]) for r in w.bank_rows] if w.bank_rows is not None else None}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    from pipeline.latents import parse_seeds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--args", default=QUICK_START, help="the walk's options, as on the command line")
    ap.add_argument("--seeds", default="0-5")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    judge = load_judge()
    t0 = time.perf_counter()
    rows = []
    for seed in parse_seeds(args.seeds):
        ckpt, settings = walk_settings(args.args, seed)
        rows.append(measure(ckpt or "e24", settings, judge))
        if not args.json:
            r = rows[-1]
            print(f"seed {r['seed']}: {r['share']:.1%} confident frames ({r['confident']}/{r['frames']}), "
                  f"{len(r['classes'])} classes {r['classes']}, scale {r['scale']:g}, keyframes "
                  f"{r['keyframe_digits']}", flush=True)
    total = sum(r["frames"] for r in rows)
    summary = {"command": f"cppn-video walk {args.args} --seed S", "seeds": args.seeds,
               "judge_test_accuracy": judge.test_accuracy, "judge_sha256": judge.sha256, "confidence": CONFIDENT,
               "share": round(sum(r["confident"] for r in rows) / total, 4),
               "worst_share": min(r["share"] for r in rows), "fewest_classes": min(len(r["classes"]) for r in rows),
               "seconds": round(time.perf_counter() - t0, 1), "cpu": cpu_name(), "torch": str(torch.__version__),
               "walks": rows}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"all: {summary['share']:.1%} confident frames (worst seed {summary['worst_share']:.1%}), at least "
              f"{summary['fewest_classes']} classes per walk; judge: test accuracy {judge.test_accuracy:.2%}, "
              f"confidence >= {CONFIDENT}; {summary['seconds']:.0f} s on {summary['cpu']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
