"""`cppn-video serve` with a soundtrack, in-process: an uploaded track comes back as waveform peaks, tempo and beat
times (the CLI's analysis), a render job with it makes an MP4 with its sound and keyframes on the beats, its
exported command and preset carry the audio settings, and a bad upload is a JSON error leaving nothing behind."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[serve-test]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx: pip install -e '.[serve-test]'")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from pipeline.latents import seed_latents  # noqa: E402
from pipeline.serve.app import create_app  # noqa: E402
from test_audio import click_track, sound_seconds, streams, write_wav  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture()
def client(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with TestClient(create_app(out=tmp_path / "out")) as c:
            c.out = tmp_path / "out"
            yield c


def test_upload_render_and_export_with_sound(client, tmp_path):
    x, truth = click_track(120, 3.0)
    data = write_wav(tmp_path / "song.wav", x).read_bytes()
    r = client.post("/api/audio?name=song.wav", content=data, headers={"Content-Type": "audio/wav"})
    assert r.status_code == 200, r.json()
    t = r.json()
    assert t["audio"].startswith("track-") and t["audio"].endswith(".wav") and abs(t["seconds"] - 3.0) < 1e-3
    assert len(t["peaks"]) == 1000 and 0.5 < max(t["peaks"]) <= 1.0
    assert abs(t["tempo"] - 120) < 2.4 and np.abs(np.array(t["beats"]) - truth).max() < 0.012
    z = seed_latents([3, 4, 5], 32)
    r = client.post("/api/render", json={"keyframes": z.tolist(), "size": 16, "frames": 60, "pace": "none",
                                         "audio": t["audio"], "sync": "beats", "react": "zoom=0.2"})
    assert r.status_code == 202, r.json()
    job = client.app.state.jobs.wait(60)
    assert job["state"] == "done", job
    video = client.out / job["files"]["video"]
    assert streams(video) == ["Video:h264", "Audio:aac"] and abs(sound_seconds(video) - 2.0) < 0.01
    assert f"--audio {t['audio']}" in job["command"] and "--sync beats" in job["command"]
    assert f'audio = "{t["audio"]}"' in job["preset"] and 'react = "zoom=0.2"' in job["preset"]


def test_bad_uploads_are_json_errors(client, tmp_path):
    for body, kind, words in ((b"not sound at all" * 20, "audio/mpeg", "not a sound file"), (b"", "audio/wav", "empty"),
                              (b"RIFF", "text/plain", "Content-Type")):
        r = client.post("/api/audio?name=x.mp3", content=body, headers={"Content-Type": kind})
        assert r.status_code == 400 and words in r.json()["error"], r.json()
    assert not client.out.exists() or not any(p.name.startswith("track-") for p in client.out.iterdir())
    bad = client.post("/api/render", json={"keyframes": seed_latents([1, 2], 32).tolist(), "size": 16, "frames": 4,
                                           "audio": "track-nope.wav"})
    assert bad.status_code in (400, 404) and "no file" in bad.json()["error"], bad.json()
