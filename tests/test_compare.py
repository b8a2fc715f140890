"""Comparison videos: geometry, exact panels, captions, shared vs per-checkpoint latents, one-line errors, CLI."""
import json

import numpy as np
import pytest
import torch

from pipeline.checkpoint import load_checkpoint, save_render_checkpoint
from pipeline.errors import UserError
from pipeline.jobs import CompareSettings, WalkSettings, path_latents, render_compare
from pipeline.jobs.compare import caption_height, render_caption
from pipeline.models import ResnetConfig, ResnetGenerator
from pipeline.render import Renderer
from video_helpers import read_video
from render_helpers import lively_generator, make_checkpoint

P = 32                  # panel size used throughout: small, so a render takes a fraction of a second
C = caption_height(P)   # caption strip height at that size


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """prev e3, resnet e6 (width 6) and resnet e24 (width 4, its own class latents): three different models."""
    d = tmp_path_factory.mktemp("ck")
    prev = make_checkpoint(d / "prev.pt", "prev", epoch=3)
    e6 = make_checkpoint(d / "e6.pt", "resnet", epoch=6)
    gen, _ = lively_generator("resnet", width=4)
    latents = torch.randn(10, gen.cfg.z_dim, generator=torch.Generator().manual_seed(8))
    e24 = save_render_checkpoint(d / "e24.pt", gen, latents, {"epoch": 24})
    return [prev, e6, e24]


def _panels(video, n, columns, panel=P, caption=C):
    """Panel i's pixels [N, panel, panel] and its caption strip [N, caption, panel], filled row by row."""
    out = []
    for i in range(n):
        row, col = divmod(i, columns)
        x, y = col * panel, row * (panel + caption)
        out.append((video[:, y:y + panel, x:x + panel], video[:, y + panel:y + panel + caption, x:x + panel]))
    return out


def test_compare_geometry_exact_panels_and_captions(ckpts, tmp_path):
    out = tmp_path / "cmp.mp4"
    s = CompareSettings(frames=5, panel_size=P, keyframes=2, seed=3, lossless=True, batch=2, pace="none",
                        random_keyframes=True)  # one shared random path (default: each its own stored digits)
    calls = []
    info = render_compare(ckpts, out, s, progress=calls.append)
    video = read_video(out)
    assert video.shape == (5, P + C, 3 * P)  # height = rows x (panel + caption), width = columns x panel
    assert (info["width"], info["height"]) == (3 * P, P + C)
    assert calls[0] == 0 and sum(calls) == 5

    _, latents = path_latents(s.walk(), 32, None)
    # default: the file's name and, from the metadata, what it is
    labels = ["prev (previous model, 3 epochs)", "e6 (resnet, 6 epochs)", "e24 (resnet, 24 epochs)"]
    for (panel, caption), path, label in zip(_panels(video, 3, 3), ckpts, labels):
        # Each panel is exactly what the render engine makes of the shared latents.
        assert np.array_equal(panel, Renderer(load_checkpoint(path).generator, P, P).render(latents))
        # The caption is drawn once, identical in every frame, with text pixels on the background.
        assert np.array_equal(caption, np.broadcast_to(render_caption(label, P, C), caption.shape))
        assert caption.max() > 128 and caption.min() == 0
    panels = [p for p, _ in _panels(video, 3, 3)]
    assert not np.array_equal(panels[0], panels[1]) and not np.array_equal(panels[1], panels[2])

    side = json.loads((tmp_path / "cmp.mp4.json").read_text())
    assert [c["label"] for c in side["checkpoints"]] == labels
    assert [c["sha256"] for c in side["checkpoints"]] == [load_checkpoint(p).sha256 for p in ckpts]
    assert side["layout"] == {"columns": 3, "rows": 1, "panel_size": P, "panel_height": P, "caption_height": C}
    keys = [np.asarray(c["keyframes"]) for c in side["checkpoints"]]
    assert keys[0].shape == (2, 32) and all(np.array_equal(k, keys[0]) for k in keys)  # one shared path
    assert side["latents"].startswith("shared") and side["settings"]["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.mp4", "cmp.mp4.json"]  # no temp files left


def test_labels_change_captions_not_panels(ckpts, tmp_path):
    s = CompareSettings(frames=2, panel_size=P, keyframes=2, lossless=True)
    render_compare(ckpts[:2], tmp_path / "a.mp4", s)
    render_compare(ckpts[:2], tmp_path / "b.mp4", CompareSettings(**{**s.__dict__, "labels": ("previous", "6 epochs")}))
    a = _panels(read_video(tmp_path / "a.mp4"), 2, 2)
    b = _panels(read_video(tmp_path / "b.mp4"), 2, 2)
    for (pa, ca), (pb, cb) in zip(a, b):
        assert np.array_equal(pa, pb) and not np.array_equal(ca, cb)
    assert json.loads((tmp_path / "b.mp4.json").read_text())["settings"]["labels"] == ["previous", "6 epochs"]


def test_caption_font_scales_with_panel():
    def text_rows(panel):
        strip = render_caption("resnet e24", panel, caption_height(panel))
        return int((strip > 128).any(axis=1).sum())

    assert caption_height(1080) == 80 and caption_height(P) % 2 == 0
    assert text_rows(1080) > 3 * text_rows(240) > 0
    dark = render_caption("prev e3", 240, 18, invert=True)  # inverted: dark text on the white background
    assert dark.max() == 255 and dark.min() < 128


def test_layout_grid_and_classes_use_each_checkpoints_latents(ckpts, tmp_path):
    out = tmp_path / "grid.mp4"
    s = CompareSettings(frames=4, panel_size=P, layout="2x2", classes="0,1,2", invert=True, lossless=True,
                        pace="none")
    render_compare(ckpts, out, s)
    video = read_video(out)
    assert video.shape == (4, 2 * (P + C), 2 * P)
    empty = video[:, P + C:, P:]  # the fourth cell: background only (white when inverted)
    assert (empty == 255).all()
    side = json.loads((tmp_path / "grid.mp4.json").read_text())
    assert side["path"] == "classes" and "own checkpoint's class latents" in side["latents"]
    for entry, path in zip(side["checkpoints"], ckpts):
        expected = load_checkpoint(path).class_latents[[0, 1, 2]].numpy()
        assert np.allclose(np.asarray(entry["keyframes"]), expected)
    assert not np.allclose(side["checkpoints"][1]["keyframes"], side["checkpoints"][2]["keyframes"])
    for (panel, _), path in zip(_panels(video, 3, 2), ckpts):
        ck = load_checkpoint(path)
        _, lat = path_latents(WalkSettings(frames=4, classes="0,1,2"), 32, ck.class_latents)
        assert np.array_equal(panel, Renderer(ck.generator, P, P).render(lat, invert=True))


@pytest.mark.parametrize("kwargs,message", [
    ({"labels": ("a", "b")}, "2 labels were given for 3 checkpoints"),
    ({"layout": "1x2"}, "layout 1x2 has room for 2 panels but 3 checkpoints"),
    ({"layout": "3by1"}, "bad layout"),
    ({"panel_size": 33}, "--panel-size must be even"),
    ({"frames": 0}, "--frames"),
])
def test_bad_settings_are_one_line_errors(ckpts, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message) as err:
        render_compare(ckpts, tmp_path / "x.mp4", CompareSettings(**{"frames": 2, "panel_size": P, **kwargs}))
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_different_latent_sizes_refused_before_rendering(ckpts, tmp_path):
    small = save_render_checkpoint(tmp_path / "z16.pt", ResnetGenerator(ResnetConfig(z_dim=16)),
                                   torch.zeros(10, 16), {"epoch": 1})
    calls = []
    with pytest.raises(UserError, match=r"different latent sizes \(prev: 32, z16: 16\)") as err:
        render_compare([ckpts[0], small], tmp_path / "x.mp4", CompareSettings(frames=2, panel_size=P),
                       progress=calls.append)
    assert "\n" not in str(err.value) and calls == []
    assert not (tmp_path / "x.mp4").exists()


from cli_helpers import run_main as _run_main  # noqa: E402 (the real entry point, in-process)


def test_cli_compare_help_and_json(ckpts, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import cli

    res = CliRunner().invoke(cli, ["compare", "--help"])
    assert res.exit_code == 0
    assert "CKPT..." in res.output and "--panel-size" in res.output and "3240x1160" in res.output

    out = tmp_path / "c.mp4"
    proc = _run_main(["compare", *map(str, ckpts[1:]), "-o", str(out), "--frames", "3", "--panel-size", str(P),
                      "--labels", "six,twenty-four", "--keyframes", "2", "--json"])
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert [c["label"] for c in info["checkpoints"]] == ["six", "twenty-four"]
    assert read_video(out).shape == (3, P + C, 2 * P) == (info["frames"], info["height"], info["width"])

    proc = _run_main(["compare", *map(str, ckpts), "-o", str(tmp_path / "d.mp4"), "--panel-size", str(P),
                      "--layout", "2x1"])
    assert proc.returncode == 1 and proc.stderr.startswith("error: layout 2x1")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bench_compare_projects_the_default_video(ckpts):
    from pipeline.bench.compare_bench import run_compare_bench

    r = run_compare_bench(ckpts, frames=3, panel_size=32)
    assert r["frames"] == 3 and r["projected_frames"] == 300 and r["seconds_per_frame"] > 0
    # the whole render, start-up included: seconds is rounded to 0.01 and the rate to 0.01, hence the margins
    assert 3 / (r["seconds"] + 0.005) - 0.005 <= r["frames_per_second"] <= 3 / (r["seconds"] - 0.005) + 0.005
    assert r["projected_seconds"] == pytest.approx(300 * r["seconds_per_frame"], abs=0.3)  # both rounded


def test_the_default_comparison_fits_1920_wide():
    from pipeline.jobs.layout import auto_panel, compare_geometry

    assert [auto_panel(c) for c in (1, 2, 3, 4)] == [1080, 960, 640, 480]
    geo = compare_geometry(None, None, 3, 10, "mp4")
    assert (geo.width, geo.height) == (1920, 688)
    assert compare_geometry(1080, None, 3, 10, "mp4").width == 3240  # --panel-size 1080: the article's look
