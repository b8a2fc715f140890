"""Training speed: seconds per batch of the generator's forward+backward and of a whole G+E step,
plain autograd vs the fast path (`pipeline.train.fast_generator`), measured in one run."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from pipeline.bench.machine import machine_info
from pipeline.coords import grid
from pipeline.errors import UserError
from pipeline.models import DISCRIMINATOR, Classifier, ClassifierConfig, Encoder, EncoderConfig, reparameterize
from pipeline.models import PrevGenerator, ResnetConfig, ResnetGenerator
from pipeline.train import fast_generator
from pipeline.train import losses
from pipeline.train.config import PrevSchedule, ResnetSchedule

Progress = Callable[[str], None]  # called with what is about to be measured

MODELS = ("resnet", "prev")
IMAGE_SIZE = 26  # training crops are 26x26


class _Setup:
    """One model's networks, optimiser and a synthetic batch, as the training loop builds them."""

    def __init__(self, model: str, batch_size: int, seed: int):
        torch.manual_seed(seed)
        rng = torch.Generator().manual_seed(seed)
        self.model = model
        if model == "resnet":
            self.schedule = ResnetSchedule()
            self.gen = ResnetGenerator()
            self.critic = Classifier(ClassifierConfig())
        else:
            self.schedule = PrevSchedule()
            self.gen = PrevGenerator()
            self.critic = Classifier(DISCRIMINATOR)
        self.enc = Encoder(EncoderConfig(keep_prob=self.schedule.keep_prob))
        for m in (self.gen, self.enc, self.critic):
            m.train()
        # As in the training loop's G+E steps: gradients flow through the critic to the fakes, but are
        # not computed for its weights.
        self.critic.requires_grad_(False)
        self.params = list(self.gen.parameters()) + list(self.enc.parameters())
        s = self.schedule
        self.opt = torch.optim.Adam(self.params, lr=s.lr_g, betas=(s.beta1, s.beta2))
        # Timing does not depend on what the digits look like: random crops and labels stand in for MNIST.
        self.real = torch.rand((batch_size, IMAGE_SIZE, IMAGE_SIZE), generator=rng)  # [B, S, S]
        self.labels = torch.randint(0, 10, (batch_size,), generator=rng)  # [B]
        self.coords = grid(IMAGE_SIZE, IMAGE_SIZE)  # [S*S, 3]
        self.z = torch.randn((batch_size, self.gen.cfg.z_dim), generator=rng)  # [B, z_dim]
        self.g_out = torch.randn((batch_size, IMAGE_SIZE * IMAGE_SIZE), generator=rng) * 1e-3  # [B, S*S]
        self.noise = rng

    def generator_fwd_bwd(self, backend: str) -> None:
        self.gen.zero_grad(set_to_none=True)
        z = self.z.clone().requires_grad_()
        out = fast_generator.generator_forward(self.gen, z, self.coords, backend)  # [B, P]
        # a dense output gradient, as a loss gives (`.sum()` would hand autograd a stride-0 one)
        out.backward(self.g_out)

    def train_step(self, backend: str) -> None:
        """One G+E optimiser step: encode, sample z, generate, critic, loss, backward, clip, Adam."""
        B, S = self.real.shape[0], IMAGE_SIZE
        s = self.schedule
        mu, logvar = self.enc(self.real)  # [B, z_dim] each
        z = reparameterize(mu, logvar, self.noise)  # [B, z_dim]
        fakes = fast_generator.generator_forward(self.gen, z, self.coords, backend).view(B, S, S)
        logits = self.critic(fakes)
        if self.model == "resnet":
            loss = losses.generator_loss(logits, self.labels) + s.kl_weight * losses.kl_loss(mu, logvar, S * S)
        else:
            loss = losses.bce_real(logits) + losses.prev_vae_loss(fakes, self.real, mu, logvar)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, s.grad_clip if s.grad_clip > 0 else float("inf"))
        self.opt.step()


def _time(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_train_bench(batch_size: int = 1000, repeats: int = 3, models: tuple = MODELS,
                    progress: Progress | None = None, warmup: int = 1, seed: int = 0,
                    threads: int | None = None) -> dict:
    """Seconds per batch (median of `repeats` after `warmup` untimed runs) for each model, of
    (a) "generator fwd+bwd" and (b) "train step", with the "autograd" path (the model's own forward)
    and the "fast" path (`generator_forward`'s default backend). The two paths alternate run by run so
    that a change in the machine's load hits both alike.

    The prev generator's fast path is plain autograd (see fast_generator), so it is not timed twice:
    its "fast" rows repeat the autograd numbers with a note.

    threads: torch's thread count for the run (None: as set). On a machine whose cores other processes
    also use, torch's multi-threaded small ops stall on their barriers and plain autograd slows down
    several times over; threads=1 then gives the steadier comparison.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}; pass --batch-size 1000")
    if repeats < 1:
        raise UserError(f"repeats must be at least 1, got {repeats}; pass --repeats 3")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise UserError(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}; pass --threads 1")
    say = progress or (lambda msg: None)
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(batch_size, repeats, models, say, warmup, seed)
    finally:
        torch.set_num_threads(saved_threads)


def _run(batch_size: int, repeats: int, models: tuple, say: Progress, warmup: int, seed: int) -> dict:
    backend = "c" if fast_generator.kernel_available(ResnetConfig().width) else "torch"
    machine = machine_info()
    machine["resnet_fast_backend"] = backend
    results = []
    for model in models:
        setup = _Setup(model, batch_size, seed)
        paths = {"autograd": "autograd", "fast": "auto"} if model == "resnet" else {"autograd": "autograd"}
        for what, fn in (("generator fwd+bwd", setup.generator_fwd_bwd), ("train step", setup.train_step)):
            say(f"{model} {what} ({' vs '.join(paths)}, batch {batch_size}, {warmup}+{repeats} runs each)")
            times = {p: [] for p in paths}
            for i in range(warmup + repeats):
                for path, be in paths.items():
                    t = _time(lambda: fn(be))
                    if i >= warmup:
                        times[path].append(t)
            base = statistics.median(times["autograd"])
            for path in ("autograd", "fast"):
                row = {"model": model, "what": what, "path": path, "batch_size": batch_size}
                if path in times:
                    med = statistics.median(times[path])
                    row.update(s_per_batch=med, speedup=None if path == "autograd" else base / med,
                               runs_s=[round(t, 4) for t in times[path]])
                    if path == "fast":
                        row["backend"] = backend
                else:
                    row.update(s_per_batch=base, speedup=1.0, backend="autograd",
                               note="the prev generator's fast path is plain autograd; not timed again")
                results.append(row)
        del setup
    machine["load_average_1min_end"] = machine_info().get("load_average_1min")
    return {"machine": machine, "results": results}
