"""An audio file (anything the bundled ffmpeg decodes: WAV, MP3, FLAC, OGG, M4A, a video's sound) as mono float32
PCM, checked before anything renders: a missing file, one that is not audio, an empty or truncated one, or a video
with no sound is a one-line UserError. No ffprobe: ffmpeg's own stderr gives the declared duration, which the
decoded length is checked against. Decoded tracks are cached by path, size and modification time."""
from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

RATE = 22050                 # analysis sample rate (librosa's default): beats need nothing above 11 kHz
TRUNCATED_SHARE = 0.9        # decoding less than this share of the declared duration: the file is cut off
_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_CUT_WORDS = ("packet corrupt", "partial file", "truncat", "invalid frame size")
_cache: dict[tuple, "Track"] = {}


@dataclass(frozen=True)
class Track:
    """A decoded soundtrack: samples float32 [n] in [-1, 1] at `rate`, and the file's SHA-256."""
    path: str
    samples: np.ndarray
    rate: int
    sha256: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def _fail(path, problem: str) -> UserError:
    return UserError(f"--audio {path}: {problem}; give a sound file ffmpeg reads (WAV, MP3, FLAC, OGG, M4A)",
                     key="audio")


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _declared(stderr: str) -> float | None:
    m = _DURATION.search(stderr)
    if not m:
        return None
    h, mi, s = m.groups()
    return int(h) * 3600 + int(mi) * 60 + float(s)


def _problem(stderr: str) -> str:
    """ffmpeg's reason, in words a user can act on."""
    low = stderr.lower()
    if "matches no streams" in low or "does not contain any stream" in low:
        return "it has no audio stream (a video without sound?)"
    if "invalid data found" in low or "could not find codec" in low or "unknown format" in low:
        return "it is not a sound file ffmpeg can read"
    line = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "ffmpeg printed nothing")
    return f"ffmpeg cannot decode it ({line[:160]})"


def _first_cut_line(stderr: str) -> str:
    line = next(ln for ln in stderr.splitlines() if any(w in ln.lower() for w in _CUT_WORDS))
    return re.sub(r"^\s*\[[^\]]*\]\s*", "", line).strip()[:100]


def load_track(path, rate: int = RATE) -> Track:
    """The file at `path` decoded to mono at `rate` Hz; UserError (key "audio") when it cannot be."""
    from pipeline.video import ffmpeg_exe

    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except OSError as e:
        raise _fail(path, f"cannot read it ({e.strerror})") from None
    if not p.is_file():
        raise _fail(path, "it is not a file")
    if st.st_size == 0:
        raise _fail(path, "it is empty (0 bytes)")
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, rate)
    if key in _cache:
        return replace(_cache[key], path=str(p))  # as named this time (another working folder: another name)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-i", str(p), "-map", "0:a:0", "-vn", "-ac", "1",
           "-ar", str(rate), "-f", "f32le", "-"]
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise _fail(path, "ffmpeg did not decode it within 10 minutes") from None
    stderr = res.stderr.decode("utf-8", "replace")
    if res.returncode != 0:
        raise _fail(path, _problem(stderr))
    samples = np.frombuffer(res.stdout, dtype="<f4").astype(np.float32)
    if samples.size == 0:
        raise _fail(path, "it holds no sound (zero length)")
    declared = _declared(stderr)
    got = samples.size / rate
    if any(w in stderr.lower() for w in _CUT_WORDS):
        raise _fail(path, f"it is truncated or damaged (ffmpeg decoded {got:.2f} s: "
                          f"{_first_cut_line(stderr)})")
    if declared is not None and declared > 0.5 and got < TRUNCATED_SHARE * declared:
        raise _fail(path, f"it is truncated ({got:.2f} s decode of the {declared:.2f} s its header declares)")
    if not np.isfinite(samples).all():
        raise _fail(path, "it decodes to invalid samples")
    track = Track(str(p), np.clip(samples, -1.0, 1.0), rate, sha256_of(p))
    if len(_cache) > 8:
        _cache.clear()
    _cache[key] = track
    return track
