"""The article's per-batch balancing schedules: one function per model family.

Each function takes one batch of real crops and labels, runs that family's
sequence of optimiser steps, and returns the batch's metrics. Where the article
is silent we follow the original TensorFlow code:

* Every step draws fresh eps (z = mu + sigma * eps) and fresh encoder dropout
  masks, and re-renders the fakes: the original ran each step as one session
  call, which re-sampled every random op. Classifier-only steps therefore see a
  new sample of fakes each time, even though G is unchanged between them.
* Losses and accuracies that decide when to stop are those of the forward pass
  of the step just taken (before its update), as the original fetched them
  together with the update op.
* The classifier stays in training mode throughout (batch statistics for real
  and generated batches separately), as the original's batch norm always used
  batch moments.
* A loss or gradient norm that is not finite stops before the update, so the
  weights never take a NaN step.

Each kind of step (resnet: G+E, evaluation, D_loss, D_real; prev: VAE, G+VAE, evaluation, D) is one StepKind:
what it computes from the batch and which optimiser it steps. `take` runs one: forward, backward, clip, then one
read of all its values (the step's one host sync), the finiteness check, and only then the update. The schedule
functions decide which kinds run and when to stop; the training benchmark times the same kinds, and on CUDA
train.graphs can replay each kind as a captured CUDA graph.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn as nn

from pipeline.devices import to_device
from pipeline.models import reparameterize
from pipeline.train import losses
from pipeline.train.fast_generator import generator_forward
from pipeline.train.health import fake_tensors
from pipeline.train.state import TrainState


class NonFinite(Exception):
    """A loss or gradient norm became NaN/inf; `what` names it."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def classify(st: TrainState, images: torch.Tensor) -> torch.Tensor:
    """The one place training runs the classifier/discriminator -> float32 logits.

    With precision "bf16" its convolutions and head run under bfloat16 autocast (weights, batch
    norm, accumulation and everything after the logits stay float32). The autocast cache is off: each weight is
    cast once per call anyway, and a cache must not live across a CUDA graph's capture (train.graphs).
    """
    if st.cfg.precision == "bf16":
        with torch.autocast(images.device.type, dtype=torch.bfloat16, cache_enabled=False):
            return st.classifier(images).float()
    return st.classifier(images)


NORM = "grad_norm"  # the key of a step's global gradient norm among its values (not a metric)


class Batch(NamedTuple):
    """One batch as the steps see it, on the models' device."""
    real: torch.Tensor    # [B, S, S] real crops in [0, 1]
    labels: torch.Tensor  # [B] int64 digit labels
    coords: torch.Tensor  # [S*S, 3] the training grid


@dataclass(frozen=True)
class StepKind:
    """One kind of optimiser step (or the evaluation) of a schedule."""
    name: str            # the optimiser it steps (st.optimizers[name]), or "eval": no update
    compute: Callable    # (st, batch, eps) -> (loss to minimise or None, {key: 0-d tensor}: what the step reports)
    modules: Callable    # st -> the modules whose parameters it trains (empty for "eval")
    frozen: Callable     # st -> modules whose weights get no gradient while it runs (their batch statistics do)
    finite: dict         # {key: name}: values that must be finite (in this order), named in the error
    what: str            # whose gradient norm, for its error
    fakes: bool          # it renders fakes, so draws z noise (eps) from the run's noise generator

    @property
    def trains(self) -> bool:
        return self.name != "eval"

    def params(self, st: TrainState) -> list:
        return _params(*self.modules(st))


def _params(*modules: nn.Module) -> list:
    return [p for m in modules for p in m.parameters()]


def draw_eps(st: TrainState, batch: Batch) -> torch.Tensor:
    """The z noise of one fakes render [B, z_dim], from the run's CPU noise generator (so a run's noise does not
    depend on its device), copied to the models' device without a host sync."""
    shape = (batch.real.shape[0], st.encoder.cfg.z_dim)
    return to_device(torch.randn(shape, generator=st.noise_rng, dtype=torch.float32), batch.real.device)


def _fakes(st: TrainState, real: torch.Tensor, coords: torch.Tensor, eps: torch.Tensor):
    """Encode the real batch, z = mu + sigma * eps, render 26x26 fakes -> (fakes [B, S, S], mu, logvar)."""
    B, S, _ = real.shape
    mu, logvar = st.encoder(real)  # [B, z_dim] each
    z = reparameterize(mu, logvar, eps=eps)  # [B, z_dim]
    fakes = generator_forward(st.generator, z, coords, st.backend).view(B, S, S)  # [B, S, S]
    return fakes, mu, logvar


@contextmanager
def _frozen(modules):
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m in modules:
            m.requires_grad_(True)


def step_values(st: TrainState, kind: StepKind, batch: Batch, eps: torch.Tensor | None) -> tuple[list, torch.Tensor]:
    """The device work of one step, no host sync: the kind's forward, and when it trains zero grads, backward and
    clip to the global norm (grad_clip 0: measure only) -> (value keys, the values [k] float32 in that order; the
    gradient norm last, under NORM). The parameters' .grad hold the step's gradients; nothing is updated."""
    with _frozen(kind.frozen(st)), torch.set_grad_enabled(kind.trains):
        loss, values = kind.compute(st, batch, eps)
        if kind.trains:
            params = kind.params(st)
            st.optimizers[kind.name].zero_grad(set_to_none=True)
            loss.backward()
            clip = st.cfg.schedule.grad_clip
            values = {**values, NORM: torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))}
    names = list(values)
    return names, torch.stack([values[k].detach().float().reshape(()) for k in names])


def finish_step(st: TrainState, kind: StepKind, names: list, values: torch.Tensor) -> dict:
    """One read of a step's values (its one device-to-host copy: each .item() would be a host sync of its own,
    and on a GPU every sync drains the queue of launched kernels), the check that those named in kind.finite and
    the gradient norm are finite, and only then the update -> the values as floats (the norm left out)."""
    read = dict(zip(names, values.tolist()))
    _check(read, {**kind.finite, **({NORM: f"{kind.what} gradient norm"} if kind.trains else {})})
    if kind.trains:
        st.optimizers[kind.name].step()
        read.pop(NORM)
    return read


def _check(read: dict, finite: dict[str, str]) -> None:
    """NonFinite naming the first of `finite` ({key: name}, in order) whose value is NaN or inf."""
    for key, name in finite.items():
        if not math.isfinite(read[key]):
            raise NonFinite(name)


def take(st: TrainState, kind: StepKind, batch: Batch) -> dict:
    """One step of `kind` on `batch` -> its values as floats (after its update). Replayed as a CUDA graph when
    the run has them (st.graphs, train.graphs), else run as it stands."""
    if st.graphs is not None:
        return st.graphs.take(st, kind, batch)
    eps = draw_eps(st, batch) if kind.fakes else None
    return finish_step(st, kind, *step_values(st, kind, batch, eps))


# ---- part two: resnet generator, 11-class classifier

def _resnet_g(st: TrainState, b: Batch, eps):
    """G+E step on G_loss + kl_weight * KL. The classifier's weights are frozen (not its batch statistics):
    gradients flow through it to the fakes but are not computed for its weights."""
    fakes, mu, logvar = _fakes(st, b.real, b.coords, eps)
    fake_logits = classify(st, fakes)  # [B, 11]
    g_loss = losses.generator_loss(fake_logits, b.labels)
    kl = losses.kl_loss(mu, logvar, b.real[0].numel())
    return g_loss + st.cfg.schedule.kl_weight * kl, {"g_loss": g_loss, "kl": kl,
                                                     "g_acc": losses.accuracy(fake_logits, b.labels),
                                                     **fake_tensors(fakes)}


def _resnet_classifier(with_fakes: bool, loss: str | None):
    """The classifier's forward on the real batch, and on fresh fakes when with_fakes (rendered without
    gradients: its steps train the classifier only) -> compute(st, batch, eps) of a step on `loss` (None: the
    evaluation)."""
    def compute(st: TrainState, b: Batch, eps):
        real_logits = classify(st, b.real)  # [B, 11]
        if not with_fakes:
            d_real = torch.nn.functional.cross_entropy(real_logits, b.labels)
            return d_real, {"d_real": d_real, "real_acc": losses.accuracy(real_logits, b.labels)}
        with torch.no_grad():
            fakes, _, _ = _fakes(st, b.real, b.coords, eps)
        fake_logits = classify(st, fakes)
        out = losses.classifier_losses(real_logits, fake_logits, b.labels)
        out["real_acc"] = losses.accuracy(real_logits, b.labels)
        out["fake_acc"] = losses.fake_accuracy(fake_logits)
        return (out[loss] if loss else None), out
    return compute


def _generator_and_encoder(st: TrainState) -> tuple:
    return st.encoder, st.generator  # encoder then generator, as the optimisers hold them (state.make_optimizers)


def _classifier(st: TrainState) -> tuple:
    return (st.classifier,)


def _none(st: TrainState) -> tuple:
    return ()


RESNET_STEPS = {
    "g": StepKind("g", _resnet_g, _generator_and_encoder, _classifier, {"g_loss": "G_loss", "kl": "KL"},
                  "generator+encoder", fakes=True),
    # Evaluate the classifier on the batch before deciding whether it trains (no update). In the first epoch
    # these are accuracies on images it has not trained on.
    "eval": StepKind("eval", _resnet_classifier(True, None), _none, _none,
                     {k: k for k in ("d_loss", "d_real", "d_fake")}, "classifier", fakes=True),
    "d": StepKind("d", _resnet_classifier(True, "d_loss"), _classifier, _none, {"d_loss": "D_loss"}, "classifier",
                  fakes=True),
    "d_real": StepKind("d_real", _resnet_classifier(False, "d_real"), _classifier, _none, {"d_real": "D_real"},
                       "classifier", fakes=False),
}


def resnet_batch(st: TrainState, real: torch.Tensor, labels: torch.Tensor, coords: torch.Tensor) -> dict:
    """Part two: up to 16 G+E steps, then classifier steps on D_loss or D_real as the balance requires."""
    s, k = st.cfg.schedule, RESNET_STEPS
    b = Batch(real, labels, coords)
    n = {"g": 0, "d": 0, "d_real": 0}
    m = {}
    for _ in range(s.g_steps):
        m.update(take(st, k["g"], b))
        n["g"] += 1
        if n["g"] == 1:  # before any step on this batch
            m["first_g_acc"] = m["g_acc"]
        if m["g_acc"] > s.g_stop_acc:
            break

    m.update(take(st, k["eval"], b))
    m["eval_real_acc"], m["eval_fake_acc"], m["eval_d_loss"] = m["real_acc"], m["fake_acc"], m["d_loss"]

    def classifier_steps(kind: str, max_steps: int, metric: str, stop_above: float):
        """Up to max_steps steps of `kind` (its own optimiser), stopping once m[metric] > stop_above."""
        for _ in range(max_steps):
            m.update(take(st, k[kind], b))
            n[kind] += 1
            if m[metric] > stop_above:
                break

    if m["fake_acc"] < s.d_fake_below and m["g_acc"] > s.d_gen_above:
        classifier_steps("d", s.d_steps, "fake_acc", s.d_stop_fake_acc)
    elif m["real_acc"] < s.d_real_below:
        classifier_steps("d_real", s.d_real_steps, "real_acc", s.d_real_stop_acc)
    m["steps"] = n
    return m


# ---- part one: prev generator, binary discriminator

def _prev_vae(st: TrainState, b: Batch, eps):
    fakes, mu, logvar = _fakes(st, b.real, b.coords, eps)
    vae = losses.prev_vae_loss(fakes, b.real, mu, logvar)
    return vae, {"vae_loss": vae}


def _prev_g(st: TrainState, b: Batch, eps):
    """G+VAE step; the discriminator's weights frozen, as resnet's classifier in its G step."""
    fakes, mu, logvar = _fakes(st, b.real, b.coords, eps)
    vae = losses.prev_vae_loss(fakes, b.real, mu, logvar)
    fake_logits = classify(st, fakes)  # [B, 1]
    g_loss = losses.bce_real(fake_logits)
    return g_loss + vae, {"g_loss": g_loss, "vae_loss": vae,
                          "g_acc": losses.binary_accuracy(fake_logits, real=True),  # fakes judged real
                          **fake_tensors(fakes)}


def _prev_discriminator(trains: bool):
    def compute(st: TrainState, b: Batch, eps):
        with torch.no_grad():
            fakes, _, _ = _fakes(st, b.real, b.coords, eps)
        real_logits, fake_logits = classify(st, b.real), classify(st, fakes)  # [B, 1] each
        d_real, d_fake = losses.bce_real(real_logits), losses.bce_fake(fake_logits)
        d_loss = (d_real + d_fake) / 2.0
        return (d_loss if trains else None), {"d_loss": d_loss, "d_real": d_real, "d_fake": d_fake,
                                              "real_acc": losses.binary_accuracy(real_logits, real=True),
                                              "fake_acc": losses.binary_accuracy(fake_logits, real=False)}
    return compute


PREV_STEPS = {
    "vae": StepKind("vae", _prev_vae, _generator_and_encoder, _none, {"vae_loss": "VAE_loss"}, "VAE", fakes=True),
    "g": StepKind("g", _prev_g, _generator_and_encoder, _classifier, {"g_loss": "G_loss", "vae_loss": "VAE_loss"},
                  "generator+encoder", fakes=True),
    "eval": StepKind("eval", _prev_discriminator(False), _none, _none, {"d_loss": "D_loss"}, "discriminator",
                     fakes=True),
    "d": StepKind("d", _prev_discriminator(True), _classifier, _none, {"d_loss": "D_loss"}, "discriminator",
                  fakes=True),
}


def prev_batch(st: TrainState, real: torch.Tensor, labels: torch.Tensor, coords: torch.Tensor) -> dict:
    """Part one: 4 VAE-only steps, up to 4 G+VAE steps (stop once G_loss < 0.6), then maybe 1 D step."""
    s, k = st.cfg.schedule, PREV_STEPS
    b = Batch(real, labels, coords)
    n = {"vae": 0, "g": 0, "d": 0}
    m = {}
    for _ in range(s.vae_steps):
        m.update(take(st, k["vae"], b))
        n["vae"] += 1
    for _ in range(s.g_steps):
        m.update(take(st, k["g"], b))
        n["g"] += 1
        if m["g_loss"] < s.g_stop_loss:
            break
    m.update(take(st, k["eval"], b))
    m["eval_real_acc"], m["eval_fake_acc"], m["eval_d_loss"] = m["real_acc"], m["fake_acc"], m["d_loss"]
    if m["d_loss"] > s.d_above and m["g_loss"] < s.d_g_below:
        for _ in range(s.d_steps):
            m.update(take(st, k["d"], b))
            n["d"] += 1
    m["steps"] = n
    return m


SCHEDULE_FUNCTIONS = {"resnet": resnet_batch, "prev": prev_batch}
STEP_KINDS = {"resnet": RESNET_STEPS, "prev": PREV_STEPS}
