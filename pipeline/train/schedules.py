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
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

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
    norm, accumulation and everything after the logits stay float32).
    """
    if st.cfg.precision == "bf16":
        with torch.autocast(images.device.type, dtype=torch.bfloat16):
            return st.classifier(images).float()
    return st.classifier(images)


NORM = "grad_norm"  # the key of a step's global gradient norm in _step's values (not a metric)


def _read(values: dict) -> dict:
    """The step's 0-d tensors as floats, in one device-to-host copy: each .item() would be a host sync of
    its own, and on a GPU every sync drains the queue of kernels the step has launched."""
    names = [k for k, v in values.items() if isinstance(v, torch.Tensor)]
    got = torch.stack([values[k].detach().float().reshape(()) for k in names]).tolist() if names else []
    return {**values, **dict(zip(names, got))}


def _check(read: dict, finite: dict[str, str]) -> None:
    """NonFinite naming the first of `finite` ({key: name}, in order) whose value is NaN or inf."""
    for key, name in finite.items():
        if not math.isfinite(read[key]):
            raise NonFinite(name)


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list, clip: float, values: dict,
          finite: dict[str, str], name: str) -> dict:
    """zero grads, backward, clip to the global norm (0: measure only); then one read of the step's values
    (its losses and accuracies, and the norm) checks that those named in `finite` and the norm are finite,
    and only then updates. -> the values as floats (the norm left out). The step's one host sync."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
    read = _read({**values, NORM: norm})
    _check(read, {**finite, NORM: f"{name} gradient norm"})
    opt.step()
    read.pop(NORM)
    return read


def _params(*modules: nn.Module) -> list:
    return [p for m in modules for p in m.parameters()]


def _fakes(st: TrainState, real: torch.Tensor, coords: torch.Tensor):
    """Encode the real batch, sample z, render 26x26 fakes -> (fakes [B, S, S], mu, logvar)."""
    B, S, _ = real.shape
    mu, logvar = st.encoder(real)  # [B, z_dim] each
    z = reparameterize(mu, logvar, st.noise_rng)  # [B, z_dim]
    fakes = generator_forward(st.generator, z, coords, st.backend).view(B, S, S)  # [B, S, S]
    return fakes, mu, logvar


def resnet_batch(st: TrainState, real: torch.Tensor, labels: torch.Tensor, coords: torch.Tensor) -> dict:
    """Part two: up to 16 G+E steps, then classifier steps on D_loss or D_real as the balance requires."""
    s = st.cfg.schedule
    E, G, C = st.encoder, st.generator, st.classifier
    n_pixels = real[0].numel()
    ge_params, c_params = _params(E, G), _params(C)
    n = {"g": 0, "d": 0, "d_real": 0}
    m = {}

    # G+E steps on G_loss + kl_weight * KL. The classifier's weights are frozen (not its batch
    # statistics): gradients flow through it to the fakes but are not computed for its weights.
    C.requires_grad_(False)
    try:
        for _ in range(s.g_steps):
            fakes, mu, logvar = _fakes(st, real, coords)
            fake_logits = classify(st, fakes)  # [B, 11]
            g_loss = losses.generator_loss(fake_logits, labels)
            kl = losses.kl_loss(mu, logvar, n_pixels)
            loss = g_loss + s.kl_weight * kl
            m.update(_step(st.optimizers["g"], loss, ge_params, s.grad_clip,
                           {"g_loss": g_loss, "kl": kl, "g_acc": losses.accuracy(fake_logits, labels),
                            **fake_tensors(fakes)}, {"g_loss": "G_loss", "kl": "KL"}, "generator+encoder"))
            n["g"] += 1
            if n["g"] == 1:  # before any step on this batch
                m["first_g_acc"] = m["g_acc"]
            if m["g_acc"] > s.g_stop_acc:
                break
    finally:
        C.requires_grad_(True)

    def d_forward(with_fakes: bool, grad: bool) -> dict:
        with torch.set_grad_enabled(grad):
            real_logits = classify(st, real)  # [B, 11]
            if not with_fakes:
                d_real = torch.nn.functional.cross_entropy(real_logits, labels)
                return {"d_real": d_real, "real_acc": losses.accuracy(real_logits, labels)}
        with torch.no_grad():
            fakes, _, _ = _fakes(st, real, coords)
        with torch.set_grad_enabled(grad):
            fake_logits = classify(st, fakes)
            out = losses.classifier_losses(real_logits, fake_logits, labels)
        out["real_acc"] = losses.accuracy(real_logits, labels)
        out["fake_acc"] = losses.fake_accuracy(fake_logits)
        return out

    # Evaluate the classifier on this batch before deciding whether it trains. In the first
    # epoch these eval_* values are accuracies on images the classifier has not trained on.
    m.update(_read(d_forward(with_fakes=True, grad=False)))
    m["eval_real_acc"], m["eval_fake_acc"], m["eval_d_loss"] = m["real_acc"], m["fake_acc"], m["d_loss"]
    _check(m, {k: k for k in ("d_loss", "d_real", "d_fake")})

    def classifier_steps(kind: str, loss: str, with_fakes: bool, max_steps: int, metric: str, stop_above: float):
        """Up to max_steps classifier steps on `loss` (own optimiser `kind`), stopping once m[metric] > stop_above."""
        for _ in range(max_steps):
            out = d_forward(with_fakes=with_fakes, grad=True)
            m.update(_step(st.optimizers[kind], out[loss], c_params, s.grad_clip, out,
                           {loss: loss.replace("d_", "D_")}, "classifier"))
            n[kind] += 1
            if m[metric] > stop_above:
                break

    if m["fake_acc"] < s.d_fake_below and m["g_acc"] > s.d_gen_above:
        classifier_steps("d", "d_loss", True, s.d_steps, "fake_acc", s.d_stop_fake_acc)
    elif m["real_acc"] < s.d_real_below:
        classifier_steps("d_real", "d_real", False, s.d_real_steps, "real_acc", s.d_real_stop_acc)
    m["steps"] = n
    return m


def prev_batch(st: TrainState, real: torch.Tensor, labels: torch.Tensor, coords: torch.Tensor) -> dict:
    """Part one: 4 VAE-only steps, up to 4 G+VAE steps (stop once G_loss < 0.6), then maybe 1 D step."""
    s = st.cfg.schedule
    E, G, D = st.encoder, st.generator, st.classifier
    ge_params, d_params = _params(E, G), _params(D)
    n = {"vae": 0, "g": 0, "d": 0}
    m = {}

    for _ in range(s.vae_steps):
        fakes, mu, logvar = _fakes(st, real, coords)
        vae = losses.prev_vae_loss(fakes, real, mu, logvar)
        m.update(_step(st.optimizers["vae"], vae, ge_params, s.grad_clip, {"vae_loss": vae},
                       {"vae_loss": "VAE_loss"}, "VAE"))
        n["vae"] += 1

    D.requires_grad_(False)  # as above: gradients reach the fakes, not D's weights
    try:
        for _ in range(s.g_steps):
            fakes, mu, logvar = _fakes(st, real, coords)
            vae = losses.prev_vae_loss(fakes, real, mu, logvar)
            fake_logits = classify(st, fakes)  # [B, 1]
            g_loss = losses.bce_real(fake_logits)
            m.update(_step(st.optimizers["g"], g_loss + vae, ge_params, s.grad_clip,
                           {"g_loss": g_loss, "vae_loss": vae,
                            "g_acc": losses.binary_accuracy(fake_logits, real=True),  # fakes judged real
                            **fake_tensors(fakes)}, {"g_loss": "G_loss", "vae_loss": "VAE_loss"},
                           "generator+encoder"))
            n["g"] += 1
            if m["g_loss"] < s.g_stop_loss:
                break
    finally:
        D.requires_grad_(True)

    def d_forward(grad: bool) -> dict:
        with torch.no_grad():
            fakes, _, _ = _fakes(st, real, coords)
        with torch.set_grad_enabled(grad):
            real_logits, fake_logits = classify(st, real), classify(st, fakes)  # [B, 1] each
            d_real, d_fake = losses.bce_real(real_logits), losses.bce_fake(fake_logits)
            d_loss = (d_real + d_fake) / 2.0
        return {"d_loss": d_loss, "d_real": d_real, "d_fake": d_fake,
                "real_acc": losses.binary_accuracy(real_logits, real=True),
                "fake_acc": losses.binary_accuracy(fake_logits, real=False)}

    m.update(_read(d_forward(grad=False)))
    m["eval_real_acc"], m["eval_fake_acc"], m["eval_d_loss"] = m["real_acc"], m["fake_acc"], m["d_loss"]
    _check(m, {"d_loss": "D_loss"})
    if m["d_loss"] > s.d_above and m["g_loss"] < s.d_g_below:
        for _ in range(s.d_steps):
            out = d_forward(grad=True)
            m.update(_step(st.optimizers["d"], out["d_loss"], d_params, s.grad_clip, out, {"d_loss": "D_loss"},
                           "discriminator"))
            n["d"] += 1
    m["steps"] = n
    return m


SCHEDULE_FUNCTIONS = {"resnet": resnet_batch, "prev": prev_batch}
