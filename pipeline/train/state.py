"""Everything a run carries between batches (models, optimisers, RNGs, position) and its state.pt form."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn

from pipeline.checkpoint import render_payload
from pipeline.models import (DISCRIMINATOR, Classifier, ClassifierConfig, Encoder, EncoderConfig, build_generator,
                             generator_config)
from pipeline.train.config import TrainConfig


@dataclass
class TrainState:
    """The mutable state of one run; `payload()` / `restore()` turn it into plain data and back."""
    cfg: TrainConfig                    # resolved
    generator: nn.Module
    encoder: Encoder
    classifier: Classifier              # 11-class classifier (resnet) or binary discriminator (prev)
    optimizers: dict                    # name -> torch.optim.Adam (see make_optimizers)
    data_rng: torch.Generator           # epoch order and crop offsets
    noise_rng: torch.Generator          # eps of z = mu + sigma * eps
    epoch: int = 0                      # epochs completed
    batch: int = 0                      # batches completed in the current epoch
    order: torch.Tensor | None = None   # int64 [batches, batch_size]: this epoch's batches (None between epochs)
    batches: int = 0                    # batches completed in the whole run
    steps: dict = field(default_factory=dict)  # optimiser steps taken per phase, whole run
    images_seen: int = 0                # real images that went through a batch
    metrics_lines: int = 0              # lines of metrics.jsonl that belong to this state
    train_seconds: float = 0.0          # time spent in batches so far
    backend: str = "auto"               # generator forward/backward (fast_generator.BACKENDS); not saved
    device: torch.device = torch.device("cpu")  # where the models and batches live; not saved
    graphs: object | None = None        # train.graphs.StepGraphs: steps replayed as CUDA graphs; not saved

    def models(self) -> dict:
        return {"generator": self.generator, "encoder": self.encoder, "classifier": self.classifier}


def _seeds(seed: int) -> tuple[int, int, int]:
    """Three independent seeds (weights+dropout, data, noise) from one, so the streams do not correlate."""
    a, b, c = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint32)
    return int(a), int(b), int(c)


def model_configs(cfg: TrainConfig):
    """(generator, encoder, classifier) configs of a resolved TrainConfig."""
    if cfg.model == "resnet":
        gen = generator_config("resnet", width=cfg.width, n_blocks=cfg.depth)
        return gen, EncoderConfig(keep_prob=cfg.schedule.keep_prob), ClassifierConfig()
    gen = generator_config("prev", width=cfg.width, tanh_layers=cfg.depth)
    return gen, EncoderConfig(keep_prob=cfg.schedule.keep_prob), DISCRIMINATOR


def make_optimizers(cfg: TrainConfig, generator: nn.Module, encoder: nn.Module, classifier: nn.Module) -> dict:
    s = cfg.schedule
    betas = (s.beta1, s.beta2)
    # Encoder then generator, as the original's q_vars + g_vars.
    both = list(encoder.parameters()) + list(generator.parameters())
    d = list(classifier.parameters())
    if cfg.model == "resnet":
        # The original keeps two Adam optimisers for the classifier (D_loss and D_real-only steps),
        # each with its own moment estimates; so do we.
        return {"g": torch.optim.Adam(both, lr=s.lr_g, betas=betas),
                "d": torch.optim.Adam(d, lr=s.lr_d, betas=betas),
                "d_real": torch.optim.Adam(d, lr=s.lr_d, betas=betas)}
    return {"vae": torch.optim.Adam(both, lr=s.lr_vae, betas=betas),
            "g": torch.optim.Adam(both, lr=s.lr_g, betas=betas),
            "d": torch.optim.Adam(d, lr=s.lr_d, betas=betas)}


def new_state(cfg: TrainConfig, device: torch.device | str = "cpu") -> TrainState:
    """Fresh models (on `device`) and RNGs for a resolved config; seeds the global RNG (call inside
    torch.random.fork_rng). The weights are drawn on the CPU, so every device starts from the same ones;
    the data and noise generators stay on the CPU too (a run's batches and z noise do not depend on it)."""
    device = torch.device(device)
    seed_global, seed_data, seed_noise = _seeds(cfg.seed)
    torch.manual_seed(seed_global)  # weight init now, encoder dropout during training (on CUDA too)
    gen_cfg, enc_cfg, cls_cfg = model_configs(cfg)
    generator, encoder, classifier = build_generator(gen_cfg), Encoder(enc_cfg), Classifier(cls_cfg)
    for m in (generator, encoder, classifier):
        m.to(device).train()
    return TrainState(cfg=cfg, generator=generator, encoder=encoder, classifier=classifier,
                      optimizers=make_optimizers(cfg, generator, encoder, classifier),
                      data_rng=torch.Generator().manual_seed(seed_data),
                      noise_rng=torch.Generator().manual_seed(seed_noise), device=device)


def _cpu(value):
    """Tensors anywhere in nested dicts/lists/tuples -> detached CPU copies (state.pt never holds device tensors)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


def _sd(module: nn.Module) -> dict:
    return _cpu(module.state_dict())


def payload(state: TrainState, class_latents: torch.Tensor, meta: dict, digit_bank: dict | None = None) -> dict:
    """state.pt as plain data: loadable as a render Checkpoint too (generator + latents + meta)."""
    p = render_payload(state.generator, class_latents, meta, digit_bank)
    p["kind"] = "train"
    p.update({
        "train_config": state.cfg.to_dict(),
        "encoder_config": asdict(state.encoder.cfg),
        "classifier_config": {**asdict(state.classifier.cfg), "channels": list(state.classifier.cfg.channels)},
        "encoder": _sd(state.encoder),
        "classifier": _sd(state.classifier),
        "optimizers": {k: _cpu(opt.state_dict()) for k, opt in state.optimizers.items()},
        "rng": {"global": torch.get_rng_state(), "data": state.data_rng.get_state(),
                "noise": state.noise_rng.get_state(), **_cuda_rng(state.device)},
        "position": {"epoch": state.epoch, "batch": state.batch},
        "order": None if state.order is None else state.order.clone(),
        "counters": {"batches": state.batches, "steps": dict(state.steps), "images_seen": state.images_seen,
                     "metrics_lines": state.metrics_lines, "train_seconds": state.train_seconds},
    })
    return p


def _cuda_rng(device: torch.device) -> dict:
    """The CUDA generator's state (encoder dropout runs there) for a run on a CUDA device, else nothing."""
    return {"cuda": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}


def restore(cfg: TrainConfig, data: dict, device: torch.device | str = "cpu") -> TrainState:
    """Rebuild a TrainState on `device` from a state.pt dict (also sets the global RNG: call inside fork_rng).
    Resuming on the device the run was saved from continues it exactly; on another device it continues
    with that device's arithmetic (and dropout stream), from the same weights and position."""
    state = new_state(cfg, device)
    state.generator.load_state_dict(data["generator"], strict=True)
    state.encoder.load_state_dict(data["encoder"], strict=True)
    state.classifier.load_state_dict(data["classifier"], strict=True)
    for name, opt in state.optimizers.items():
        opt.load_state_dict(data["optimizers"][name])
    torch.set_rng_state(data["rng"]["global"])
    if state.device.type == "cuda" and "cuda" in data["rng"]:
        torch.cuda.set_rng_state(data["rng"]["cuda"], state.device)
    state.data_rng.set_state(data["rng"]["data"])
    state.noise_rng.set_state(data["rng"]["noise"])
    state.epoch, state.batch = data["position"]["epoch"], data["position"]["batch"]
    state.order = data["order"]
    c = data["counters"]
    state.batches, state.steps, state.images_seen = c["batches"], dict(c["steps"]), c["images_seen"]
    state.metrics_lines, state.train_seconds = c["metrics_lines"], c["train_seconds"]
    return state
