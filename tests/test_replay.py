"""cppn-video replay: a sidecar renders again to the identical frames, with the checkpoint checked by SHA-256."""
from __future__ import annotations

import json
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import UserError
from pipeline.jobs import CompareSettings, StillSettings, WalkSettings, render_compare, render_still, render_walk
from pipeline.jobs.replay import replay
from video_helpers import read_video
from render_helpers import make_checkpoint


@pytest.fixture(scope="module")
def cks(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    return make_checkpoint(d / "a.pt"), make_checkpoint(d / "b.pt", epoch=2)


@pytest.mark.parametrize("settings", [
    WalkSettings(frames=7, size=32, keyframes=3, seed=4, lossless=True, ease="linear", interp="cubic"),
    WalkSettings(size=32, seeds="5,9,2", frames_per_transition=3, loop=True, lossless=True),
    WalkSettings(frames=6, size=32, classes="3,1,4", lossless=True),
])
def test_a_walk_replays_to_identical_frames(cks, tmp_path, settings):
    render_walk(cks[0], tmp_path / "w.mp4", settings)
    info = replay(tmp_path / "w.mp4.json")
    assert info["output"] == str(tmp_path / "w-replay.mp4")
    assert np.array_equal(read_video(tmp_path / "w-replay.mp4"), read_video(tmp_path / "w.mp4"))


def test_a_moved_keyframes_file_replays_from_the_recorded_keyframes(cks, tmp_path):
    keys = tmp_path / "k.npy"
    np.save(keys, np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32))
    render_walk(cks[0], tmp_path / "w.mp4", WalkSettings(frames=5, size=32, keyframes_file=str(keys), lossless=True))
    keys.unlink()
    replay(tmp_path / "w.mp4.json", tmp_path / "again.mp4")
    assert np.array_equal(read_video(tmp_path / "again.mp4"), read_video(tmp_path / "w.mp4"))


def test_compare_and_still_replay(cks, tmp_path):
    render_compare(list(cks), tmp_path / "c.mp4", CompareSettings(frames=4, panel_size=32, lossless=True))
    replay(tmp_path / "c.mp4.json")
    assert np.array_equal(read_video(tmp_path / "c-replay.mp4"), read_video(tmp_path / "c.mp4"))
    render_still(cks[1], tmp_path / "s.png", StillSettings(size=48, seed=3, invert=True))
    replay(tmp_path / "s.png.json")
    assert np.array_equal(iio.imread(tmp_path / "s-replay.png"), iio.imread(tmp_path / "s.png"))


def test_the_checkpoint_must_be_the_recorded_one(cks, tmp_path):
    mine = tmp_path / "mine.pt"
    shutil.copy(cks[0], mine)
    render_walk(mine, tmp_path / "w.mp4", WalkSettings(frames=3, size=32, keyframes=2))
    shutil.copy(cks[1], mine)  # replaced by another model since
    with pytest.raises(UserError, match=r"not found \(.*mine.pt: another file .*give it with --ckpt"):
        replay(tmp_path / "w.mp4.json")
    moved = tmp_path / "moved.pt"
    shutil.copy(cks[0], moved)
    replay(tmp_path / "w.mp4.json", ckpt=moved)  # the right file somewhere else: accepted
    with pytest.raises(UserError, match="is the original render"):
        replay(tmp_path / "w.mp4.json", tmp_path / "w.mp4")


def test_cli_replay_errors_are_one_line(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    res = CliRunner().invoke(cli, ["replay", str(tmp_path / "x.json")])
    assert res.exit_code == 1 and "is not a cppn-video sidecar" in str(res.exception)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "hologram", "settings": {}}))
    with pytest.raises(UserError, match="'hologram' render, which this version cannot replay"):
        replay(bad)
