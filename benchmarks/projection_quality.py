#!/usr/bin/env python
"""How often a projected digit comes back as itself: MNIST test digits (which neither bundled classifier
trained on) and digits typeset in the machine's fonts, projected into each bundled checkpoint; the judge
(pipeline/evaluate/digit_cnn.pt, not the projection's own feature network) reads each render.

    python benchmarks/projection_quality.py --n 400 --ckpts e24,e6,w4,prev
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.checkpoint import load_checkpoint  # noqa: E402
from pipeline.data import load_dataset  # noqa: E402
from pipeline.digit_classifier import classify  # noqa: E402
from pipeline.evaluate import load_digit_cnn  # noqa: E402
from pipeline.project import load_feature_cnn, project_images  # noqa: E402
from pipeline.project.images import mnist_normalise  # noqa: E402


def typeset_digits(size: int = 96) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each digit 0-9 in every TrueType font on the machine, rendered black on white and normalised."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = sorted(p for d in ("/usr/share/fonts", "/usr/local/share/fonts") for p in Path(d).rglob("*.ttf"))
    imgs, labels, names = [], [], []
    for f in fonts:
        try:
            font = ImageFont.truetype(str(f), int(size * 0.7))
        except OSError:
            continue
        for d in range(10):
            im = Image.new("L", (size, size), 255)
            ImageDraw.Draw(im).text((size // 4, size // 10), str(d), fill=0, font=font)
            ink = 1.0 - np.asarray(im, dtype=np.float64) / 255.0
            img, blank = mnist_normalise(ink)
            if not blank:
                imgs.append(img), labels.append(d), names.append(f.stem)
    return np.stack(imgs) if imgs else np.zeros((0, 26, 26), np.float32), np.array(labels), names


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400, help="MNIST test digits (the first N)")
    ap.add_argument("--ckpts", default="e24,e6,w4,prev")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    test = load_dataset(data_dir=args.data, split="test", download=False)
    raw = test.images[:args.n].numpy() / 255.0
    mnist = np.stack([mnist_normalise(i)[0] for i in raw])
    labels = test.labels[:args.n].numpy()
    fonts, font_labels, font_names = typeset_digits()
    judge, features = load_digit_cnn().model, load_feature_cnn()
    print(f"judge on the targets themselves: MNIST {np.mean(classify(judge, torch.tensor(mnist)).argmax(1).numpy() == labels):.3f}, "
          f"typeset {np.mean(classify(judge, torch.tensor(fonts)).argmax(1).numpy() == font_labels):.3f} "
          f"({len(fonts)} glyphs, {len(set(font_names))} fonts)")
    for name in args.ckpts.split(","):
        ck = load_checkpoint(name)
        row = {"ckpt": name}
        for what, imgs, labs in (("mnist", mnist, labels), ("typeset", fonts, font_labels)):
            t0 = time.perf_counter()
            pr = project_images(ck, imgs, features)
            sec = time.perf_counter() - t0
            read = classify(judge, torch.tensor(pr.renders)).argmax(1).numpy()
            row[what] = {"n": len(labs), "agree": round(float(np.mean(read == labs)), 4),
                         "rmse": round(float(pr.pixel_rmse.mean()), 4), "seconds": round(sec, 2),
                         "s_per_image": round(sec / max(1, len(labs)), 3)}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
