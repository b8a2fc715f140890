"""Composed frames (jobs.mosaic, issue 26): the canvas keeps its template and lives where the panels are made, the
panel clock times a GPU's queued work by events without waiting on them, and compare and --grid on a "GPU" (a CPU
renderer that says it is one, with fake events) send their composed batches through the pinned-slot ring and give
the same video bytes as the CPU path, with each panel's time in the sidecar."""
import json

import numpy as np
import pytest
import torch

from pipeline.jobs import CompareSettings, WalkSettings, render_compare
from pipeline.jobs import compare as compare_mod
from pipeline.jobs import mosaic as mosaic_mod
from pipeline.jobs.compare import render_walk_grid
from pipeline.jobs.mosaic import Mosaic, PanelClock
from pipeline.render import Renderer, host_ring
from render_helpers import make_checkpoint
from video_helpers import read_video

P = 32


def test_the_canvas_keeps_its_template_and_takes_each_panel():
    template = np.arange(6 * 10, dtype=np.uint8).reshape(6, 10)
    m = Mosaic(template, batch=3)
    m.place(torch.full((2, 3, 4), 200, dtype=torch.uint8), 1, 2)
    m.place(torch.full((2, 3, 4), 100, dtype=torch.uint8), 6, 0)
    got = m.frames(2).numpy()
    assert got.shape == (2, 6, 10) and m.frames(3).shape == (3, 6, 10)
    want = template.copy()
    want[2:5, 1:5], want[0:3, 6:10] = 200, 100
    assert np.array_equal(got[0], want) and np.array_equal(got[1], want)
    assert np.array_equal(m.frames(3).numpy()[2], template)  # a canvas no panel was written to: the template
    m.place(torch.full((1, 3, 4), 7, dtype=torch.uint8), 1, 2)  # a shorter batch reuses the same canvas
    assert (m.frames(1).numpy()[0, 2:5, 1:5] == 7).all() and (m.frames(1).numpy()[0, 0:3, 6:10] == 100).all()


class FakeTimer:
    """Stands in for a timing CUDA event: done once `clock.done` says so, 5 ms between a start and its end."""

    made = []

    def __init__(self):
        self.t, self.waited = None, False
        FakeTimer.made.append(self)

    def record(self):
        self.t = 5.0 * len(FakeTimer.made)

    def query(self):
        return self in FakeTimer.done

    def synchronize(self):
        self.waited = True
        FakeTimer.done.add(self)

    def elapsed_time(self, end):
        return end.t - self.t


def test_the_panel_clock_reads_gpu_events_only_once_done():
    FakeTimer.made, FakeTimer.done = [], set()
    clock = PanelClock(2, torch.device("cuda"), event=FakeTimer)
    assert clock.timed(0, 4, lambda: "a") == "a" and clock.timed(1, 4, lambda: "b") == "b"
    assert clock.per_frame() == [None, None]  # queued, not done: nothing counted and nothing waited on
    assert not any(e.waited for e in FakeTimer.made)
    FakeTimer.done.add(FakeTimer.made[1])  # panel 0's end event is done
    assert clock.per_frame() == [pytest.approx(0.005 / 4), None]
    got = clock.per_frame(wait=True)  # the end of the render: the rest waited for
    assert got == [pytest.approx(0.005 / 4), pytest.approx(0.005 / 4)] and FakeTimer.made[3].waited

    cpu = PanelClock(1, torch.device("cpu"))
    cpu.timed(0, 2, lambda: None)
    assert cpu.frames == [2] and cpu.per_frame()[0] >= 0


class _ClaimsGPU:
    """A CPU Renderer that says it is on a GPU, so compare and --grid take their GPU path here."""

    made = 0

    def __init__(self, *args, **kw):
        self.inner = Renderer(*args, **{**kw, "device": "cpu"})
        self.device, self.path = torch.device("cuda"), self.inner.path
        _ClaimsGPU.made += 1

    def render_tensor(self, *a, **kw):
        return self.inner.render_tensor(*a, **kw)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.inner.close()


class _Copy:
    """Stands in for the CUDA event after a batch's copy into a pinned slot: counts the waits on it."""

    def __init__(self):
        self.waits = 0

    def synchronize(self):
        self.waits += 1


def _fake_gpu(monkeypatch) -> list:
    """From here on compare and --grid render on the 'GPU': -> the copy events their batches make."""
    copies = []
    monkeypatch.setattr(host_ring, "cuda_event", lambda device: copies.append(_Copy()) or copies[-1])
    monkeypatch.setattr(mosaic_mod, "timing_event", FakeTimer)
    monkeypatch.setattr(compare_mod, "Renderer", _ClaimsGPU)
    FakeTimer.made, FakeTimer.done, _ClaimsGPU.made = [], set(), 0
    return copies


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    return [make_checkpoint(d / "prev.pt", "prev", epoch=3), make_checkpoint(d / "e6.pt", "resnet", epoch=6)]


def test_compare_on_a_gpu_pipes_composed_batches_through_the_ring_with_the_cpu_bytes(ckpts, tmp_path, monkeypatch):
    # 7 frames, batches of 3, two encoders (ranges 0-3 and 4-6, fed round robin): 3 batches, the first untimed.
    s = CompareSettings(frames=7, panel_size=P, keyframes=2, seed=3, lossless=True, batch=3, pace="none",
                        random_keyframes=True, encoders=2)
    cpu_info = render_compare(ckpts, tmp_path / "cpu.mp4", s)
    assert cpu_info["device"] == "cpu" and all(p["seconds_per_frame"] > 0 for p in cpu_info["checkpoints"])

    copies = _fake_gpu(monkeypatch)
    info = render_compare(ckpts, tmp_path / "gpu.mp4", s)
    assert _ClaimsGPU.made == 2 and info["device"] == "cuda"
    assert len(copies) == 3 and all(e.waits == 1 for e in copies)  # each composed batch: one copy, waited on once
    assert len(FakeTimer.made) == 2 * 2 * 2  # 2 timed batches x 2 panels x (start, end)
    for panel, saved in zip(info["checkpoints"], json.loads((tmp_path / "gpu.mp4.json").read_text())["checkpoints"]):
        assert panel["seconds_per_frame"] == saved["seconds_per_frame"] == pytest.approx(2 * 0.005 / 4, abs=1e-4)
    gpu, cpu = read_video(tmp_path / "gpu.mp4"), read_video(tmp_path / "cpu.mp4")
    assert gpu.shape == cpu.shape == (7, s.check(2, "mp4").height, 2 * P) and np.array_equal(gpu, cpu)


def test_grid_on_a_gpu_pipes_composed_batches_through_the_ring_with_the_cpu_bytes(ckpts, tmp_path, monkeypatch):
    grid = WalkSettings(size=P, frames=5, seeds="0-3", lossless=True, batch=2, encoders=2)
    render_walk_grid(ckpts[1], tmp_path / "cpu.mp4", grid, "2x1")
    copies = _fake_gpu(monkeypatch)
    info = render_walk_grid(ckpts[1], tmp_path / "gpu.mp4", grid, "2x1")
    assert _ClaimsGPU.made == 1 and info["device"] == "cuda"
    assert len(copies) == 3 and all(e.waits == 1 for e in copies)  # ranges 0-2 and 3-4 in batches of 2: 3 copies
    gpu, cpu = read_video(tmp_path / "gpu.mp4"), read_video(tmp_path / "cpu.mp4")
    assert gpu.shape == cpu.shape == (5, P, 2 * P) and np.array_equal(gpu, cpu)
    assert not np.array_equal(gpu[:, :, :P], gpu[:, :, P:])  # the two cells walk different seeds


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_compare_panels_are_the_renderers_frames(ckpts, tmp_path):
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs import path_latents

    s = CompareSettings(frames=9, panel_size=P, keyframes=2, seed=3, lossless=True, batch=4, pace="none",
                        random_keyframes=True, encoders=2, device="cuda", scale=8.0)
    info = render_compare(ckpts, tmp_path / "cuda.mp4", s)
    video = read_video(tmp_path / "cuda.mp4")
    _, latents = path_latents(s.walk(), 32, None)
    for i, path in enumerate(ckpts):
        with Renderer(load_checkpoint(path).generator, P, P, scale=8.0, device="cuda") as r:
            assert np.array_equal(video[:, :P, i * P:(i + 1) * P], r.render(latents))  # composed on the GPU
    assert info["device"].startswith("cuda") and all(p["seconds_per_frame"] > 0 for p in info["checkpoints"])
