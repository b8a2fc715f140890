"""`cppn-video bench audio`: the soundtrack's costs. Beat analysis of a synthesised track (decode with the
bundled ffmpeg + onset envelope, tempo and beats), and what muxing adds to a render: a walk MP4 is rendered
without sound, then the mux (stream copy + AAC, pipeline.audio.mux) is timed on that same file, so the ratio
compares two measurements of one run rather than two renders' noise."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.audio.wav import write_wav
from pipeline.bench.machine import machine_info


def synth_track(path: Path, seconds: float, bpm: float = 123.0, rate: int = 44100) -> Path:
    """A 16-bit WAV: a kick-like click on every beat, a quieter hat on the off-beats, a chord pad under them."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = 0.08 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277.2 * t) + np.sin(2 * np.pi * 329.6 * t))
    rng = np.random.default_rng(0)
    k = int(0.08 * rate)
    kick = np.sin(2 * np.pi * 60 * np.arange(k) / rate) * np.exp(-np.arange(k) / (0.02 * rate))
    hat = rng.standard_normal(k // 4) * np.exp(-np.arange(k // 4) / (0.004 * rate))
    period = 60.0 / bpm
    for beat in np.arange(0.25, seconds - 0.1, period):
        for when, sound, gain in ((beat, kick, 0.7), (beat + period / 2, hat, 0.2)):
            i = int(when * rate)
            seg = sound[: max(0, min(len(sound), n - i))]
            x[i:i + len(seg)] += gain * seg
    return write_wav(path, x, rate)


def run_audio_bench(track_seconds: float = 180.0, size: int = 540, video_seconds: float = 10.0,
                    ckpt: str = "e24", progress=None) -> dict:
    from pipeline.audio import decode, music
    from pipeline.audio.analysis import analyse
    from pipeline.audio.mux import mux_audio
    from pipeline.jobs import WalkSettings, render_walk

    say = progress or (lambda msg: None)
    tmp = Path(tempfile.mkdtemp(prefix="cppn-video-bench-audio-"))
    try:
        wav = synth_track(tmp / "track.wav", track_seconds)
        say(f"decoding and analysing a {track_seconds:.0f} s track")
        decode._cache.clear()
        music._analyses.clear()
        t0 = time.perf_counter()
        track = decode.load_track(wav)
        t1 = time.perf_counter()
        a = analyse(track.samples, track.rate)
        t2 = time.perf_counter()
        say(f"rendering a {video_seconds:g} s walk at {size}x{size} without sound")
        s = WalkSettings(size=size, duration=f"{video_seconds}s", seeds="1,2,3,4", pace="none", scale=8.0)
        out = tmp / "walk.mp4"
        t3 = time.perf_counter()
        info = render_walk(ckpt, out, s)
        t4 = time.perf_counter()
        say("muxing the soundtrack into it")
        copy = tmp / "muxed.mp4"
        shutil.copyfile(out, copy)
        t5 = time.perf_counter()
        mux_audio(copy, WalkSettings(**{**s.__dict__, "audio": str(wav)}), info["frames"])
        t6 = time.perf_counter()
        return {
            "machine": machine_info(), "track_seconds": track_seconds, "decode_s": round(t1 - t0, 3),
            "analysis_s": round(t2 - t1, 3), "tempo_bpm": round(a.tempo, 3) if a.tempo else None,
            "true_bpm": 123.0, "beats": int(len(a.beats)), "render_size": size, "video_seconds": video_seconds,
            "render_s": round(t4 - t3, 3), "mux_s": round(t6 - t5, 3), "mux_vs_render": round((t6 - t5) / (t4 - t3), 4),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
