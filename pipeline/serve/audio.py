"""The page's soundtrack: an uploaded track kept in --out (named by its SHA-256, so the same file is stored once),
decoded and analysed with the CLI's own code (pipeline.audio), answered with what the page draws under the
keyframe strip (waveform peaks, beat times, tempo)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.errors import UserError

MAX_BYTES = 200 * 1024 * 1024   # a 3-minute WAV at 48 kHz stereo is 35 MB
PEAKS = 1000                    # waveform columns the page draws
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,5}$")
PREFIX = "track-"


def track_name(data: bytes, filename: str | None) -> str:
    """track-<12 hex of its SHA-256><its suffix>: a bare name Workspace.output_file accepts."""
    suffix = Path(filename or "").suffix.lower()
    return f"{PREFIX}{hashlib.sha256(data).hexdigest()[:12]}{suffix if _SUFFIX.match(suffix) else '.audio'}"


def store_track(out: Path, data: bytes, filename: str | None) -> Path:
    """The upload written into `out` (atomically, once per content) and checked to decode; UserError otherwise."""
    if not data:
        raise UserError("the uploaded track is empty; choose a sound file", key="audio")
    if len(data) > MAX_BYTES:
        raise UserError(f"the uploaded track is {len(data) / 2**20:.0f} MB; give one under {MAX_BYTES // 2**20} MB",
                        key="audio")
    path = out / track_name(data, filename)
    if not path.is_file():
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
    from pipeline.audio.decode import load_track

    try:
        load_track(path)
    except UserError as e:
        path.unlink(missing_ok=True)
        raise UserError(str(e).replace(f"--audio {path}", f"the uploaded {filename or 'track'}"), key="audio") from None
    return path


def describe(path: Path) -> dict:
    """What the page shows of a stored track: name, seconds, waveform peaks [PEAKS] in [0, 1], tempo and beats."""
    from pipeline.audio.analysis import analyse
    from pipeline.audio.decode import load_track

    track = load_track(path)
    x = np.abs(track.samples)
    n = min(PEAKS, len(x))
    edges = np.linspace(0, len(x), n + 1).astype(np.int64)
    peaks = np.maximum.reduceat(x, edges[:-1]) if n else np.zeros(0)
    a = analyse(track.samples, track.rate)
    return {"audio": path.name, "seconds": round(track.seconds, 4), "sha256": track.sha256,
            "peaks": [round(float(p), 4) for p in peaks], "tempo": None if a.tempo is None else round(a.tempo, 2),
            "beats": [round(float(b), 4) for b in a.beats], "problem": a.problem}
