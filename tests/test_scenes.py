"""Scenes: any canvas, time in seconds with holds, even pacing and colour, the same in walk, still, compare, grid,
presets and replay."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from cli_helpers import run_main
from pipeline.batch import load_preset
from pipeline.batch.preset import PresetError
from pipeline.errors import UserError
from pipeline.jobs import render_compare, render_still, render_walk
from pipeline.jobs.settings import CompareSettings, StillSettings, WalkSettings
from pipeline.scene.palette import palette
from pipeline.scene.timeline import build_timeline, parse_fps, to_frames
from render_helpers import make_checkpoint
from video_helpers import read_video, read_video_rgb


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "A.pt")


def lossless(**kw) -> WalkSettings:
    return WalkSettings(**{"keyframes": 3, "lossless": True, "preset": "ultrafast", **kw})


# ----------------------------------------------------------------------------- time

@pytest.mark.parametrize("value,fps,frames", [("2s", 24, 48), ("1:30", "30000/1001", 2697), ("48", 30, 48),
                                              ("0.5s", 30, 15), ("1:00:00", 24, 86400), ("250ms", 24, 6)])
def test_time_values_are_exact_frame_counts(value, fps, frames):
    assert to_frames(value, fps) == frames


def test_fractional_frame_rates_stay_exact():
    assert parse_fps("30000/1001") == Fraction(30000, 1001)
    assert WalkSettings(duration="10s", fps="30000/1001", keyframes=2).resolved().frames == 300  # 299.7 -> 300
    with pytest.raises(UserError, match="fps must be"):
        parse_fps("0")


def test_length_in_seconds_and_conflicts_are_one_line_errors(ck, tmp_path):
    info = render_walk(ck, tmp_path / "a", lossless(size=32, duration="2s", fps=24))
    assert info["frames"] == 48 and len(list((tmp_path / "a").glob("frame_*.png"))) == 48
    assert info["scene"]["seconds"] == 2.0 and info["scene"]["fps"] == "24"
    res = run_main(["walk", "--ckpt", ck, "--frames", "10", "--duration", "2s", "-o", tmp_path / "b.mp4"])
    assert res.returncode == 1 and "both set the video's length" in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "b.mp4").exists()


def test_holds_are_identical_frames_of_the_keyframe(ck, tmp_path):
    s = lossless(size=32, frames=60, hold="0.4s", fps=30, ease="linear")  # 12 frames on each of 3 keyframes
    info = render_walk(ck, tmp_path / "w.mp4", s)
    frames = read_video(tmp_path / "w.mp4")
    assert frames.shape[0] == 60
    timeline = info["scene"]["timeline"]
    assert timeline["hold"] == [12, 12, 12] and timeline["arrive"][0] == 0
    for arrive, hold in zip(timeline["arrive"], timeline["hold"]):
        held = frames[arrive:arrive + hold]
        assert len(held) == 12 and all(np.array_equal(f, held[0]) for f in held)
    # outside holds the picture moves
    a = timeline["arrive"][0] + 12
    assert not np.array_equal(frames[a], frames[a + 1])


def test_keyframe_times_place_each_keyframe_on_its_frame(ck, tmp_path):
    s = lossless(size=32, seeds="3,17,42", times="0,1s,3s", fps=10, interp="lerp")
    info = render_walk(ck, tmp_path / "w", s)
    assert info["frames"] == 31 and info["scene"]["timeline"]["arrive"] == [0, 10, 30]
    from pipeline.jobs.render import render_stills

    frames = read_video(tmp_path / "w")
    stills = render_stills(ck, tmp_path / "s", "3,17,42", StillSettings(size=32))
    for arrive, still in zip([0, 10, 30], stills):
        import imageio.v3 as iio

        assert np.array_equal(frames[arrive], iio.imread(still["output"]))
    with pytest.raises(UserError, match="comes before keyframe"):
        build_timeline(3, None, 10, times="0,2s,1s")
    with pytest.raises(UserError, match="has 2 values for 3 keyframes"):
        build_timeline(3, None, 10, times="0,2s")


# ----------------------------------------------------------------------------- canvas

def test_a_wide_frame_is_the_square_frame_with_more_plane_beside_it(ck, tmp_path):
    import imageio.v3 as iio

    square = render_still(ck, tmp_path / "sq.png", StillSettings(size=54, seed=5))
    wide = render_still(ck, tmp_path / "wide.png", StillSettings(size="96x54", seed=5))
    tall = render_still(ck, tmp_path / "tall.png", StillSettings(size="54x80", seed=5))
    sq, wi, ta = (iio.imread(i["output"]).astype(int) for i in (square, wide, tall))
    assert wi.shape == (54, 96) and ta.shape == (80, 54) and wide["width"] == 96 and wide["height"] == 54
    assert np.abs(wi[:, 21:75] - sq).max() <= 1
    assert np.abs(ta[13:67, :] - sq).max() <= 1


def test_mp4_needs_even_sides_said_in_one_line(ck, tmp_path):
    res = run_main(["walk", "--ckpt", ck, "--size", "1919x1080", "--frames", "4", "-o", tmp_path / "w.mp4"])
    assert res.returncode == 1 and "must be even" in res.stderr and "1920x1080" in res.stderr


# ----------------------------------------------------------------------------- colour

def test_palettes_come_from_the_colour_map_library_and_gradients_are_exact():
    viridis = palette("viridis")
    assert viridis.lut.shape == (256, 3) and tuple(viridis.lut[0]) == (68, 1, 84) and tuple(viridis.lut[-1]) == (253, 231, 37)
    own = palette(colors="#000000,#ff8000")
    assert tuple(own.lut[0]) == (0, 0, 0) and tuple(own.lut[255]) == (255, 128, 0) and tuple(own.lut[128]) == (128, 64, 0)
    with pytest.raises(UserError, match="unknown --palette 'nope'"):
        palette("nope")
    with pytest.raises(UserError, match="not a colour"):
        palette(colors="#12,#fff")


@pytest.mark.parametrize("suffix", ["w.mp4", "w.gif", "frames"])
def test_colour_on_every_video_format(ck, tmp_path, suffix):
    grey = render_walk(ck, tmp_path / "g", lossless(size=32, frames=6))
    grey_frames = read_video(tmp_path / "g")
    out = tmp_path / suffix
    s = WalkSettings(size=32, frames=6, keyframes=3, palette="magma", preset="ultrafast", crf=0 if suffix == "w.mp4" else 18)
    render_walk(ck, out, s)
    lut = palette("magma").lut
    want = lut[grey_frames].astype(int)
    if suffix == "frames":
        import imageio.v3 as iio

        got = np.stack([iio.imread(p) for p in sorted(out.glob("frame_*.png"))]).astype(int)
        assert np.array_equal(got, want)  # RGB PNG frames, exactly the palette's colours
    elif suffix == "w.gif":
        got = read_video_rgb(out, 32, 32).astype(int)
        assert got.shape == want.shape and np.array_equal(got, want)  # the palette is the GIF's own: exact
    else:
        got = read_video_rgb(out, 32, 32).astype(int)
        assert got.shape == want.shape
        # yuv420p halves the chroma: colours match closely on average, and the picture is in colour
        assert np.abs(got - want).mean() < 6
        assert np.abs(got[..., 0] - got[..., 2]).mean() > 10
    assert grey["frames"] == 6


def test_a_coloured_still_is_rgb_and_invert_still_works(ck, tmp_path):
    import imageio.v3 as iio

    g = iio.imread(render_still(ck, tmp_path / "g.png", StillSettings(size=32, invert=True))["output"])
    c = iio.imread(render_still(ck, tmp_path / "c.png", StillSettings(size=32, invert=True,
                                                                       colors="#0b1d3a,#f5e6c8"))["output"])
    assert c.shape == (32, 32, 3) and np.array_equal(c, palette(colors="#0b1d3a,#f5e6c8").lut[g])


def test_compare_takes_a_panel_shape_and_colour(ck, tmp_path):
    info = render_compare([ck, ck], tmp_path / "c.mp4", CompareSettings(
        panel_size="48x64", frames=4, keyframes=2, palette="viridis", preset="ultrafast"))
    assert (info["width"], info["height"]) == (96, 64 + info["layout"]["caption_height"])
    frames = read_video_rgb(tmp_path / "c.mp4", info["width"], info["height"])
    assert frames.shape[0] == 4


# ----------------------------------------------------------------------------- presets and replay

def test_presets_take_canvas_time_colour_and_keyframe_lists(ck, tmp_path):
    (tmp_path / "A.pt").write_bytes(open(ck, "rb").read())
    preset = tmp_path / "p.toml"
    preset.write_text('[jobs.w]\nkind = "walk"\nckpt = "A.pt"\nsize = "64x32"\nfps = "24"\npalette = "magma"\n'
                      'lossless = true\npreset = "ultrafast"\n'
                      'keyframe = [{ seed = 3, at = "0s", hold = "0.5s" }, { seed = 17, at = "2s" }]\n')
    job = load_preset(preset).jobs["w"]
    s = job.settings
    assert (s.seeds, s.times, s.hold, s.canvas(), s.palette) == ("3,17", "0s,2s", "0.5s,0", (64, 32), "magma")
    assert s.resolved().frames == 49
    preset.write_text('[jobs.w]\nkind = "walk"\nckpt = "A.pt"\nseeds = "1,2"\n'
                      'keyframe = [{ seed = 3 }, { digit = 4 }]\n')
    with pytest.raises(PresetError, match="keyframe sets seeds itself"):
        load_preset(preset)
    preset.write_text('[jobs.w]\nkind = "walk"\nckpt = "A.pt"\nframes = 10\nduration = "2s"\n')
    with pytest.raises(PresetError, match="both set the video's length"):
        load_preset(preset)


def test_replay_reproduces_a_scene_and_old_sidecars_still_replay(ck, tmp_path):
    from pipeline.jobs.replay import replay

    s = lossless(size="48x32", frames=20, hold="3", palette="inferno", fps="30000/1001", pace="uniform")
    info = render_walk(ck, tmp_path / "w", s)
    again = replay(tmp_path / "w.json", tmp_path / "r")
    assert again["scene"] == info["scene"]
    a, b = (sorted(p.read_bytes() for p in d.glob("frame_*.png")) for d in (tmp_path / "w", tmp_path / "r"))
    assert a == b
    # a sidecar written before scenes existed: no scene entry, a square int size, none of the new settings
    old = render_walk(ck, tmp_path / "o", lossless(size=32, frames=8, pace="none"))  # as before pacing
    side = json.loads((tmp_path / "o.json").read_text())
    del side["scene"]
    for key in ("duration", "times", "hold", "pace", "palette", "colors"):
        del side["settings"][key]
    side["settings"]["fps"] = 30.0
    (tmp_path / "old.json").write_text(json.dumps(side))
    replay(tmp_path / "old.json", tmp_path / "o2")
    assert read_video(tmp_path / "o2").tobytes() == read_video(tmp_path / "o").tobytes()
    assert old["frames"] == 8


def test_even_pacing_on_a_real_checkpoint_evens_the_steps():
    """e24 through real digits, lerp, linear, 30 frames per transition: with pacing the largest step within a
    transition is close to the mean (benchmarks/pacing.py measures the article's 9-digit video: 3.6 -> 1.07)."""
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs.render import checkpoint_path
    from pipeline.render import Renderer
    from pipeline.scene.pacing import step_evenness

    ck = load_checkpoint("e24")
    worst = {}
    for pace in ("none", "uniform"):
        s = WalkSettings(size=64, digits="8,6,4", interp="lerp", ease="linear", frames_per_transition=30,
                         pace=pace).resolved()
        keys, latents, _ = checkpoint_path(s, ck)
        with Renderer(ck.generator, 64, 64) as r:
            frames = r.render(latents).astype(np.float64)
        worst[pace] = max(step_evenness(frames, [(0, 30), (30, 60)]))
    assert worst["uniform"] < 1.3 and worst["uniform"] < worst["none"] / 1.5, worst
