"""Measurements of the article's claims for one checkpoint, and the bundled digit classifier they use.

The article claims (i) the generators make recognisable digits of every class, (ii) longer training
makes better 26x26 digits and (iii) less detailed/"interesting" large images. `evaluate_checkpoint`
turns these into numbers:

- class digits: each of the 10 class latents rendered at 26x26 (scale 8.0, the training grid) and
  classified by the project's own CNN (pipeline/evaluate/digit_cnn.pt); how many come out as their
  class. The same for the stored single-digit encodings ("bank digits") when the checkpoint has them.
- random digits: `samples` latents z ~ N(0, I) (seeded) at 26x26: the fraction the CNN classifies with
  confidence >= 0.9, how many classes appear among those, and the class histogram.
- detail: at 4 of those random latents and the 10 class latents, `size` x `size` renders; the fraction of
  the spectral power of the mean-removed image above 1/8 of Nyquist in radial frequency.

Renders are the generator's output as the training images were: white strokes (1.0) on black (0.0), the
orientation of MNIST that the CNN was trained on.
"""
from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.torchfile import read_plain
from pipeline.evaluate.digit_cnn import CONFIG_KEYS, DigitCNN, DigitCNNConfig, expected_shapes

ASSET_PATH = Path(__file__).resolve().parent / "digit_cnn.pt"
ASSET_FORMAT = 1
REQUIRED_KEYS = ("format", "config", "state_dict", "test_accuracy", "train_command", "data_sha256")
OPTIONAL_KEYS = ("meta",)

EVAL_SIZE = 26            # the training resolution
EVAL_SCALE = 8.0          # the training coordinate scale
CONFIDENCE = 0.9          # a random digit is "recognisable" when the CNN's top probability reaches this
DETAIL_CUTOFF = 1.0 / 8   # detail: power above this fraction of Nyquist (radial)
DETAIL_RANDOM = 4         # random latents rendered large for detail (the first of the random sample)


# ----------------------------------------------------------------------------- the classifier asset

@dataclass
class LoadedCNN:
    model: DigitCNN          # eval mode, CPU, float32, no gradients
    config: DigitCNNConfig
    test_accuracy: float     # on the 10,000 MNIST test digits (center crops), as recorded when trained
    train_command: str
    data_sha256: dict
    path: Path
    sha256: str
    meta: dict = field(default_factory=dict)


def cnn_payload(model: DigitCNN, test_accuracy: float, train_command: str, data_sha256: dict,
                meta: dict | None = None) -> dict:
    """The asset as plain data (tensors, numbers, strings, dicts): loadable with weights_only."""
    payload = {
        "format": ASSET_FORMAT,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()},
        "test_accuracy": float(test_accuracy),
        "train_command": str(train_command),
        "data_sha256": {str(k): str(v) for k, v in data_sha256.items()},
    }
    if meta is not None:
        payload["meta"] = dict(meta)
    problem = payload_problem(payload)
    if problem:
        raise ValueError(problem)
    buf = io.BytesIO()  # what is saved must load back as data (a str subclass such as torch.__version__ would not)
    torch.save(payload, buf)
    try:
        torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    except Exception as e:
        raise ValueError(f"the payload is not plain data: {(str(e).strip().splitlines() or [''])[0]}") from None
    return payload


def payload_problem(data) -> str:
    """Why a loaded asset dict is not a valid digit classifier, or "" if it is (checked before building)."""
    if not isinstance(data, dict):
        return f"holds a {type(data).__name__}, not a digit-classifier dict"
    if data.get("format") != ASSET_FORMAT:
        return f"has format {data.get('format')!r}, this cppn-video reads format {ASSET_FORMAT}"
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        return f"is missing {', '.join(missing)}"
    extra = sorted(str(k) for k in data if k not in REQUIRED_KEYS + OPTIONAL_KEYS)
    if extra:
        return f"has unknown keys {', '.join(extra)}"
    cfg_values = data["config"]
    if not isinstance(cfg_values, dict) or set(cfg_values) != set(CONFIG_KEYS):
        got = sorted(map(str, cfg_values)) if isinstance(cfg_values, dict) else type(cfg_values).__name__
        return f"has config keys {got}, expected {sorted(CONFIG_KEYS)}"
    try:
        cfg = DigitCNNConfig(**cfg_values)
    except (TypeError, ValueError) as e:
        return f"has an invalid config ({e})"
    state = data["state_dict"]
    shapes = expected_shapes(cfg)
    if not isinstance(state, dict) or set(state) != set(shapes):
        got = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        return f"has state_dict keys {got}, expected {sorted(shapes)}"
    for key, shape in shapes.items():
        t = state[key]
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float32 or tuple(t.shape) != shape:
            what = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            return f"has {key} {what}, expected float32 {shape}"
        if not torch.isfinite(t).all():
            return f"has non-finite values in {key}"
    acc = data["test_accuracy"]
    if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0.0 <= acc <= 1.0:
        return f"has test_accuracy {acc!r}, expected a number in [0, 1]"
    if not isinstance(data["train_command"], str):
        return "has a train_command that is not a string"
    if not isinstance(data["data_sha256"], dict):
        return "has data_sha256 that is not a dict"
    if "meta" in data and not isinstance(data["meta"], dict):
        return "has meta that is not a dict"
    return ""


def load_digit_cnn(path: str | os.PathLike | None = None) -> LoadedCNN:
    """Load and validate the digit classifier (default: the bundled asset); every problem is one UserError line."""
    path = Path(path) if path is not None else ASSET_PATH
    fix = "reinstall cppn-video or rebuild it with scripts/train_digit_cnn.py"
    data, digest = read_plain(path, "digit classifier", fix)
    problem = payload_problem(data)
    if problem:
        raise UserError(f"digit classifier {path} {problem}; {fix}")
    cfg = DigitCNNConfig(**data["config"])
    model = DigitCNN(cfg)
    model.load_state_dict(data["state_dict"], strict=True)
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return LoadedCNN(model=model, config=cfg, test_accuracy=float(data["test_accuracy"]),
                     train_command=data["train_command"], data_sha256=dict(data["data_sha256"]), path=path,
                     sha256=digest, meta=dict(data.get("meta", {})))


@torch.no_grad()
def classify(model: DigitCNN, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """float [B, S, S] in [0, 1] (white on black) -> softmax probabilities [B, n_classes] (model in eval mode)."""
    was_training = model.training
    model.eval()
    try:
        images = torch.as_tensor(images, dtype=torch.float32)
        out = [torch.softmax(model(images[i:i + batch]), dim=1) for i in range(0, images.shape[0], batch)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.cfg.n_classes)


def accuracy(model: DigitCNN, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images (float [B, S, S]) classified as their label."""
    if images.shape[0] == 0:
        return 0.0
    correct = int((classify(model, images).argmax(1) == torch.as_tensor(labels)).sum())
    return correct / images.shape[0]  # exact in Python floats (9929/10000 -> 0.9929)


# ----------------------------------------------------------------------------- detail

def detail_fraction(image, cutoff: float = DETAIL_CUTOFF) -> float:
    """Fraction of the 2D spectral power of the mean-removed image above `cutoff` x Nyquist (radial).

    image: a 2D array (any real values). Frequencies are in cycles per pixel (Nyquist 0.5); the corners
    beyond Nyquist radially count as above. A flat image has no power and scores 0.
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"image must be a non-empty 2D array, got shape {a.shape}")
    a = a - a.mean()
    if float(np.mean(a * a)) < 1e-12:
        return 0.0
    power = np.abs(np.fft.fft2(a)) ** 2
    fy = np.fft.fftfreq(a.shape[0])[:, None]
    fx = np.fft.fftfreq(a.shape[1])[None, :]
    radius = np.sqrt(fx * fx + fy * fy) / 0.5  # in units of Nyquist
    total = float(power.sum())
    return float(power[radius > cutoff].sum() / total) if total > 0 else 0.0


# ----------------------------------------------------------------------------- one checkpoint

@dataclass
class EvalRow:
    """Every measurement for one checkpoint (see the module docstring)."""
    name: str
    path: str
    sha256: str
    family: str
    epoch: int | None
    class_digits: int                # of 10 class latents, classified as their class
    class_predictions: list          # the CNN's class for each class latent (index = intended class)
    bank_digits: float | None        # fraction of stored single-digit encodings classified as their label
    bank_confident: float | None     # ... as their label with confidence >= `confidence` (clearly that digit)
    bank_size: int                   # how many encodings the checkpoint stores (0: none)
    random_samples: int
    random_recognisable: float       # fraction of random latents classified with confidence >= `confidence`
    random_classes_present: int      # distinct classes among the recognisable ones, 0..10
    random_histogram: list           # [10] counts of the recognisable ones per class
    random_mean_intensity: float     # mean pixel of the random 26x26 renders (white strokes on black: low)
    detail: float                    # mean detail fraction over all detail frames
    detail_random: float             # ... over the random latents
    detail_class: float              # ... over the class latents
    detail_size: int                 # side of the detail renders
    seed: int
    confidence: float
    cnn_sha256: str
    cnn_test_accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)


def random_latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """n latents z ~ N(0, I), float32 [n, z_dim], a function of the seed only."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, z_dim, generator=g, dtype=torch.float32)


def evaluate_checkpoint(ck, cnn: LoadedCNN | None = None, size: int = 1080, samples: int = 1000, seed: int = 0,
                        device: str = "auto",
                        progress: Callable[..., None] | None = None) -> EvalRow:
    """Measure one loaded Checkpoint (pipeline.checkpoint.load_checkpoint). progress(n) counts detail frames."""
    from pipeline.render import Renderer, check_frame_size

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UserError(f"samples must be a positive whole number, got {samples!r}")
    check_frame_size(size, size)
    cnn = cnn or load_digit_cnn()
    advance = progress or (lambda n=1, **kw: None)
    gen = ck.generator
    n_classes = ck.class_latents.shape[0]

    # 26x26 digits, as the generator was trained to draw them
    with Renderer(gen, EVAL_SIZE, EVAL_SIZE, scale=EVAL_SCALE, device=device) as small:
        class_probs = classify(cnn.model, small.render_float(ck.class_latents))
        class_pred = class_probs.argmax(1)
        class_digits = int((class_pred == torch.arange(n_classes)).sum())

        bank_digits, bank_confident, bank_size = None, None, 0
        if ck.digit_latents is not None and ck.digit_latents.shape[0] > 0:
            bank_size = int(ck.digit_latents.shape[0])
            bank_conf, bank_pred = classify(cnn.model, small.render_float(ck.digit_latents)).max(1)
            bank_right = bank_pred == ck.digit_labels
            bank_digits = int(bank_right.sum()) / bank_size
            bank_confident = int((bank_right & (bank_conf >= CONFIDENCE)).sum()) / bank_size

        z = random_latents(samples, ck.z_dim, seed)
        images = torch.cat([small.render_float(z[i:i + 500]) for i in range(0, samples, 500)])
        probs = classify(cnn.model, images)
        conf, pred = probs.max(1)
        sure = conf >= CONFIDENCE
        hist = torch.bincount(pred[sure], minlength=cnn.config.n_classes)
        mean_intensity = float(images.mean())

    # detail at the output resolution, one frame at a time (a 3240 frame is 42 MB as float32)
    detail_z = torch.cat([z[:DETAIL_RANDOM], ck.class_latents])
    scores = []
    advance(0)
    with Renderer(gen, size, size, scale=EVAL_SCALE, device=device) as big:
        for i in range(detail_z.shape[0]):
            frame = big.render_float(detail_z[i:i + 1])[0].numpy()
            scores.append(detail_fraction(frame))
            advance(1)
    n_rand = min(DETAIL_RANDOM, samples)

    return EvalRow(
        name=ck.name, path=str(ck.path), sha256=ck.sha256, family=ck.family, epoch=ck.epoch,
        class_digits=class_digits, class_predictions=[int(c) for c in class_pred],
        bank_digits=bank_digits, bank_confident=bank_confident, bank_size=bank_size,
        random_samples=samples, random_recognisable=int(sure.sum()) / samples,
        random_classes_present=int((hist > 0).sum()), random_histogram=[int(c) for c in hist],
        random_mean_intensity=mean_intensity,
        detail=float(np.mean(scores)), detail_random=float(np.mean(scores[:n_rand])),
        detail_class=float(np.mean(scores[n_rand:])), detail_size=size,
        seed=int(seed), confidence=CONFIDENCE, cnn_sha256=cnn.sha256, cnn_test_accuracy=cnn.test_accuracy,
    )


def detail_frames(samples: int) -> int:
    """How many large frames evaluate_checkpoint renders (for a progress bar)."""
    return min(DETAIL_RANDOM, samples) + 10
