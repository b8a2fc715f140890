"""stylegan3's conventions: keyframes by seed (--seeds 0-31,40), many stills in one run with a contact sheet,
length per transition, and a grid of walks of one checkpoint."""
from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import UserError
from pipeline.jobs import StillSettings, WalkSettings, render_still, render_stills, render_walk, render_walk_grid
from pipeline.latents import parse_seeds, seed_latents, walk_keyframes
from video_helpers import read_video
from render_helpers import make_checkpoint

S = 32  # pixels


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "e1.pt")


def test_parse_seeds():
    assert parse_seeds("3,17,42") == [3, 17, 42]
    assert parse_seeds("0-3,40") == [0, 1, 2, 3, 40]
    assert parse_seeds(" 5 ") == [5] and parse_seeds("7-7") == [7]
    for bad, message in [("", "empty --seeds"), ("a,b", "bad --seeds 'a,b' at 'a'"), ("5-2", "ranges go up"),
                         ("-3", "bad --seeds"), ("0-1000000", "more than 100,000 seeds")]:
        with pytest.raises(UserError, match=message) as err:
            parse_seeds(bad)
        assert "\n" not in str(err.value)


def test_a_seed_is_the_same_latent_everywhere():
    z = seed_latents([17, 3], 32)
    assert np.array_equal(z[0], walk_keyframes(17, 1, 32)[0]) and np.array_equal(z[1], walk_keyframes(3, 1, 32)[0])
    assert np.array_equal(z[0], walk_keyframes(17, 5, 32)[0])  # the first keyframe of walk --seed 17


def test_frames_per_transition():
    base = WalkSettings(seeds="1,2,3", frames_per_transition=10)
    assert base.resolved().frames == 21  # 2 transitions + the last keyframe
    assert WalkSettings(seeds="1,2,3", frames_per_transition=10, loop=True).resolved().frames == 30
    assert WalkSettings(digits="8,6,4", frames_per_transition=30, repeat_keyframes=True).resolved().frames == 60
    assert WalkSettings(classes="0-9", frames_per_transition=4).resolved().frames == 37
    assert WalkSettings(keyframes=5, frames_per_transition=3).resolved().frames == 13
    with pytest.raises(UserError, match="at least 2 keyframes"):
        WalkSettings(seeds="4", frames_per_transition=3).validate()


def test_still_seeds_are_the_walks_keyframes(ckpt, tmp_path):
    """seed0017.png is exactly frame 2 of walk --seeds 3,17,42 --frames-per-transition 2 (keyframe 17)."""
    infos = render_stills(ckpt, tmp_path / "stills", "3,17", StillSettings(size=S), grid="2x1")
    assert [i["output"] for i in infos] == [str(tmp_path / "stills" / n) for n in
                                           ("seed0003.png", "seed0017.png", "grid.png")]
    assert sorted(p.name for p in (tmp_path / "stills").iterdir()) == [
        "grid.png", "grid.png.json", "seed0003.png", "seed0003.png.json", "seed0017.png", "seed0017.png.json"]
    still17 = iio.imread(tmp_path / "stills" / "seed0017.png")
    render_walk(ckpt, tmp_path / "w.mp4", WalkSettings(seeds="3,17,42", frames_per_transition=2, size=S,
                                                        lossless=True))
    video = read_video(tmp_path / "w.mp4")
    assert video.shape == (5, S, S)
    assert np.array_equal(video[2], still17) and np.array_equal(video[0], iio.imread(tmp_path / "stills" / "seed0003.png"))
    render_still(ckpt, tmp_path / "one.png", StillSettings(size=S, seed=17))
    assert np.array_equal(iio.imread(tmp_path / "one.png"), still17)  # still --seed 17 is the same image
    sheet = iio.imread(tmp_path / "stills" / "grid.png")
    assert sheet.shape == (S, 2 * S) and np.array_equal(sheet[:, S:], still17)
    side = json.loads((tmp_path / "stills" / "seed0017.png.json").read_text())
    assert side["latent_source"] == {"kind": "random", "seed": 17} and side["settings"]["seed"] == 17


def test_walk_grid_cells_are_the_single_walks(ckpt, tmp_path):
    s = WalkSettings(seeds="0-7", frames_per_transition=2, size=S, lossless=True, batch=2)
    info = render_walk_grid(ckpt, tmp_path / "g.mp4", s, "2x2")
    video = read_video(tmp_path / "g.mp4")
    assert video.shape == (3, 2 * S, 2 * S) and info["frames"] == 3  # 2 keyframes per cell, 1 transition
    for i, seeds in enumerate(["0,1", "2,3", "4,5", "6,7"]):
        render_walk(ckpt, tmp_path / f"c{i}.mp4", WalkSettings(seeds=seeds, frames_per_transition=2, size=S,
                                                                lossless=True))
        r, c = divmod(i, 2)
        assert np.array_equal(video[:, r * S:(r + 1) * S, c * S:(c + 1) * S], read_video(tmp_path / f"c{i}.mp4"))
    with pytest.raises(UserError, match="needs a multiple of 4 seeds, at least 8"):
        render_walk_grid(ckpt, tmp_path / "bad.mp4", WalkSettings(seeds="0-5", size=S), "2x2")


def test_cli_seeds_and_grid(ckpt, tmp_path):
    r = CliRunner()
    res = r.invoke(cli, ["still", "--ckpt", str(ckpt), "--seeds", "0-3", "--size", str(S), "--grid", "2x2",
                         "--outdir", str(tmp_path / "st")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "st" / "grid.png").is_file() and (tmp_path / "st" / "seed0003.png").is_file()
    assert "wrote 4 stills" in res.output
    quiet = r.invoke(cli, ["still", "--ckpt", str(ckpt), "--seeds", "0-1", "--size", str(S), "--quiet",
                           "--outdir", str(tmp_path / "q")])
    assert quiet.exit_code == 0 and quiet.output == "" and (tmp_path / "q" / "seed0001.png").is_file()
    one = r.invoke(cli, ["still", "--ckpt", str(ckpt), "--size", str(S), "--quiet", "-o", str(tmp_path / "one.png")])
    assert one.exit_code == 0 and one.output == "" and (tmp_path / "one.png").is_file()
    res = r.invoke(cli, ["walk", "--ckpt", str(ckpt), "--seeds", "0-3", "--grid", "2x1", "--size", str(S),
                         "--w-frames", "3", "--quiet", "-o", str(tmp_path / "g.mp4")])
    assert res.exit_code == 0, res.output
    assert read_video(tmp_path / "g.mp4").shape == (4, S, 2 * S)
    both = r.invoke(cli, ["walk", "--frames", "4", "--frames-per-transition", "2", "-o", str(tmp_path / "x.mp4")])
    assert both.exit_code == 2 and "give one" in both.output
    assert r.invoke(cli, ["still", "--grid", "2x2"]).exit_code == 2
