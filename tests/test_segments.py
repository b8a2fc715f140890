"""Segmented rendering: frame ranges in two CPU worker processes, joined without re-encoding."""
import json
from dataclasses import replace
import multiprocessing

import numpy as np
import pytest
import torch

from cli_helpers import run_main
from pipeline.checkpoint import load_checkpoint, save_render_checkpoint
from pipeline.errors import UserError
from pipeline.jobs import WalkSettings, render_walk, render_walk_segmented
from pipeline.jobs.render import checkpoint_path
from pipeline.jobs.kinds import run_walk
from pipeline.jobs.segments import segment_bounds
from pipeline.models import ResnetConfig, ResnetGenerator
from pipeline.render import Renderer
from video_helpers import read_video
from render_helpers import make_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "e1.pt")


@pytest.fixture(scope="module")
def soft_ckpt(tmp_path_factory):
    """Smooth, mid-contrast frames, like a trained model's. The lively test generator's frames are nearly
    binary with sharp edges: x264 at CRF 18 gets them to only ~40 dB even in a single render at 64x64, which
    says nothing about segmenting. The article's init with a stronger output layer is smooth."""
    torch.manual_seed(0)
    gen = ResnetGenerator(ResnetConfig())
    with torch.no_grad():
        gen.out.weight.mul_(100.0)
    path = tmp_path_factory.mktemp("soft") / "soft.pt"
    return save_render_checkpoint(path, gen, torch.randn(10, 32, generator=torch.Generator().manual_seed(1)),
                                  {"epoch": 1})


def _psnr(video: np.ndarray, exact: np.ndarray) -> float:
    """PSNR (dB) of a whole video against exact frames, from the mean squared error over every pixel."""
    mse = np.mean((video.astype(np.float64) - exact.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize("frames,workers", [(12, 2), (7, 3), (3, 5), (1, 2)])
def test_segment_bounds_cover_frames_contiguously(frames, workers):
    bounds = segment_bounds(frames, workers)
    assert len(bounds) == min(frames, workers)
    assert bounds[0][0] == 0 and bounds[-1][1] == frames
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [b - a for a, b in bounds]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_lossless_join_equals_single_render(tmp_path):
    """A --digits walk with workers=2: the renderer's exact frames, the same as one process, progress
    aggregated from the workers' batches, and a sidecar naming the segments and the bank rows. (One
    segmented render: each costs two workers' start.)"""
    from render_helpers import lively_generator

    gen, _ = lively_generator("resnet")
    labels = torch.arange(10).repeat_interleave(2)  # two examples of each digit, grouped by class
    bank = {"latents": torch.randn(20, gen.cfg.z_dim, generator=torch.Generator().manual_seed(3)), "labels": labels}
    path = save_render_checkpoint(tmp_path / "bank.pt", gen, torch.zeros(10, gen.cfg.z_dim), {"epoch": 1},
                                  digit_bank=bank)
    s = WalkSettings(frames=12, size=48, digits="5,2,5", interp="lerp", lossless=True, batch=2, pace="none")
    calls = []
    # through run_walk, as the CLI, batch and replay run a walk: its settings' workers are honoured
    info = run_walk(path, tmp_path / "seg.mp4", replace(s, workers=2), progress=calls.append)
    render_walk(path, tmp_path / "one.mp4", s)
    seg, one = read_video(tmp_path / "seg.mp4"), read_video(tmp_path / "one.mp4")
    assert seg.shape == one.shape == (12, 48, 48)
    assert np.array_equal(seg, one)
    ck = load_checkpoint(path)
    _, latents, _ = checkpoint_path(s, ck)
    assert np.array_equal(seg, Renderer(ck.generator, 48, 48).render(latents))
    assert calls[0] == 0 and sum(calls) == 12 and len(calls) > 2  # workers' batches, aggregated
    assert info["kind"] == "digits" and info["digit_bank_rows"] == [10, 4, 11]
    assert np.array_equal(info["keyframes"], bank["latents"][[10, 4, 11]].numpy())
    side = json.loads((tmp_path / "seg.mp4.json").read_text())
    assert side["workers"] == side["settings"]["workers"] == 2
    assert [(g["start"], g["stop"]) for g in side["segments"]] == [(0, 6), (6, 12)]
    assert side["checkpoint"]["sha256"] == info["checkpoint"]["sha256"] == ck.sha256
    assert side["keyframes"] == json.loads((tmp_path / "one.mp4.json").read_text())["keyframes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.pt", "one.mp4", "one.mp4.json", "seg.mp4",
                                                          "seg.mp4.json"]


def test_cli_workers_crf18_psnr_against_exact_frames(soft_ckpt, tmp_path):
    """`walk --workers 2` at the default CRF: above 45 dB against the exact frames, as good as one process."""
    # equal steps (--pace none): the 45 dB bar was set on this motion; pacing makes some steps larger
    # --scale 8: the library's default (the CLI's frames the keyframes: jobs.framing)
    args = ["--ckpt", str(soft_ckpt), "--frames", "12", "--size", "64", "--keyframes", "2", "--pace", "none",
            "--scale", "8", "--quiet"]
    proc = run_main(["walk", *args, "-o", tmp_path / "seg.mp4", "--workers", "2"])  # the CLI, in this process
    assert proc.returncode == 0, proc.stderr
    render_walk(soft_ckpt, tmp_path / "one.mp4", WalkSettings(frames=12, size=64, keyframes=2, pace="none"))
    render_walk(soft_ckpt, tmp_path / "exact.mp4", WalkSettings(frames=12, size=64, keyframes=2, lossless=True,
                                                                pace="none"))
    seg, one, exact = (read_video(tmp_path / f"{n}.mp4") for n in ("seg", "one", "exact"))
    assert seg.shape == one.shape == exact.shape == (12, 64, 64)
    assert len({f.tobytes() for f in exact}) == 12  # a moving video, not one frame repeated
    assert _psnr(seg, exact) > 45.0
    assert _psnr(seg, exact) > _psnr(one, exact) - 1.0
    assert json.loads((tmp_path / "seg.mp4.json").read_text())["workers"] == 2


def test_worker_failure_is_reported_and_cleaned_up(tmp_path):
    """The checkpoint changes after the checks (workers reload it): the error names it, nothing is written."""
    ck = make_checkpoint(tmp_path / "e1.pt", epoch=1)
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def replace_checkpoint(n):
        if n == 0:
            make_checkpoint(ck, epoch=2)

    with pytest.raises(UserError, match="changed while rendering"):
        render_walk_segmented(ck, out_dir / "x.mp4", WalkSettings(frames=6, size=32, keyframes=2), workers=2,
                              progress=replace_checkpoint)
    assert multiprocessing.active_children() == []
    assert list(out_dir.iterdir()) == []


def test_bad_inputs_fail_before_any_worker(ckpt, tmp_path):
    with pytest.raises(UserError, match="joins MP4 files only"):
        render_walk_segmented(ckpt, tmp_path / "x.gif", WalkSettings(frames=4, size=32), workers=2)
    with pytest.raises(UserError, match="--workers must be at least 1"):
        render_walk_segmented(ckpt, tmp_path / "x.mp4", WalkSettings(frames=4, size=32), workers=0)
    with pytest.raises(UserError, match="CUDA is not available|not available"):
        if torch.cuda.is_available():
            pytest.skip("needs a machine without CUDA")
        render_walk_segmented(ckpt, tmp_path / "x.mp4", WalkSettings(frames=4, size=32), workers=2,
                              devices=["cpu", "cuda:0"])
    assert list(tmp_path.iterdir()) == []


def test_cpu_workers_that_would_starve_each_other_are_warned_about(ckpt, tmp_path, monkeypatch):
    import os

    import pipeline.jobs.segments as segments

    if (os.cpu_count() or 1) // 2 >= 4:
        pytest.skip("enough cores for two CPU workers")

    class Started(Exception):
        pass

    def stop_before_the_workers(*a, **kw):  # the warning comes before anything is started
        raise Started

    monkeypatch.setattr(segments, "temp_sibling", stop_before_the_workers)
    with pytest.warns(RuntimeWarning, match="usually slower"), pytest.raises(Started):
        render_walk_segmented(ckpt, tmp_path / "w.mp4", WalkSettings(frames=2, size=16, preset="ultrafast"), workers=2)
