"""Encoders sized to the box (issue 26): thread budgets in the ffmpeg command, the cores divided between
renderers and encoders, and one renderer feeding several encoders joined into the same bytes."""
import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from pipeline.jobs.encoders import (SplitWriter, auto_encoders, open_encoders, parse_encoders, split_cores,
                                    stream_split)
from pipeline.render import Renderer, reference_frames, to_uint8
from pipeline.video import VideoWriter, encoder_thread_args, open_writer
from render_helpers import lively_generator
from video_helpers import read_video


def _opt(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_ffmpeg_command_carries_the_thread_budget(tmp_path):
    frames = np.zeros((2, 16, 16), np.uint8)
    with open_writer(tmp_path / "a.mp4", (16, 16), threads=3) as w:
        w.write(frames)
    assert _opt(w.command, "-threads") == "3"
    assert "threads=3" in _opt(w.command, "-x264-params")
    with open_writer(tmp_path / "b.mp4", (16, 16)) as w:  # no budget: x264's default, as before
        w.write(frames)
    assert "-threads" not in w.command and "-x264-params" not in w.command
    assert encoder_thread_args("gif", 2)[:2] == ["-threads", "2"]
    with pytest.raises(ValueError):
        encoder_thread_args("mp4", 0)


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16, 64])
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_budget_never_exceeds_the_cores(cores, workers):
    for device in ("cpu", "cuda"):
        b = split_cores(cores, workers, None, device)
        assert b.encoders == auto_encoders(device, cores, workers) >= 1
        if cores >= workers * (2 if device == "cuda" else 1) * b.encoders:  # each part can get a whole core
            assert b.total(workers, gpu=device == "cuda") <= cores
    assert split_cores(16, 1, None, "cuda") == split_cores(16, 1, 4, "cuda")  # auto: cores // 4 on a GPU
    b = split_cores(16, 1, 4, "cuda")
    assert (b.render_threads, b.encoder_threads) == (1, 3) and b.total() == 13
    assert split_cores(2, 1, None, "cpu").encoders == 1  # today's behaviour on the CPU
    assert split_cores(16, 2, 2, "cpu").encoder_threads == 4


def test_encoders_setting_parses():
    assert parse_encoders("auto") is None and parse_encoders(None) is None and parse_encoders("3") == 3
    for bad in ("0", "-1", "x", "1.5", True):
        with pytest.raises(UserError, match="--encoders"):
            parse_encoders(bad)


@pytest.fixture(scope="module")
def walk():
    gen, _ = lively_generator("resnet")
    z = np.random.default_rng(1).standard_normal((11, gen.cfg.z_dim)).astype(np.float32)
    return gen, z


@pytest.mark.parametrize("encoders", [1, 2, 3])
def test_lossless_split_is_the_same_bytes(walk, tmp_path, encoders):
    gen, z = walk
    exact = to_uint8(reference_frames(gen, torch.from_numpy(z), 24, 32), False).numpy()  # the oracle
    out = tmp_path / "w.mp4"
    seen = []
    with Renderer(gen, 24, 32, path="torch", device="cpu") as r:
        with open_encoders(out, (32, 24), len(z), encoders, threads=1, lossless=True) as w:
            assert isinstance(w, SplitWriter if encoders > 1 else VideoWriter)
            stream_split(r, z, w, 2, False, progress=seen.append)
    video = read_video(out)
    assert video.shape == exact.shape
    assert np.abs(video.astype(int) - np.asarray(exact, int)).max() <= 1  # within one grey level of the oracle
    if encoders == 1:
        test_lossless_split_is_the_same_bytes.single = video
    else:
        assert np.array_equal(video, test_lossless_split_is_the_same_bytes.single)
    assert sum(seen) == len(z)
    assert [p.name for p in tmp_path.iterdir()] == ["w.mp4"]  # no segment folder left behind


def test_split_writer_in_order_and_abort(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (7, 16, 16)).astype(np.uint8)
    with SplitWriter(tmp_path / "a.mp4", (16, 16), 7, 3, threads=1, lossless=True) as w:
        w.write(frames[:4])
        w.write(frames[4:])
    assert np.array_equal(read_video(tmp_path / "a.mp4"), frames)
    with pytest.raises(RuntimeError):
        with SplitWriter(tmp_path / "b.mp4", (16, 16), 7, 2, threads=1) as w:
            w.write(frames[:3])
            raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_walk_with_three_encoders_is_the_single_encode(tmp_path):
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs.render import WalkSettings, prepare_walk, render_walk
    from render_helpers import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "e1.pt")
    s = WalkSettings(frames=9, size=32, keyframes=3, lossless=True, batch=2, pace="none", scale=8.0, encoders=3)
    calls = []
    info = render_walk(ckpt, tmp_path / "three.mp4", s, progress=calls.append)
    latents = prepare_walk(ckpt, tmp_path / "x.mp4", s).latents
    want = Renderer(load_checkpoint(ckpt).generator, 32, 32).render(latents)
    assert np.array_equal(read_video(tmp_path / "three.mp4"), want)
    assert info["frames"] == 9 and sum(calls) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1.pt", "three.mp4", "three.mp4.json"]


def test_cli_encoders_reaches_the_walk_and_bad_values_are_one_line(tmp_path):
    import json

    from cli_helpers import run_main
    from render_helpers import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "e1.pt")
    base = ["walk", "--ckpt", ckpt, "--frames", "6", "--size", "32", "--scale", "8", "--quiet"]
    bad = run_main([*base, "-o", tmp_path / "bad.mp4", "--encoders", "zero"])
    assert bad.returncode == 1 and "error: --encoders must be a whole number >= 1 or 'auto'" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad.mp4").exists()
    ok = run_main([*base, "-o", tmp_path / "two.mp4", "--encoders", "2"])
    assert ok.returncode == 0, ok.stderr
    assert read_video(tmp_path / "two.mp4").shape == (6, 32, 32)
    assert json.loads((tmp_path / "two.mp4.json").read_text())["settings"]["encoders"] == 2


def test_compare_with_two_encoders_is_the_single_encode(tmp_path):
    """--encoders is one option of every video command (cli.render.encoding_options): a comparison fed to two
    x264 encodes joined losslessly decodes to the frames of one encode (--crf 0: x264's lossless mode)."""
    import json

    from cli_helpers import run_main
    from pipeline.jobs.replay import _settings
    from pipeline.jobs.settings import CompareSettings
    from render_helpers import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "e1.pt")
    videos = {}
    for n in (1, 2):
        out = tmp_path / f"c{n}.mp4"
        res = run_main(["compare", ckpt, ckpt, "-o", out, "--frames", "5", "--panel-size", "24", "--scale", "8",
                        "--pace", "none", "--crf", "0", "--batch", "2", "--encoders", str(n), "--quiet"])
        assert res.returncode == 0, res.stderr
        videos[n] = read_video(out)
    assert videos[1].shape[0] == 5 and len({f.tobytes() for f in videos[1]}) == 5  # a walk: every frame new
    assert np.array_equal(videos[1], videos[2])
    rec = json.loads((tmp_path / "c2.mp4.json").read_text())["settings"]
    assert rec["encoders"] == 2 and _settings(CompareSettings, rec).encoders == 2  # replay takes it back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1.mp4", "c1.mp4.json", "c2.mp4", "c2.mp4.json", "e1.pt"]


def test_a_segment_worker_feeds_its_own_encoders(tmp_path, monkeypatch):
    """--workers with --encoders: each segment (jobs.segments.render_segment, the one per-segment render) is that
    many x264 encodes joined losslessly, the renderer's exact frames from the segment's first frame on."""
    from pipeline.jobs.render import WalkSettings
    from pipeline.jobs.segments import render_segment
    from pipeline.checkpoint import load_checkpoint
    from render_helpers import make_checkpoint

    ck = load_checkpoint(make_checkpoint(tmp_path / "e1.pt"))
    z = np.random.default_rng(2).standard_normal((4, ck.z_dim)).astype(np.float32)
    s = WalkSettings(frames=4, size=16, scale=8.0, lossless=True, batch=1, pace="none", encoders=2)
    from pipeline.jobs import encoders as module

    opened = []
    monkeypatch.setattr(module, "open_writer", lambda path, *a, **kw: opened.append(kw["threads"]) or
                        open_writer(path, *a, **kw))
    render_segment(ck, z, s, "cpu", 1, tmp_path / "seg.mp4")
    assert opened == [1, 1]  # two encodes of the segment, each at the worker's one core
    assert np.array_equal(read_video(tmp_path / "seg.mp4"), Renderer(ck.generator, 16, 16).render(z))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1.pt", "seg.mp4"]
