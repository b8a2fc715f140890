"""The automatic framing (pipeline/jobs/framing.py): without --scale, walks and stills choose the smallest scale
from 8 up that keeps every keyframe's ink off the frame's outer 2%; the sidecar records the number, so a replay
is exact; an explicit --scale, a camera, and the library's default 8 are kept."""
import json

import numpy as np
import pytest

from cli_helpers import run_main
from pipeline.checkpoint import list_bundled, load_checkpoint
from pipeline.jobs import framing

pytestmark = pytest.mark.skipif("e24" not in list_bundled(), reason="the bundled e24 checkpoint is not here")


def test_scale_for_keeps_the_extent_inside_the_inner_96_percent():
    square = (1080, 1080)
    assert framing.scale_for(np.array([[6.0, 7.0]]), square) == 8.0           # fits: the training scale
    assert framing.scale_for(np.array([[10.0, 3.0]]), square) == 10.5         # 10 / 0.96 = 10.42 -> 10.5
    assert framing.scale_for(np.array([[15.5, 3.0]]), square) == framing.PROXY_SCALE  # at most the proxy's reach
    # ink to the proxy's edge (a streak off to infinity) runs off any frame: left out, not framed at the maximum
    streak = framing.PROXY_SCALE
    assert framing.scale_for(np.array([[streak, 13.7], [10.0, 3.0]]), square) == 10.5
    assert framing.scale_for(np.array([[4.0, streak]]), square) == 8.0
    # a wide frame reaches further sideways: only the height constrains y, the width x
    wide = (1280, 720)
    assert framing.scale_for(np.array([[10.0, 3.0]]), wide) == 8.0
    assert framing.scale_for(np.array([[3.0, 10.0]]), wide) == 10.5
    assert framing.scale_for(np.zeros((0, 2)), square) == 8.0


def test_article_keyframes_touch_the_edge_at_8_and_not_at_the_chosen_scale():
    from pipeline.latents import digit_keyframes

    ck = load_checkpoint("e24")
    keys, _ = digit_keyframes([8, 6, 4, 2, 0, 1, 3, 5, 7], ck.digit_latents, ck.digit_labels, source="e24")
    canvas = (96, 96)
    chosen = framing.auto_scale([ck.generator], keys, canvas)
    assert 8.0 < chosen < 12.0
    assert sum(framing.edge_touching(ck.generator, keys, canvas, 8.0)) >= 2
    assert not any(framing.edge_touching(ck.generator, keys, canvas, chosen))


def test_walk_without_scale_records_the_chosen_one_and_replays_it(tmp_path):
    import imageio.v3 as iio

    def frames(folder):
        return np.stack([iio.imread(p) for p in sorted(folder.glob("*.png"))])

    out = tmp_path / "w"
    res = run_main(["walk", "--digits", "8,3", "--frames", "3", "--size", "32", "--pace", "none", "--format", "png",
                    "-o", out])
    assert res.returncode == 0, res.stderr
    info = json.loads((tmp_path / "w.json").read_text())
    scale = info["settings"]["scale"]
    assert scale > 8.0 and f"scale {scale:g} (automatic" in res.stdout
    # the recorded number is what a replay renders, exactly
    from pipeline.jobs.replay import replay

    again = replay(tmp_path / "w.json", tmp_path / "r")
    assert again["settings"]["scale"] == scale
    assert len(frames(out)) == 3 and np.array_equal(frames(out), frames(tmp_path / "r"))
    # an explicit --scale is kept as given, and so is the library's default
    res = run_main(["walk", "--digits", "8,3", "--frames", "2", "--size", "32", "--pace", "none", "--scale", "8",
                    "--preset", "ultrafast", "-o", tmp_path / "e.mp4"])
    assert res.returncode == 0 and "automatic" not in res.stdout
    assert json.loads((tmp_path / "e.mp4.json").read_text())["settings"]["scale"] == 8.0
    from pipeline.jobs.settings import StillSettings, WalkSettings

    assert WalkSettings().scale == 8.0 and StillSettings().scale == 8.0


def test_still_frames_its_digit_and_a_camera_keeps_the_training_scale(tmp_path):
    res = run_main(["still", "--digit", "3", "--size", "32", "-o", tmp_path / "three.png"])
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "three.png.json").read_text())["settings"]["scale"] > 8.0
    res = run_main(["still", "--digit", "8", "--size", "32", "-o", tmp_path / "eight.png"])
    assert json.loads((tmp_path / "eight.png.json").read_text())["settings"]["scale"] == 8.0
    assert "fits the training framing" in res.stdout
    res = run_main(["still", "--digit", "3", "--size", "32", "--zoom", "2", "-o", tmp_path / "zoom.png"])
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "zoom.png.json").read_text())["settings"]["scale"] == 8.0
