"""A walk's default keyframes are stored real digits of varied classes, chosen by measurement
(pipeline/jobs/keyframes.py); --random-keyframes gives random latents; the README's quick start makes what it
says it makes."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_main
from pipeline.checkpoint import list_bundled, load_checkpoint
from pipeline.jobs.settings import WalkSettings
from pipeline.latents import walk_keyframes
from video_helpers import read_video

README = Path(__file__).resolve().parents[1] / "README.md"
pytestmark = pytest.mark.skipif("e24" not in list_bundled(), reason="the bundled e24 checkpoint is not here")


def test_the_judges_file_is_the_one_eval_uses():
    from pipeline.evaluate.metrics import ASSET_PATH
    from pipeline.jobs.keyframes import CLASSIFIER_PATH

    assert CLASSIFIER_PATH == ASSET_PATH


def test_default_keyframes_are_stored_digits_of_varied_classes():
    from pipeline.jobs.render import checkpoint_path

    ck = load_checkpoint("e24")
    s = WalkSettings(frames=16, size=48, keyframes=3, pace="none")
    keys, latents, rows = checkpoint_path(s, ck)
    labels = ck.digit_labels.numpy()[rows]
    assert np.array_equal(keys, ck.digit_latents.numpy()[rows]) and len(set(labels.tolist())) == 3
    assert np.array_equal(checkpoint_path(s, ck)[2], rows)  # a function of the settings and the checkpoint
    assert not np.array_equal(checkpoint_path(WalkSettings(frames=16, size=48, keyframes=3, pace="none", seed=1),
                                              ck)[2], rows)
    rand = checkpoint_path(WalkSettings(frames=16, size=48, keyframes=4, pace="none", random_keyframes=True), ck)
    assert np.array_equal(rand[0], walk_keyframes(0, 4, ck.z_dim)) and rand[2] is None


def test_an_old_sidecar_replays_its_random_keyframes():
    from pipeline.jobs.replay import _settings

    recorded = {k: v for k, v in WalkSettings(frames=8).__dict__.items() if k != "random_keyframes"}
    assert _settings(WalkSettings, recorded).random_keyframes is True
    assert _settings(WalkSettings, {**recorded, "random_keyframes": False}).random_keyframes is False


def test_the_readme_quick_start_makes_what_it_says(tmp_path, monkeypatch):
    """The quick start's own walk command, at 48 px: a 4-second (120 frames at 30 fps) walk of the bundled e24
    through stored real digits of at least 6 classes; without --size it is 1080x1080, as the text says."""
    text = README.read_text()
    quick = text[text.index("## Quick start"):text.index("## Examples")]
    command = re.search(r"&& (cppn-video walk [^\n`]*)", quick).group(1).split()
    assert "4-second walk at 1080x1080" in quick and "(`e24`)" in quick
    assert WalkSettings().size == 1080 and "--size" not in command and "--ckpt" not in command
    monkeypatch.chdir(tmp_path)
    res = run_main(command[1:] + ["--size", "48", "--preset", "ultrafast", "--quiet"])
    assert res.returncode == 0, res.stderr
    out = tmp_path / command[command.index("-o") + 1]
    info = json.loads(Path(f"{out}.json").read_text())
    assert read_video(out).shape == (120, 48, 48)
    assert info["scene"]["seconds"] == 4.0 and info["checkpoint"]["name"] == "e24"
    assert info["kind"] == "digits" and len(set(info["keyframe_digits"])) >= 6


def test_robust_confidence_is_the_least_over_one_pixel_shifts():
    """The chooser reads a frame by its class's probability on the frame and on its four one-pixel shifts."""
    import torch

    from pipeline.digit_classifier import classify
    from pipeline.jobs.keyframes import _model, _shifted, robust_confidence

    from pipeline.render import Renderer

    ck = load_checkpoint("e24")
    with Renderer(ck.generator, 26, 26, scale=8.0, path="auto", device="cpu") as r, torch.no_grad():
        images = r.render_float(ck.digit_latents.numpy()[:3].astype(np.float32))
        views = _shifted(images)
        assert torch.equal(views[0][:, 1:], images[:, :-1]) and not views[0][:, 0].any()  # down, zeros in
        assert torch.equal(views[3][:, :, :-1], images[:, :, 1:]) and not views[3][:, :, -1].any()  # left
        plain = classify(_model(), images)
        cls = plain.argmax(1)
        want = torch.stack([classify(_model(), v)[torch.arange(3), cls] for v in [images, *views]]).min(0).values
        assert torch.allclose(robust_confidence(images), want) and (want <= plain.max(1).values + 1e-6).all()
