"""Beats and onsets of a track, the light way (numpy + scipy, no librosa/numba): a spectral-flux onset envelope
(log-compressed STFT magnitude, positive differences summed over frequency), a tempo from its autocorrelation
weighted by a log-normal prior around 120 BPM (as librosa's tempo estimate), and beats by dynamic programming
(Ellis 2007, "Beat tracking by dynamic programming": the best chain of onsets spaced by about one period).

Times are seconds from the start of the samples given. docs/PERFORMANCE.md "Music" times a 3-minute track.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_FFT = 512                  # 23 ms window at 22050 Hz
HOP = 128                    # 5.8 ms between envelope frames: a beat is placed well within a video frame
MIN_BPM, MAX_BPM = 40.0, 240.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0
TIGHTNESS = 100.0            # Ellis's alpha: how strongly beats keep to the period
SILENT_RMS = 1e-4            # below this the track is silence
MIN_PERIODICITY = 0.15       # normalised autocorrelation at the beat period below this: no steady beat
MIN_BEATS = 4
LAG_S = HOP / 22050          # the flux of frame i is the change from frame i-1: a click shows one hop early
                             # (measured: -6.8 ms on clicks at 90-150 BPM before this, -1.0 ms after)


@dataclass(frozen=True)
class Analysis:
    """What the track offers a walk: envelope [n] (onset strength per hop, >= 0) at `env_rate` Hz, the tempo in
    BPM and beat times (seconds), or tempo None and `problem` saying why there is no beat."""
    envelope: np.ndarray
    env_rate: float
    rms: np.ndarray              # loudness per envelope frame
    tempo: float | None
    beats: np.ndarray            # seconds [B]
    onsets: np.ndarray           # seconds [O], strongest first
    problem: str | None = None


def _frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    """Centred frames [T, n] of x (zero padded by n/2 each side), as views."""
    pad = np.pad(x.astype(np.float32), (n // 2, n // 2))
    count = 1 + max(0, (len(pad) - n) // hop)
    return np.lib.stride_tricks.as_strided(pad, (count, n), (pad.strides[0] * hop, pad.strides[0]), writeable=False)


def onset_envelope(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(spectral flux [T], RMS [T], frames per second). A click's flux peak is at its frame (the window is
    centred and the flux differenced one frame back, so the envelope is shifted half a hop to the onset)."""
    frames = _frames(samples, N_FFT, HOP)
    window = np.hanning(N_FFT).astype(np.float32)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    mag = np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)
    logmag = np.log1p(1000.0 * mag)
    flux = np.maximum(0.0, np.diff(logmag, axis=0)).sum(axis=1)
    env = np.concatenate([[0.0], flux]).astype(np.float64)
    return env, rms, rate / HOP


def _local_peaks(env: np.ndarray, radius: int) -> np.ndarray:
    from scipy.ndimage import maximum_filter1d

    peak = (env == maximum_filter1d(env, 2 * radius + 1)) & (env > 0)
    return np.nonzero(peak)[0]


def _refine(env: np.ndarray, i: int) -> float:
    """Sub-frame position of the peak at i (parabola through its neighbours)."""
    if 0 < i < len(env) - 1:
        a, b, c = env[i - 1], env[i], env[i + 1]
        d = a - 2 * b + c
        if d < 0:
            return i + 0.5 * (a - c) / d
    return float(i)


def estimate_period(env: np.ndarray, fps: float) -> tuple[float, float]:
    """(period in envelope frames, periodicity: the normalised autocorrelation there)."""
    x = env - env.mean()
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[:n]
    if ac[0] <= 0:
        return 0.0, 0.0
    ac = ac / ac[0]
    lo, hi = int(fps * 60 / MAX_BPM), min(n - 1, int(np.ceil(fps * 60 / MIN_BPM)))
    if hi <= lo + 2:
        return 0.0, 0.0
    lags = np.arange(lo, hi + 1)
    bpm = 60.0 * fps / lags
    prior = np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    # a lag's evidence also counts its half (a beat's eighth notes) a little, as librosa's does not: it keeps a
    # swung click on its quarter notes
    score = ac[lags] * prior
    best = int(lags[np.argmax(score)])
    return _refine(ac, best), float(ac[best])


def track_beats(env: np.ndarray, period: float) -> np.ndarray:
    """Beat positions (envelope frames, float) by Ellis's dynamic programme on the envelope."""
    n = len(env)
    norm = env / (env.std() + 1e-12)
    score = norm.copy()
    back = -np.ones(n, np.int64)
    lo, hi = int(round(period / 2)), int(round(2 * period))
    offsets = np.arange(lo, hi + 1)
    penalty = -TIGHTNESS * np.log(offsets / period) ** 2
    for t in range(lo, n):
        prev = t - offsets
        ok = prev >= 0
        if not ok.any():
            continue
        cand = score[prev[ok]] + penalty[ok]
        k = int(np.argmax(cand))
        if cand[k] > 0:
            score[t] = norm[t] + cand[k]
            back[t] = prev[ok][k]
    # the last beat: the best-scoring local maximum in the last period
    tail = max(0, n - int(round(period)) - 1)
    t = tail + int(np.argmax(score[tail:]))
    beats = [t]
    while back[beats[-1]] >= 0:
        beats.append(int(back[beats[-1]]))
    beats = np.array(beats[::-1])
    # a chain starts and ends where the onsets are: drop beats at the ends that fall on no onset
    strong = norm[beats] > 0.5 * np.median(norm[beats]) if len(beats) else beats
    if len(beats) and strong.any():
        first, last = np.argmax(strong), len(strong) - 1 - np.argmax(strong[::-1])
        beats = beats[first:last + 1]
    return np.array([_refine(env, int(b)) for b in beats])


def strongest_onsets(env: np.ndarray, fps: float, min_gap_s: float = 0.25) -> np.ndarray:
    """Onset peaks (envelope frames), strongest first, at least min_gap_s apart."""
    peaks = _local_peaks(env, max(1, int(min_gap_s * fps / 2)))
    floor = 0.1 * env.max() if len(env) else 0.0
    peaks = peaks[env[peaks] > floor]
    order = peaks[np.argsort(-env[peaks], kind="stable")]
    kept: list[int] = []
    gap = min_gap_s * fps
    for p in order:
        if all(abs(p - q) >= gap for q in kept):
            kept.append(int(p))
    return np.array([_refine(env, p) for p in kept])


def analyse(samples: np.ndarray, rate: int) -> Analysis:
    """Envelope, tempo, beats and onsets of mono samples [n]; a silent or beatless track gets tempo None and a
    problem in words (never an exception: the walk then goes on without the beat)."""
    env, rms, fps = onset_envelope(samples, rate)
    empty = np.zeros(0)
    if len(samples) == 0 or float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) < SILENT_RMS:
        return Analysis(env, fps, rms, None, empty, empty, "the track is silent")
    onsets = strongest_onsets(env, fps) / fps + LAG_S
    period, periodicity = estimate_period(env, fps)
    if period <= 0 or periodicity < MIN_PERIODICITY:
        return Analysis(env, fps, rms, None, empty, onsets, "the track has no steady beat")
    beats = track_beats(env, period) / fps + LAG_S
    if len(beats) < MIN_BEATS:
        return Analysis(env, fps, rms, None, empty, onsets, f"the track has only {len(beats)} beats")
    # the tempo of the beats found: their median spacing, refined by a straight line through them
    idx = np.arange(len(beats))
    slope = float(np.polyfit(idx, beats, 1)[0]) if len(beats) >= 2 else 60.0 / (period / fps)
    return Analysis(env, fps, rms, 60.0 / slope, beats, onsets)
