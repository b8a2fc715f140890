"""Training speed, measured per kind of optimiser step and projected onto the article's full runs.

For each model the benchmark times every kind of step the balancing schedule takes (resnet: G+E step,
classifier evaluation, D_loss step, D_real step; prev: VAE step, G+VAE step, evaluation, D step) with
the training loop's own steps (schedules.take), on a synthetic batch, twice:

* "autograd": the straight port (the model's own forward under plain autograd, float32 classifier in
  the default memory layout);
* "fast": what `cppn-video train` runs (the fused generator forward/backward, channels-last classifier,
  and with precision "bf16" the classifier under bfloat16 autocast).

The two alternate run by run so that a change in the machine's load hits both alike. A batch costs
the sum over step kinds of (seconds per step x steps per batch); the steps per batch come from a real
run's metrics.jsonl when given (its averages), else from the schedule's maximum (an upper bound). The
projection is that cost x batches per epoch x epochs of the article's runs (70,000 digits in batches
of 2,000 for 24 epochs; prev: 60,000 in batches of 500, per epoch).
"""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from pipeline.devices import describe_device
from pipeline.bench.machine import machine_info
from pipeline.coords import grid
from pipeline.errors import UserError
from pipeline.native.heap import keep_freed_memory
from pipeline.train.config import TrainConfig
from pipeline.train.fast_generator import BACKENDS
from pipeline.train import schedules
from pipeline.train.schedules import Batch, take
from pipeline.train.state import new_state

Progress = Callable[[str], None]  # called with what is about to be measured

MODELS = ("resnet", "prev")
IMAGE_SIZE = 26  # training crops are 26x26
# The article's runs: images, batch size, epochs (prev: the article does not say; projected per epoch).
ARTICLE_RUNS = {"resnet": (70_000, 2000, 24), "prev": (60_000, 500, 1)}
# metrics.jsonl "steps" keys -> step kinds timed here (every batch also runs one evaluation).
STEP_KINDS = {model: tuple(kinds) for model, kinds in schedules.STEP_KINDS.items()}


def schedule_maximum(model: str) -> dict:
    """Steps per batch when every loop of the schedule runs to its limit (an upper bound)."""
    s = TrainConfig(model=model).resolved().schedule
    if model == "resnet":  # the two classifier branches are exclusive: count the longer
        return {"g": s.g_steps, "eval": 1, "d": max(s.d_steps, s.d_real_steps), "d_real": 0}
    return {"vae": s.vae_steps, "g": s.g_steps, "eval": 1, "d": s.d_steps}


def mix_from_metrics(path: str | Path, model: str) -> dict:
    """Average steps per batch of each kind in a run's metrics.jsonl (batch rows only)."""
    path = Path(path)
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path} as a metrics.jsonl ({e}); pass a run's metrics.jsonl") from None
    rows = [r for r in rows if isinstance(r.get("steps"), dict)]
    if not rows:
        raise UserError(f"{path} has no batch rows; pass the metrics.jsonl of a run that trained")
    kinds = STEP_KINDS[model]
    unknown = sorted({k for r in rows for k in r["steps"]} - set(kinds))
    if unknown:
        raise UserError(f"{path} is from another model (steps {', '.join(unknown)}); pass --model to match")
    mix = {k: sum(r["steps"].get(k, 0) for r in rows) / len(rows) for k in kinds if k != "eval"}
    return {**mix, "eval": 1.0, "batches": len(rows)}


class _Setup:
    """One model's training state (as the loop builds it) and a synthetic batch, for one path."""

    def __init__(self, model: str, batch_size: int, seed: int, fast: bool, precision: str,
                 device: torch.device = torch.device("cpu"), backend: str = "auto", graphs: bool = False):
        cfg = TrainConfig(model=model, seed=seed, batch_size=batch_size,
                          precision=precision if fast else "float32").resolved()
        with torch.random.fork_rng(devices=[]):
            self.st = new_state(cfg, device)
        self.st.backend = backend if fast else "autograd"
        if fast and graphs:  # each kind captured at its first (untimed: warm-up) step
            from pipeline.train.graphs import StepGraphs

            self.st.graphs = StepGraphs()
        if not fast:  # the straight port: the classifier in torch's default (NCHW) layout
            self.st.classifier.to(memory_format=torch.contiguous_format)
        rng = torch.Generator().manual_seed(seed)
        # Timing does not depend on what the digits look like: random crops and labels stand in for MNIST.
        self.real = torch.rand((batch_size, IMAGE_SIZE, IMAGE_SIZE), generator=rng).to(device)  # [B, S, S]
        self.labels = torch.randint(0, 10, (batch_size,), generator=rng).to(device)  # [B]
        self.coords = grid(IMAGE_SIZE, IMAGE_SIZE, 8.0).to(device)  # [S*S, 3]
        self.batch = Batch(self.real, self.labels, self.coords)

    def step(self, kind: str) -> None:
        """One step of `kind`, exactly as the schedule takes it (schedules.take)."""
        take(self.st, schedules.STEP_KINDS[self.st.cfg.model][kind], self.batch)


def _time(fn: Callable[[], None], device: torch.device = torch.device("cpu")) -> float:
    """Wall seconds of fn(), waiting for the device's queued work at both ends."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def run_train_bench(batch_size: int | None = None, repeats: int = 3, models: tuple = MODELS,
                    progress: Progress | None = None, warmup: int = 1, seed: int = 0,
                    threads: int | None = None, precision: str = "bf16",
                    metrics: dict | None = None, keep_heap: bool = True,
                    device: torch.device | str = "cpu", backend: str = "auto", graphs: bool = False) -> dict:
    """Seconds per step of each kind (median of `repeats` after `warmup` untimed runs), autograd vs fast,
    and the projected wall time of the article's runs. batch_size: None -> the article's (2000 / 500).
    metrics: model -> path of a metrics.jsonl whose step mix to project with (else the schedule maximum).
    threads: torch's thread count for the run (None: as set).
    keep_heap: make the process keep freed memory as `train` does (pipeline.native.heap); False measures
    with the C library's default (can't be undone within a process once applied).
    device: where both paths' steps run; the projection is then that device's.
    backend: the fast path's generator backend (fast_generator.BACKENDS; "auto" is what `train` runs).
    graphs: the fast path replays its steps as CUDA graphs (train --cuda-graphs; CUDA only).
    """
    device = torch.device(device)
    if batch_size is not None and batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}; pass --batch-size 2000")
    if repeats < 1:
        raise UserError(f"repeats must be at least 1, got {repeats}; pass --repeats 3")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise UserError(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    if backend not in BACKENDS:
        raise UserError(f"unknown generator backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        raise UserError(f"the triton backend runs on CUDA, not {device.type}; pass --device cuda or another --backend")
    if graphs:
        from pipeline.train.graphs import require_cuda

        require_cuda(device)
    if graphs and warmup < 1:
        raise UserError("with CUDA graphs a step kind's first run captures it; pass warmup 1 or more")
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}; pass --threads 1")
    mixes = {m: (mix_from_metrics(p, m) if p else None) for m, p in (metrics or {}).items()}
    say = progress or (lambda msg: None)
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        machine = machine_info()
        machine["malloc"] = "keeps freed memory" if keep_heap and keep_freed_memory() else "system default"
        results, projections = [], []
        for model in models:
            bs = batch_size or ARTICLE_RUNS[model][1]
            rows, per_batch = _model(model, bs, repeats, warmup, seed, precision, say, device, backend, graphs)
            results += rows
            mix = mixes.get(model) or {**schedule_maximum(model), "source": "schedule maximum (upper bound)"}
            mix.setdefault("source", "averages of the given metrics.jsonl")
            n_images, _, epochs = ARTICLE_RUNS[model]
            batches = (n_images // bs) * epochs
            proj = {"model": model, "batch_size": bs, "epochs": epochs, "batches": batches,
                    "steps_per_batch": {k: round(mix.get(k, 0), 3) for k in STEP_KINDS[model]},
                    "mix_source": mix["source"]}
            for path in ("autograd", "fast"):
                s_batch = sum(per_batch[path][k] * mix.get(k, 0) for k in STEP_KINDS[model])
                proj[f"{path}_s_per_batch"] = round(s_batch, 3)
                proj[f"{path}_hours"] = round(s_batch * batches / 3600, 3)
            proj["speedup"] = round(proj["autograd_s_per_batch"] / proj["fast_s_per_batch"], 2)
            projections.append(proj)
        machine["load_average_1min_end"] = machine_info().get("load_average_1min")
        machine["precision"] = precision
        machine["fast_backend"] = backend
        machine["fast_cuda_graphs"] = graphs
        machine["device"] = describe_device(device)
        return {"machine": machine, "results": results, "projections": projections}
    finally:
        torch.set_num_threads(saved_threads)


def _model(model: str, batch_size: int, repeats: int, warmup: int, seed: int, precision: str, say: Progress,
           device: torch.device = torch.device("cpu"), backend: str = "auto", graphs: bool = False):
    setups = {"autograd": _Setup(model, batch_size, seed, False, precision, device),
              "fast": _Setup(model, batch_size, seed, True, precision, device, backend, graphs)}
    rows, per_batch = [], {"autograd": {}, "fast": {}}
    for kind in STEP_KINDS[model]:
        say(f"{model} {kind} step (autograd vs fast, batch {batch_size}, {warmup}+{repeats} runs each)")
        times = {p: [] for p in setups}
        for i in range(warmup + repeats):
            for path, setup in setups.items():
                t = _time(lambda: setup.step(kind), device)
                if i >= warmup:
                    times[path].append(t)
        base = statistics.median(times["autograd"])
        for path in setups:
            med = statistics.median(times[path])
            per_batch[path][kind] = med
            rows.append({"model": model, "step": kind, "path": path, "batch_size": batch_size,
                         "s_per_step": round(med, 4), "speedup": None if path == "autograd" else round(base / med, 2),
                         "runs_s": [round(t, 4) for t in times[path]]})
    return rows, per_batch
