"""Project 26x26 digit images into a checkpoint's latent space: the latent whose training-size render matches
each image best (stylegan2-ada's projector.py, for CPPNs).

What "best" means matters here: the article's VAE is KL-only, so its generator was never trained to
reproduce an input's pixels, and plain pixel MSE often lands on a blob or another digit that shares the
ink. The loss adds the distance between the images' features in a digit classifier trained for this
(pipeline/project/feature_cnn.pt; never the judge that reports what was read, pipeline/evaluate's), and a
prior term that keeps z where N(0, I) puts it, where the model renders well:

    loss(z) = mean((G(z) - x)^2) + FEATURE_WEIGHT * mean((f(G(z)) - f(x))^2) + PRIOR_WEIGHT * mean(z^2)

Starts: for every image, among the checkpoint's stored encodings of real digits and its class latents,
the candidate of the class the feature network reads in the image with the lowest loss, and the STARTS - 1
lowest of any class; then STEPS of Adam on all images x starts at once (one
batch: the generator's fused training kernel, pipeline.train.fast_generator), keeping each image's best.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from pipeline.coords import grid
from pipeline.digit_classifier import LoadedCNN, load_digit_cnn
from pipeline.train.fast_generator import generator_forward

FEATURE_PATH = Path(__file__).resolve().parent / "feature_cnn.pt"
SIZE, SCALE = 26, 8.0        # the training grid
STARTS = 2
STEPS = 60
LR = 0.1
FEATURE_WEIGHT = 1.0
CLASS_WEIGHT = 0.0
PRIOR_WEIGHT = 0.002


@dataclass(frozen=True)
class Projection:
    latents: np.ndarray   # float32 [N, z_dim]
    renders: np.ndarray   # float32 [N, 26, 26]: G(latent) at the training grid, white on black
    pixel_rmse: np.ndarray  # float32 [N]: root mean square pixel error of the render against the image
    starts: np.ndarray    # int64 [N]: which candidate each best latent started from (see candidates())


@lru_cache(maxsize=1)
def load_feature_cnn() -> LoadedCNN:
    """The feature network, read once per process (it is never changed: its parameters take no gradient)."""
    return load_digit_cnn(FEATURE_PATH, fix="reinstall cppn-video, or rebuild it as scripts/train_digit_cnn.py says")


def candidates(ck) -> torch.Tensor:
    """The starting points: the stored digit encodings, then the 10 class latents ([M, z_dim] float32)."""
    parts = [ck.digit_latents] if ck.digit_latents is not None else []
    parts.append(ck.class_latents)
    return torch.cat([torch.as_tensor(p, dtype=torch.float32) for p in parts])


def candidate_labels(ck) -> torch.Tensor:
    """The class of each candidate: the stored encodings' labels, then 0..9."""
    parts = [torch.as_tensor(ck.digit_labels)] if ck.digit_latents is not None else []
    parts.append(torch.arange(ck.class_latents.shape[0]))
    return torch.cat([p.long() for p in parts])


_CANDIDATES: dict = {}  # (checkpoint sha256, feature network) -> the candidates, their renders and features


def _candidate_renders(ck, net, coords):
    """The starting candidates with their training-size renders and features, once per checkpoint: they depend
    on nothing else, and rendering them (170 for the bundled checkpoints) was most of a single image's time.
    The fused training kernel renders them (the plain module took 3-5 s for e24's 170 on a loaded Zen 2, the
    kernel 0.13 s; the two agree within 1e-4)."""
    key = (getattr(ck, "sha256", None) or id(ck), id(net))
    if key not in _CANDIDATES:
        cand = candidates(ck)
        rc = generator_forward(ck.generator, cand, coords)
        _CANDIDATES.clear()  # one checkpoint's at a time is what a render or the page needs
        _CANDIDATES[key] = (cand, rc, net.features(rc.view(-1, SIZE, SIZE)))
    return _CANDIDATES[key]


SMALL_BATCH = 64  # rows (images x starts) below which the fit runs on one thread


def project_images(ck, images: np.ndarray, features: LoadedCNN | None = None, steps: int = STEPS,
                   starts: int = STARTS, progress=None) -> Projection:
    """images: float [N, 26, 26] in [0, 1], white on black (pipeline.project.images) -> Projection.
    progress(step) is called after each Adam step (0 first).

    A small batch (under SMALL_BATCH rows: one image, the page's drawing) runs on one thread: its steps are
    too small to share, and on a busy 2-core Zen 2 two threads made one image 20x slower (0.24 s against
    6.2 s for 30 steps, docs/PERFORMANCE.md "Your own digits")."""
    rows = len(images) * min(starts, 10**6)
    threads = torch.get_num_threads()
    if rows < SMALL_BATCH and threads > 1:
        torch.set_num_threads(1)
        try:
            return _project(ck, images, features, steps, starts, progress)
        finally:
            torch.set_num_threads(threads)
    return _project(ck, images, features, steps, starts, progress)


def _project(ck, images, features, steps, starts, progress) -> Projection:
    net = (features or load_feature_cnn()).model
    gen = ck.generator
    for p in (*gen.parameters(), *net.parameters()):
        p.requires_grad_(False)  # the gradient is for z only
    coords = grid(SIZE, SIZE, SCALE)
    x = torch.as_tensor(np.asarray(images, dtype=np.float32)).reshape(-1, SIZE * SIZE)  # [N, P]
    n = x.shape[0]
    with torch.no_grad():
        fx = net.features(x.view(n, SIZE, SIZE))
        px = torch.softmax(net.fc2(fx), 1)
        cand, rc, fc = _candidate_renders(ck, net, coords)                  # [M, Z], [M, P], [M, F]
        score = (torch.cdist(x, rc) ** 2 / x.shape[1] + FEATURE_WEIGHT * torch.cdist(fx, fc) ** 2 / fx.shape[1]
                 + PRIOR_WEIGHT * (cand ** 2).mean(1))                      # [N, M]
        # The first start is the best candidate of the class the feature network reads in x (the pixel and
        # feature distances alone often prefer a thin 7 for a 2 or a 3); the rest the best of any class.
        same = candidate_labels(ck)[None, :] == px.argmax(1)[:, None]      # [N, M]
        k = min(starts, cand.shape[0])
        own = torch.where(same, score, torch.inf).argmin(1, keepdim=True)   # [N, 1]
        others = score.scatter(1, own, torch.inf).topk(k - 1, dim=1, largest=False).indices
        first = torch.cat([own, others], 1)                                 # [N, k]
    z = cand[first.reshape(-1)].clone().requires_grad_(True)                # [N*k, Z]
    target, ftarget, ptarget = x.repeat_interleave(k, 0), fx.repeat_interleave(k, 0), px.repeat_interleave(k, 0)
    opt = torch.optim.Adam([z], lr=LR)
    best = torch.full((n * k,), float("inf"))
    best_z = z.detach().clone()
    if progress:
        progress(0)
    for step in range(steps + 1):
        r = generator_forward(gen, z, coords)                              # [N*k, P]
        pixel = ((r - target) ** 2).mean(1)
        fr = net.features(r.view(-1, SIZE, SIZE))
        feat = ((fr - ftarget) ** 2).mean(1)
        cls = -(ptarget * torch.log_softmax(net.fc2(fr), 1)).sum(1)  # cross entropy to what x reads as
        loss = pixel + FEATURE_WEIGHT * feat + CLASS_WEIGHT * cls + PRIOR_WEIGHT * (z ** 2).mean(1)
        with torch.no_grad():
            better = loss < best
            best = torch.where(better, loss, best)
            best_z[better] = z.detach()[better]
        if step == steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        if progress:
            progress(step + 1)
    pick = best.view(n, k).argmin(1)                                        # [N]
    rows = torch.arange(n) * k + pick
    lat = best_z[rows]
    with torch.no_grad():
        renders = generator_forward(gen, lat, coords)
    rmse = ((renders - x) ** 2).mean(1).sqrt()
    return Projection(latents=lat.numpy().astype(np.float32), renders=renders.view(n, SIZE, SIZE).numpy(),
                      pixel_rmse=rmse.numpy().astype(np.float32),
                      starts=first.gather(1, pick[:, None]).squeeze(1).numpy())
