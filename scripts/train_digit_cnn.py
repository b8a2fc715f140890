#!/usr/bin/env python
"""Train the digit classifier that `cppn-video eval` uses (pipeline/evaluate/digit_cnn.pt).

    python scripts/train_digit_cnn.py                 # the judge (pipeline/evaluate/digit_cnn.pt): seed 0, 3 epochs
    python scripts/train_digit_cnn.py --seed 1 --epochs 2 --channels 16,32 --hidden 64 \
        --out pipeline/project/feature_cnn.pt         # the distance `cppn-video project` fits (kept apart)

Trains on the 60,000 MNIST training digits with a random 26x26 crop per image per batch (the generators'
training crops), Adam with a cosine learning-rate decay; reports the accuracy on the 10,000 test digits
(center crops) and saves the weights as plain data (loadable with torch.load(weights_only=True)),
written atomically. Seeded: the same command on the same torch build gives the same weights.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.checkpoint import atomic_torch_save  # noqa: E402
from pipeline.data import center_crops, epoch_batches, load_dataset, random_crops  # noqa: E402
from pipeline.digit_classifier import accuracy, cnn_payload  # noqa: E402
from pipeline.evaluate.metrics import ASSET_PATH  # noqa: E402
from pipeline.models.digit_cnn import DigitCNN, DigitCNNConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                    help="folder with the four MNIST .gz files")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels", default="32,64", help="output channels of the two conv layers")
    ap.add_argument("--hidden", type=int, default=128, help="width of the hidden layer")
    ap.add_argument("--out", default=str(ASSET_PATH))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train = load_dataset(data_dir=args.data, split="train", download=False)
    test = load_dataset(data_dir=args.data, split="test", download=False)
    if len(train) != 60_000 or len(test) != 10_000:
        sys.exit(f"expected 60,000 training and 10,000 test digits, found {len(train):,} and {len(test):,}")

    channels = tuple(int(c) for c in args.channels.split(","))
    model = DigitCNN(DigitCNNConfig(channels=channels, hidden=args.hidden))
    print(f"DigitCNN {model.cfg}: {model.parameter_count():,} parameters "
          f"({model.parameter_count() * 4 / 1e6:.2f} MB float32)", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total = args.epochs * steps_per_epoch
    test_x, test_y = center_crops(test.images), test.labels
    start = time.perf_counter()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        running, seen = 0.0, 0
        for idx in epoch_batches(len(train), args.batch_size, g):
            for group in opt.param_groups:  # cosine decay to 0 over the whole run
                group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            x = random_crops(train.images[idx], g)  # [B, 26, 26] in [0, 1]
            loss = F.cross_entropy(model(x), train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item() * idx.numel()
            seen += idx.numel()
            step += 1
        model.eval()
        acc = accuracy(model, test_x, test_y)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {running / seen:.4f}, test accuracy {acc:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    seconds = time.perf_counter() - start
    test_accuracy = accuracy(model, test_x, test_y)
    command = shlex.join(["python", "scripts/train_digit_cnn.py", *argv])
    meta = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "threads": args.threads, "train_seconds": round(seconds, 1), "torch": str(torch.__version__),
            "parameters": model.parameter_count(),
            "augmentation": "a random 26x26 crop of each 28x28 training digit per batch",
            "test_set": "the 10,000 MNIST test digits, center 26x26 crops"}
    payload = cnn_payload(model, test_accuracy, command, {**train.files, **test.files}, meta)
    out = atomic_torch_save(payload, args.out)
    print(f"test accuracy {test_accuracy:.4f} ({round(test_accuracy * 10_000)}/10000); "
          f"trained in {seconds:.0f} s; saved {out} ({out.stat().st_size / 1e6:.2f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
