"""Automatic framing for compare and --grid (pipeline/jobs/framing.py): without a scale one scale for every
panel or cell keeps each one's keyframes off its outer 2%, recorded in the sidecar; a given scale is kept."""
import json
from pathlib import Path

import pytest

from cli_helpers import run_main
from pipeline.checkpoint import list_bundled, load_checkpoint
from pipeline.jobs import framing
from pipeline.jobs.compare import render_compare, render_walk_grid
from pipeline.jobs.replay import _settings
from pipeline.jobs.settings import CompareSettings, WalkSettings
from pipeline.latents import digit_keyframes, parse_digits, seed_latents

pytestmark = pytest.mark.skipif(not {"e6", "e24"} <= set(list_bundled()), reason="bundled e6/e24 are not here")
DIGITS = "4,0,3,7"  # e24's keyframes that reach the outer 2% at the training scale


def test_compare_frames_every_panel_with_one_scale(tmp_path):
    cks = [load_checkpoint("e6"), load_checkpoint("e24")]
    s = CompareSettings(frames=4, panel_size=48, digits=DIGITS, scale=None, pace="none", lossless=True)
    info = render_compare(cks, tmp_path / "c.mp4", s)
    scale = info["settings"]["scale"]
    side = json.loads(Path(f"{tmp_path / 'c.mp4'}.json").read_text())
    assert side["settings"]["scale"] == scale > framing.TRAINING_SCALE
    order = parse_digits(DIGITS)
    touching = {}
    for ck in cks:
        keys, _ = digit_keyframes(order, ck.digit_latents, ck.digit_labels, source=ck.name)
        assert not any(framing.edge_touching(ck.generator, keys, (48, 48), scale))  # every panel framed
        touching[ck.name] = sum(framing.edge_touching(ck.generator, keys, (48, 48), framing.TRAINING_SCALE))
    assert touching["e24"] > 0  # the case needs the margin
    assert _settings(CompareSettings, side["settings"]).scale == scale  # replay renders the number recorded
    given = render_compare(cks, tmp_path / "g.mp4", CompareSettings(frames=2, panel_size=48, digits=DIGITS,
                                                                    scale=8.5, pace="none", lossless=True))
    assert given["settings"]["scale"] == 8.5


def test_a_grid_frames_every_cell_with_one_scale(tmp_path):
    ck = load_checkpoint("e24")
    s = WalkSettings(frames=3, size=32, seeds="0-3", scale=None, pace="none", lossless=True)
    info = render_walk_grid(ck, tmp_path / "g.mp4", s, "2x1")
    want = framing.auto_scale([ck.generator], seed_latents([0, 1, 2, 3], ck.z_dim), (32, 32))
    assert info["settings"]["scale"] == want and [c["seeds"] for c in info["cells"]] == ["0,1", "2,3"]
    kept = render_walk_grid(ck, tmp_path / "k.mp4", WalkSettings(**{**s.__dict__, "scale": 9.0}), "2x1")
    assert kept["settings"]["scale"] == 9.0


def test_cli_compare_says_the_scale_it_chose(tmp_path):
    res = run_main(["compare", "e6", "e24", "--digits", DIGITS, "--frames", "2", "--panel-size", "48",
                    "--pace", "none", "--preset", "ultrafast", "-o", str(tmp_path / "c.mp4")])
    assert res.returncode == 0, res.stderr
    side = json.loads(Path(f"{tmp_path / 'c.mp4'}.json").read_text())
    assert f"scale {side['settings']['scale']:g} (automatic: every panel's keyframes kept off" in res.stdout
    assert side["settings"]["scale"] > 8
