"""An independent judge of rendered digits: a small CNN the project never chooses anything by.

The project's own classifiers (pipeline/models/digit_cnn.py: two 5x5 convolutions, a 128-wide hidden layer) pick
the default keyframes and score `eval`; a walk chosen by one of them would flatter itself if scored by it. This
one differs in architecture (three 3x3 convolutions with batch norm, global average pooling, no hidden layer),
seed and training, and lives outside the package: only benchmarks read it (benchmarks/first_contact.py).
Trained by scripts/train_judge.py; its weights (benchmarks/judge_cnn.pt) are plain data, read through the
project's safe loader (pipeline.torchfile.read_plain), so loading them never executes code.

Input: float [B, 26, 26] in [0, 1], white digit on black, as MNIST and the generators' renders are.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

JUDGE_PATH = Path(__file__).resolve().parent / "judge_cnn.pt"
FORMAT = "cppn-video judge 1"
CHANNELS = (16, 32, 64)
CONFIDENT = 0.9  # a frame shows a "confident digit" when the judge's largest softmax probability is at least this


class JudgeCNN(nn.Module):
    """conv3x3(16)+BN -> pool -> conv3x3(32)+BN -> pool -> conv3x3(64)+BN -> global mean -> fc(10)."""

    def __init__(self, channels=CHANNELS):
        super().__init__()
        c1, c2, c3 = channels
        self.conv1, self.bn1 = nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2)
        self.conv3, self.bn3 = nn.Conv2d(c2, c3, 3), nn.BatchNorm2d(c3)
        self.fc = nn.Linear(c3, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float [B, 26, 26] in [0, 1] -> logits [B, 10]."""
        x = images.reshape(-1, 1, 26, 26)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # [B, 16, 13, 13]
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # [B, 32, 6, 6]
        x = F.relu(self.bn3(self.conv3(x)))                   # [B, 64, 4, 4]
        return self.fc(x.mean((2, 3)))                        # [B, 10]


def payload(model: JudgeCNN, test_accuracy: float, command: str, meta: dict) -> dict:
    """The weights file's contents as plain data (float32 tensors, numbers, strings)."""
    state = {k: (v.detach().float().clone() if v.is_floating_point() else v.detach().clone())
             for k, v in model.state_dict().items()}
    return {"format": FORMAT, "channels": list(CHANNELS), "state_dict": state,
            "test_accuracy": float(test_accuracy), "train_command": command, "meta": dict(meta)}


def to_bytes(data: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(data, buf)
    return buf.getvalue()


@dataclass
class Judge:
    model: JudgeCNN      # eval mode, no gradients
    test_accuracy: float
    train_command: str
    sha256: str

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch: int = 2000) -> torch.Tensor:
        """float [B, 26, 26] in [0, 1] -> softmax [B, 10]."""
        images = torch.as_tensor(images, dtype=torch.float32)
        out = [torch.softmax(self.model(images[i:i + batch]), 1) for i in range(0, images.shape[0], batch)]
        return torch.cat(out) if out else torch.zeros(0, 10)


def load_judge(path=JUDGE_PATH) -> Judge:
    """Read and check the judge's weights as data (pipeline.torchfile.read_plain: a file holding code is refused)."""
    from pipeline.errors import UserError
    from pipeline.torchfile import read_plain

    fix = "rebuild it with python scripts/train_judge.py"
    data, digest = read_plain(path, "judge", fix)
    if not isinstance(data, dict) or data.get("format") != FORMAT or list(data.get("channels", ())) != list(CHANNELS):
        raise UserError(f"judge {path} is not a {FORMAT!r} file with channels {list(CHANNELS)}; {fix}")
    model = JudgeCNN()
    state = data.get("state_dict")
    expected = model.state_dict()
    if (not isinstance(state, dict) or set(state) != set(expected)
            or any(not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape for k, v in expected.items())):
        raise UserError(f"judge {path} holds tensors of other names or shapes than JudgeCNN's; {fix}")
    model.load_state_dict(state, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Judge(model, float(data["test_accuracy"]), str(data["train_command"]), digest)
