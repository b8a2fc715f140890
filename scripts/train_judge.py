#!/usr/bin/env python
"""Train the independent judge of benchmarks/first_contact.py (benchmarks/judge_cnn.pt).

    python scripts/train_judge.py            # seed 7, 2 epochs, 1 thread: about 1-2 minutes on a Zen 2 core

A different architecture (benchmarks/judge.py: 3x3 convolutions, batch norm, global average pooling) from the
project's own classifiers (pipeline/models/digit_cnn.py), another seed, trained on the 60,000 MNIST training
digits only (random 26x26 crops, as the generators were trained on), tested on the 10,000 test digits (centre
crops). The weights are saved as plain data, atomically; the script reloads them through the safe loader and
checks the accuracy it reports.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from judge import JUDGE_PATH, JudgeCNN, load_judge, payload  # noqa: E402
from pipeline.checkpoint import atomic_torch_save  # noqa: E402
from pipeline.data import center_crops, epoch_batches, load_dataset, random_crops  # noqa: E402


def test_accuracy(probabilities, images, labels) -> float:
    return int((probabilities(images).argmax(1) == labels).sum()) / images.shape[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                    help="folder with the four MNIST .gz files")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(JUDGE_PATH))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train = load_dataset(data_dir=args.data, split="train", download=False)
    test = load_dataset(data_dir=args.data, split="test", download=False)
    if len(train) != 60_000 or len(test) != 10_000:
        sys.exit(f"expected 60,000 training and 10,000 test digits, found {len(train):,} and {len(test):,}")
    model = JudgeCNN()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"JudgeCNN: {n_params:,} parameters", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    total = args.epochs * math.ceil(len(train) / args.batch_size)
    test_x, test_y = center_crops(test.images), test.labels

    @torch.no_grad()
    def probabilities(x):
        model.eval()
        return torch.cat([torch.softmax(model(x[i:i + 2000]), 1) for i in range(0, x.shape[0], 2000)])

    start, step = time.perf_counter(), 0
    for epoch in range(args.epochs):
        model.train()
        running, seen = 0.0, 0
        for idx in epoch_batches(len(train), args.batch_size, g):
            for group in opt.param_groups:  # one cosine decay over the whole run
                group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(model(random_crops(train.images[idx], g)), train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item() * idx.numel()
            seen += idx.numel()
            step += 1
        acc = test_accuracy(probabilities, test_x, test_y)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {running / seen:.4f}, test accuracy {acc:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    acc = test_accuracy(probabilities, test_x, test_y)
    command = shlex.join(["python", "scripts/train_judge.py", *argv])
    meta = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "threads": args.threads, "train_seconds": round(seconds, 1), "torch": str(torch.__version__),
            "parameters": n_params, "train_set": "the 60,000 MNIST training digits, a random 26x26 crop per batch",
            "test_set": "the 10,000 MNIST test digits, centre 26x26 crops",
            "data_sha256": {str(k): str(v) for k, v in {**train.files, **test.files}.items()}}
    out = atomic_torch_save(payload(model, acc, command, meta), args.out)
    judge = load_judge(out)  # through the safe loader: the file is data and gives the same answers
    again = test_accuracy(judge.probabilities, test_x, test_y)
    if again != acc:
        sys.exit(f"the saved judge scores {again:.4f}, not {acc:.4f}")
    print(f"test accuracy {acc:.4f} ({round(acc * 10_000)}/10000); trained in {seconds:.0f} s; saved {out} "
          f"({out.stat().st_size / 1e3:.0f} kB)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
