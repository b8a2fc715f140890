"""The project's digit classifiers as files: a DigitCNN's weights and record as plain data, checked before
anything is built, and what a loaded one answers.

Two are bundled, trained by scripts/train_digit_cnn.py with different seeds, and kept apart on purpose:
pipeline/evaluate/digit_cnn.pt judges renders (`cppn-video eval`, what `project` reports was read), and
pipeline/project/feature_cnn.pt is the distance that `project` optimises. A projection scored by the
network it was fitted to would grade its own homework.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.errors import UserError
from pipeline.models.digit_cnn import CONFIG_KEYS, DigitCNN, DigitCNNConfig, expected_shapes
from pipeline.torchfile import read_plain

ASSET_FORMAT = 1
REQUIRED_KEYS = ("format", "config", "state_dict", "test_accuracy", "train_command", "data_sha256")
OPTIONAL_KEYS = ("meta",)
FIX = "reinstall cppn-video or rebuild it with scripts/train_digit_cnn.py"


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


def load_digit_cnn(path: str | os.PathLike, fix: str = FIX) -> LoadedCNN:
    """Load and validate a digit classifier asset; every problem is one UserError line (ending in `fix`).
    Its config and every tensor's shape are checked before the network is built."""
    path = Path(path)
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
