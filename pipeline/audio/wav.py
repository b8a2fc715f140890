"""Writing a track: float samples in [-1, 1] to a 16-bit mono WAV (what the audio benchmark and the tests
synthesise; reading any format is decode's job)."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_wav(path, samples: np.ndarray, rate: int) -> Path:
    """Write `samples` (mono, clipped to [-1, 1]) as 16-bit PCM at `rate` Hz; returns the path."""
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path
