"""Devices: the one place a device name ("auto", "cpu", "cuda:N") is parsed, and how one is described."""
from __future__ import annotations

import re

import torch

from pipeline.errors import UserError


def resolve_device(device: str = "auto", option: str = "--device") -> torch.device:
    """"auto" (cuda:0 if available, else cpu), "cpu", "cuda" or "cuda:N" -> a torch.device that exists here.
    The one place devices are parsed (batch's --devices list goes through it too); errors name `option`."""
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    m = re.fullmatch(r"cpu|cuda(?::(\d+))?", text)
    if not m:
        raise UserError(f"{option}: unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"{option} {device} was asked for but CUDA is not available here; use cpu")
    index = int(m.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise UserError(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                        f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)


def describe_device(device: torch.device) -> str:
    """"cpu", or e.g. "cuda:0 (NVIDIA H200)": for metadata and benchmark reports."""
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on `device` without stopping the host. A plain .to("cuda") from pageable memory synchronises
    the stream first (the driver stages the bytes), so the host waits for every kernel queued before it: inside a
    training step that drains the GPU's queue mid-step. Through page-locked memory the copy is queued like a
    kernel instead (torch's pinned-memory cache keeps the staging block until the copy is done). Elsewhere: .to."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
