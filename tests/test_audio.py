"""Music (pipeline.audio): tracks synthesised here (click tracks at known tempi, with and without swing, a tone,
silence, a 1-frame track) checked for tempo, beat and keyframe times, the soundtrack muxed into the MP4 (read back
with ffmpeg), and bad audio refused in one line before anything renders."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import music
from pipeline.audio.wav import write_wav as _write_wav
from pipeline.audio.analysis import analyse
from pipeline.errors import UserError
from pipeline.scene.pacing import speed_warp
from pipeline.video import ffmpeg_exe

RATE = 22050
FPS = 30


def click_track(bpm: float, seconds: float, swing: float = 0.0, start: float = 0.5, rate: int = RATE):
    """(samples, beat times): a noise burst on every beat, and with swing a weaker one on each off-beat, late by
    swing x half a beat (0.33: the triplet feel)."""
    x = np.zeros(int(seconds * rate), np.float32)
    rng = np.random.default_rng(int(bpm))
    n = int(0.02 * rate)
    burst = (np.exp(-np.arange(n) / (0.003 * rate)) * rng.standard_normal(n)).astype(np.float32)
    period, beats, t = 60.0 / bpm, [], start
    while t < seconds - 0.05:
        for when, gain in ((t, 0.8), (t + period * (0.5 + swing / 2), 0.3 if swing else 0.0)):
            i = int(round(when * rate))
            if gain and i < len(x):
                x[i:i + n] += gain * burst[:len(x) - i]
        beats.append(t)
        t += period
    return x, np.array(beats)


def write_wav(path: Path, x: np.ndarray, rate: int = RATE) -> Path:
    return _write_wav(path, x, rate)


def sound_seconds(mp4: Path) -> float:
    """The MP4's sound decoded by ffmpeg, in seconds (48 kHz mono s16)."""
    res = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(mp4), "-map", "0:a:0", "-f", "s16le", "-ac", "1",
                          "-ar", "48000", "-"], capture_output=True, check=True)
    return len(res.stdout) / 2 / 48000


def streams(mp4: Path) -> list[str]:
    res = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(mp4)], capture_output=True, text=True)
    return [ln.split(": ")[1].split()[0] + ":" + ln.split(": ")[2].split()[0]
            for ln in res.stderr.splitlines() if ln.strip().startswith("Stream #")]


@pytest.fixture(autouse=True)
def _fresh_warnings():
    music._warned.clear()  # each test sees its own one-time warnings
    yield


@pytest.mark.parametrize("bpm,swing", [(90, 0.0), (120, 0.0), (150, 0.0), (100, 0.33), (128, 0.33)])
def test_tempo_within_2_percent_and_beats_within_a_frame(bpm, swing):
    x, truth = click_track(bpm, 12.0, swing)
    a = analyse(x, RATE)
    assert a.tempo is not None and abs(a.tempo - bpm) / bpm < 0.02, (a.tempo, bpm)
    assert len(a.beats) == len(truth)
    assert np.abs(a.beats - truth).max() < 1 / FPS  # every beat within one video frame
    assert np.abs(a.beats - truth).max() < 0.012    # in fact within about a hop and a half


def test_silence_and_tone_have_no_beat():
    assert analyse(np.zeros(RATE * 3, np.float32), RATE).problem == "the track is silent"
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE * 6) / RATE)).astype(np.float32)
    a = analyse(tone, RATE)
    assert a.tempo is None and a.problem == "the track has no steady beat"


def _walk(**kw):
    from pipeline.jobs import WalkSettings

    return WalkSettings(**{"size": 24, "seeds": "1,2", "pace": "none", **kw})


def test_keyframes_land_on_the_beats_and_video_is_track_long(tmp_path):
    x, truth = click_track(120, 6.0)
    wav = write_wav(tmp_path / "c.wav", x)
    s = _walk(seeds=None, audio=str(wav), sync="beats", random_keyframes=True).resolved()
    assert s.frames == 6 * FPS  # no --frames: as long as the track
    tl = s.timeline(s.n_keyframes())
    assert s.keyframes == len(truth) + 1  # frame 0, then one on every beat
    assert np.abs(np.array(tl.arrive[1:]) - truth * FPS).max() <= 1
    s2 = _walk(seeds="1,2,3,4", audio=str(wav), sync="beats", beats_per_keyframe=2).resolved()
    arrive = s2.timeline(4).arrive
    assert np.abs(np.array(arrive[1:]) - truth[::2][:3] * FPS).max() <= 1
    with pytest.raises(UserError, match="40 keyframes but"):
        _walk(seeds="0-39", audio=str(wav), sync="beats").resolved()
    onsets = _walk(seeds="1,2,3", audio=str(wav), sync="onsets", frames=90).resolved()
    assert all(min(abs(f - truth * FPS)) <= 1 for f in onsets.timeline(3).arrive[1:])


def test_no_beat_tracks_warn_once_and_walk_plainly(tmp_path):
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE * 2) / RATE)).astype(np.float32)
    for name, x in (("tone.wav", tone), ("silence.wav", np.zeros(RATE * 2, np.float32))):
        s = _walk(audio=str(write_wav(tmp_path / name, x)), sync="beats")
        with pytest.warns(RuntimeWarning, match=r"--sync beats: the track (has no steady beat|is silent) .*plain walk"):
            r = s.resolved()
        assert r.frames == 60 and r.timeline(2) is None  # evenly timed, as without --sync


def test_soundtrack_muxed_cut_or_padded_and_recorded(tmp_path):
    from pipeline.jobs import render_walk

    x, truth = click_track(120, 3.0)
    wav = write_wav(tmp_path / "c.wav", x)
    for frames, note in ((75, "is cut at 2.50 s"), (105, "is padded with 0.50 s of silence"), (None, "as long")):
        out = tmp_path / f"w{frames}.mp4"
        info = render_walk("e24", out, _walk(frames=frames, audio=str(wav), sync="beats"))
        n = frames or 90
        assert streams(out) == ["Video:h264", "Audio:aac"]
        assert abs(sound_seconds(out) - n / FPS) < 0.01
        assert note in info["audio"]["note"]
        side = json.loads(Path(str(out) + ".json").read_text())["audio"]
        assert side["sha256"] == info["audio"]["sha256"] and side["offset_s"] == 0.0
        assert abs(side["tempo_bpm"] - 120) < 2.4 and np.allclose(
            [b for b in side["beats_s"] if b < n / FPS - 0.05], truth[truth < n / FPS - 0.05], atol=0.012)


def test_offset_starts_inside_the_track(tmp_path):
    x, truth = click_track(120, 4.0)
    s = _walk(audio=str(write_wav(tmp_path / "c.wav", x)), audio_offset="1.2s", sync="beats").resolved()
    assert s.frames == round(2.8 * FPS)
    a = music.analysis(s)
    assert np.abs(a.beats - (truth[truth > 1.2] - 1.2)).max() < 0.012
    with pytest.raises(UserError, match="past the end"):
        _walk(audio=str(tmp_path / "c.wav"), audio_offset="9s").validate()


def test_one_frame_track(tmp_path):
    from pipeline.jobs import render_walk

    one = 0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE // FPS) / RATE)  # one frame's worth of a tone
    wav = write_wav(tmp_path / "one.wav", one.astype(np.float32))
    out = tmp_path / "one.mp4"
    with pytest.warns(RuntimeWarning, match="no steady beat"):
        info = render_walk("e24", out, _walk(seeds="3", audio=str(wav), sync="beats"))
    assert info["frames"] == 1 and abs(sound_seconds(out) - 1 / FPS) < 0.01
    with pytest.raises(UserError, match="at least 2 frames"):
        render_walk("e24", tmp_path / "two.mp4", _walk(audio=str(wav)))


def _bad_audio(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = write_wav(tmp_path / "good.wav", click_track(120, 2.0)[0])
    data = good.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:len(data) // 3])
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.mp3").write_text("no sound here\n" * 40)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=16x16:d=0.2", "-c:v",
                    "libx264", str(tmp_path / "silent-film.mp4")], check=True)
    return {"missing": (tmp_path / "nope.wav", "no such file"), "not audio": (tmp_path / "text.mp3", "not a sound"),
            "truncated": (tmp_path / "cut.wav", "truncated"), "zero length": (tmp_path / "empty.wav", "empty"),
            "no audio stream": (tmp_path / "silent-film.mp4", "no audio stream")}


def test_bad_audio_is_one_line_before_rendering(tmp_path):
    from pipeline.jobs import render_compare, render_walk
    from pipeline.jobs.settings import CompareSettings

    out = tmp_path / "out" / "w.mp4"
    out.parent.mkdir()
    for what, (path, words) in _bad_audio(tmp_path).items():
        for render in (lambda: render_walk("e24", out, _walk(audio=str(path), frames=10)),
                       lambda: render_compare(["e24", "e6"], out, CompareSettings(
                           frames=10, panel_size=24, seeds="1,2", pace="none", audio=str(path)))):
            with pytest.raises(UserError) as e:
                render()
            assert words in str(e.value) and "\n" not in str(e.value) and e.value.key == "audio", (what, e.value)
            assert list(out.parent.iterdir()) == [], what  # nothing at the target, no temp left


def test_audio_needs_mp4_and_is_never_overwritten(tmp_path):
    from pipeline.jobs import render_walk

    wav = write_wav(tmp_path / "c.wav", click_track(120, 1.0)[0])
    with pytest.raises(UserError, match="needs an MP4 output"):
        render_walk("e24", tmp_path / "w.gif", _walk(audio=str(wav), frames=4))
    track = tmp_path / "song.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(wav), "-c:a", "aac", str(track)], check=True)
    before = track.read_bytes()
    with pytest.raises(UserError, match="would destroy the input"):
        render_walk("e24", track, _walk(audio=str(track), frames=4))
    assert track.read_bytes() == before
    for key, kw in (("sync", {"sync": "beats"}), ("react", {"react": "zoom=0.2"})):
        with pytest.raises(UserError, match="needs a soundtrack"):
            _walk(**kw).validate()
    with pytest.raises(UserError, match="not zoom=AMOUNT"):
        _walk(audio=str(wav), react="wobble=1").validate()


def test_react_zoom_pulses_on_onsets_and_speed_keeps_keyframes(tmp_path):
    x, truth = click_track(120, 4.0)
    x[int(2.0 * RATE):] *= 0.1  # a quiet second half
    wav = write_wav(tmp_path / "c.wav", x)
    s = _walk(audio=str(wav), react="zoom=0.25,speed=0.8", seeds="1,2,3").resolved()
    zoom = music.zoom_pulse(s, s.frames)
    assert zoom.min() >= 1.0 and zoom.max() <= 1.25 + 1e-9
    peaks = [int(round(b * FPS)) for b in truth if b < 2.0]
    for p in peaks:  # each loud beat lifts the zoom within two frames, and it falls back before the next
        assert zoom[p:p + 3].max() > 1.1 and zoom[p + 12] < zoom[p:p + 3].max()
    assert np.abs(np.diff(zoom)).max() < 0.25 * 0.75  # no jump to the full pulse in one frame
    from pipeline.scene.camera import camera_track

    assert np.allclose(camera_track(s, s.frames).zoom, zoom)
    w = music.speed_weights(s, s.frames)
    assert w[:50].mean() > 1.2 and w[70:].mean() < 0.8 and np.abs(np.diff(w)).max() < 0.1  # smooth
    j = np.repeat([0, 1], [100, 20])  # one transition over the loud and the quiet half, a second at the end
    u = np.concatenate([np.arange(100) / 100, np.arange(20) / 20])
    warped = speed_warp(j, u, w)
    assert warped[0] == 0 and warped[100] == 0 and np.all(np.diff(warped[:100]) > 0) and warped[99] < 1
    assert np.diff(warped[:50]).mean() > 2 * np.diff(warped[70:100]).mean()  # loud moves faster than quiet


def test_segmented_join_muxes_once(tmp_path):
    """The function the local segments and the farm both publish through adds the sound after the join."""
    import time

    from pipeline.jobs.render import prepare_walk
    from pipeline.jobs.segments import publish_segments, render_segment

    wav = write_wav(tmp_path / "c.wav", click_track(120, 1.0)[0])
    w = prepare_walk("e24", tmp_path / "seg.mp4", _walk(audio=str(wav), frames=20, lossless=True))
    tmp = tmp_path / "parts"
    tmp.mkdir()
    bounds = [(0, 8), (8, 20)]
    parts = [tmp / f"{i}.mp4" for i in range(2)]
    done = {i: render_segment(w.ck, w.latents[a:b], w.settings, "cpu", 1, parts[i], start=a)
            for i, (a, b) in enumerate(bounds)}
    for p in parts:
        assert streams(p) == ["Video:h264"]  # segments carry no sound
    info = publish_segments(w, parts, done, bounds, time.perf_counter(), tmp)
    assert streams(w.out) == ["Video:h264", "Audio:aac"] and abs(sound_seconds(w.out) - 20 / FPS) < 0.01
    assert info["audio"]["sha256"] and info["workers"] == 2


def test_replay_finds_the_track_and_refuses_another(tmp_path, monkeypatch):
    from pipeline.jobs import render_walk
    from pipeline.jobs.replay import replay

    wav = write_wav(tmp_path / "c.wav", click_track(120, 1.0)[0])
    monkeypatch.chdir(tmp_path)
    render_walk("e24", "w.mp4", _walk(audio="c.wav", frames=6))  # the track named relative to the render's folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    info = replay(tmp_path / "w.mp4.json", tmp_path / "again.mp4")  # found beside the sidecar
    assert streams(tmp_path / "again.mp4") == ["Video:h264", "Audio:aac"] and info["audio"]["sha256"]
    write_wav(wav, click_track(90, 1.0)[0])
    with pytest.raises(UserError, match="is another file now"):
        replay(tmp_path / "w.mp4.json", tmp_path / "r.mp4")
    assert not (tmp_path / "r.mp4").exists()


def test_cli_reports_tempo_and_fit(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import cli

    wav = write_wav(tmp_path / "c.wav", click_track(120, 3.0)[0])
    out = tmp_path / "c.mp4"
    res = CliRunner().invoke(cli, ["walk", "--size", "24", "--seeds", "1,2,3", "--pace", "none", "--audio", str(wav),
                                   "--sync", "beats", "--duration", "2s", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "is cut at 2.00 s (the track has 1.00 s more" in res.output
    tempo = float(res.output.split("tempo ")[1].split(" BPM")[0])
    assert abs(tempo - 120) < 2.4 and "3 keyframes on the beats" in res.output
