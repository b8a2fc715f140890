"""The camera (zoom, pan, rotate schedules): parsing and validation, every render path against the oracle on a
moving camera, what a turned or zoomed frame must equal, deep zoom against a float64 oracle, and the jobs."""
import copy
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from pipeline.coords import axes, camera_affine
from pipeline.errors import UserError
from pipeline.jobs import StillSettings, WalkSettings, render_still, render_walk
from pipeline.jobs.render import walk_camera
from pipeline.render import Renderer, available_paths, reference_frames, to_uint8
from pipeline.scene.camera import CameraTrack, camera_track, parse_schedule
from render_helpers import lively_generator, make_checkpoint

FAST = [p for p in available_paths("resnet", torch.device("cpu")) if p != "reference"]


def track(zoom, pan, rotate):
    return CameraTrack(np.asarray(zoom, np.float64), np.asarray(pan, np.float64).reshape(-1, 2),
                       np.asarray(rotate, np.float64))


# ----------------------------------------------------------------------------- schedules


def test_constant_ramp_and_keyframes():
    assert np.array_equal(parse_schedule("zoom", "2", 30).at(3)[:, 0], [2, 2, 2])
    ramp = parse_schedule("zoom", "1:64", 30).at(7)[:, 0]  # geometric: constant zoom speed
    assert np.allclose(ramp, [1, 2, 4, 8, 16, 32, 64], rtol=1e-12) and ramp[0] == 1 and ramp[-1] == 64
    keys = parse_schedule("zoom", "0s=1, 4s=16, 6s=2", 1).at(9)[:, 0]  # 1 fps: keyframes at frames 0, 4, 6
    assert np.allclose(keys, [1, 2, 4, 8, 16, np.sqrt(32), 2, 2, 2], rtol=1e-12)
    assert keys[4] == 16 and keys[6] == 2  # keyframes hit exactly, the last held to the end
    late = parse_schedule("rotate", "2=10, 4=30", 1).at(6)[:, 0]  # held before the first keyframe too
    assert np.allclose(late, [10, 10, 10, 20, 30, 30])
    eased = parse_schedule("rotate", "0=0 smoothstep, 4=90", 1).at(5)[:, 0]
    assert np.allclose(eased, 90 * np.array([0, 0.15625, 0.5, 0.84375, 1]))
    pan = parse_schedule("pan", "0s=(0,0), 2s=(1.5,-2)", 1).at(3)
    assert np.allclose(pan, [[0, 0], [0.75, -1], [1.5, -2]])
    assert np.allclose(parse_schedule("pan", "-1,1:1,-1", 1).at(3), [[-1, 1], [0, 0], [1, -1]])


@pytest.mark.parametrize("key,spec,message", [
    ("zoom", "0s=1, 4x=16", "--zoom keyframe time"),                    # unknown unit
    ("zoom", "0s=1, 4s=16, 2s=2", "keyframe times must increase"),     # out of order
    ("zoom", "0", "zoom must be above 0"),
    ("zoom", "1:-2", "zoom must be above 0"),
    ("rotate", "nan", "'nan' is not a number"),
    ("pan", "0=(0,nan)", "'nan' is not a number"),
    ("pan", "1", "a pan is a point x,y"),
    ("zoom", "1:4 wobble", "unknown easing 'wobble'"),
])
def test_bad_schedules_name_the_key(key, spec, message):
    with pytest.raises(UserError) as e:
        parse_schedule(key, spec, 30)
    assert message in str(e.value) and e.value.key == key and "\n" not in str(e.value)


def test_the_plain_framing_is_no_camera():
    assert camera_track(WalkSettings(zoom="1", rotate="0:360"), 1) is None  # frame 0 of 1: not moved
    assert camera_track(WalkSettings(zoom=1, pan="0,0", rotate=0), 5) is None
    moving = walk_camera(WalkSettings(frames=11, zoom="1:1024"), 4, 6)  # a segment's frames, of the whole video
    assert np.allclose(moving.zoom, [16, 32])


# ----------------------------------------------------------------------------- the render paths


@pytest.fixture(scope="module")
def gen_z():
    gen, z = lively_generator("resnet", 6)
    return gen, z


MOVING = track([1.0, 3.0, 0.6], [[0, 0], [1.5, -2.0], [0.3, 0.1]], [0.0, 37.0, 90.0])


@pytest.mark.parametrize("path", FAST)
def test_moving_camera_matches_the_oracle(gen_z, path):
    gen, z = gen_z
    H, W = 13, 21  # odd, not square
    ref = Renderer(gen, H, W, path="reference")
    want = ref.render_float(z, camera=MOVING)
    r = Renderer(gen, H, W, path=path)
    assert float((r.render_float(z, camera=MOVING) - want).abs().max()) < 1e-4
    for invert in (False, True):
        got = r.render(z, invert=invert, camera=MOVING).astype(int)
        assert np.abs(got - to_uint8(want, invert).numpy().astype(int)).max() <= 1
    assert want.std() > 0.1 and not np.allclose(want[0], want[1], atol=0.05)  # frames differ: the camera moved
    one_at_a_time = np.concatenate([r.render(z[i:i + 1], camera=MOVING[i]) for i in range(3)])
    assert np.array_equal(one_at_a_time, r.render(z, camera=MOVING))  # batch-invariant bytes


def test_reference_maps_the_grid(gen_z):
    """The oracle's moving grid is the plain grid at --scale / zoom, shifted by the pan."""
    gen, z = gen_z
    aff = camera_affine(9, 9, 8.0, [4.0], [[1.0, -0.5]], [0.0])
    moved = reference_frames(gen, z[:1], 9, 9, 8.0, affine=aff)
    x, y = axes(9, 9, 2.0)
    yy, xx = torch.meshgrid(y - 0.5, x + 1.0, indexing="ij")
    coords = torch.stack([xx, yy, torch.sqrt(xx * xx + yy * yy)], -1).reshape(-1, 3).float()
    assert torch.allclose(moved.reshape(1, -1), gen(z[:1], coords), atol=1e-6)


@pytest.mark.parametrize("path", ["reference"] + FAST)
def test_rotate_90_is_the_still_turned(gen_z, path):
    gen, z = gen_z
    r = Renderer(gen, 15, 15, path=path)
    still = r.render(z[2:], invert=True)[0].astype(int)
    turned = r.render(z[2:], invert=True, camera=track([1.0], [0, 0], [90.0]))[0].astype(int)
    assert np.abs(turned - np.rot90(still)).max() <= 1  # counterclockwise
    assert np.abs(turned - still).max() > 50


def test_deep_zoom_stays_sharp(gen_z):
    """10^4 into the edge of a stroke: every path within 1e-3 of the picture's range of a float64 oracle (float32
    network, float64 coordinates), a smooth ramp of distinct values, within one grey level in uint8."""
    gen, z = gen_z
    z1 = z[2:]
    f = Renderer(gen, 48, 48, path="cpu-fused" if "cpu-fused" in FAST else "torch").render_float(z1)[0].numpy()
    gy, gx = np.gradient(f)
    i, j = np.unravel_index(np.argmax(np.hypot(gx, gy)[2:-2, 2:-2]), (44, 44))
    x, y = axes(48, 48, 8.0)
    cam = track([1e4], [float(x[j + 2]), float(y[i + 2])], [0.0])
    H = W = 24
    aff = camera_affine(H, W, 8.0, cam.zoom, cam.pan, cam.rotate)
    want = reference_frames(copy.deepcopy(gen).double(), z1.double(), H, W, 8.0, affine=aff)[0]
    spread = float(want.max() - want.min())
    assert spread > 2e-3  # the stroke's edge still changes across the frame
    for path in ["reference"] + FAST:
        got = Renderer(gen, H, W, path=path).render_float(z1, camera=cam)[0].double()
        assert float((got - want).abs().max()) < 1e-3 * spread, path
        assert len(np.unique(got.numpy())) > 0.9 * H * W, path  # no float32 staircase
        u8 = Renderer(gen, H, W, path=path).render(z1, camera=cam)[0].astype(int)
        assert np.abs(u8 - to_uint8(want.float()).numpy().astype(int)).max() <= 1


# ----------------------------------------------------------------------------- jobs


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "e1.pt")


def test_zoom_walk_frames_are_stills_at_matching_scales(ckpt, tmp_path):
    frames = tmp_path / "frames"
    info = render_walk(ckpt, frames, WalkSettings(frames=3, size=32, keyframes=1, zoom="1:4", pan="0.5,-0.25",
                                                  fmt="png", path="cpu-fused" if "cpu-fused" in FAST else "torch"))
    assert info["settings"]["zoom"] == "1:4" and info["settings"]["pan"] == "0.5,-0.25"  # replay renders it again
    side = json.loads((frames / "index.json").read_text()) if (frames / "index.json").exists() else None
    assert side is None or side["settings"]["zoom"] == "1:4"
    walk = [iio.imread(p) for p in sorted(frames.glob("frame_*.png"))]
    assert len(walk) == 3
    for k, zoom in enumerate([1.0, 2.0, 4.0]):
        out = tmp_path / f"still{k}.png"
        render_still(ckpt, out, StillSettings(size=32, seed=0, scale=8.0 / zoom, pan="0.5,-0.25", path="reference"))
        assert np.abs(walk[k].astype(int) - iio.imread(out).astype(int)).max() <= 1, zoom


def test_cli_camera_errors_before_rendering(ckpt, tmp_path):
    from cli_helpers import run_main

    out = tmp_path / "w.mp4"
    proc = run_main(["walk", "--ckpt", ckpt, "--size", "32", "--frames", "4", "--zoom", "0s=1, 4s=16, 2s=2",
                     "-o", out])
    assert proc.returncode != 0 and "--zoom" in proc.stderr and "keyframe times must increase" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
    proc = run_main(["still", "--ckpt", ckpt, "--size", "16", "--rotate", "90", "--zoom", "2",
                     "-o", tmp_path / "s.png", "--json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["settings"]["rotate"] == "90"


def test_an_auto_kernel_whose_moving_camera_is_wrong_falls_back(gen_z):
    """probe_camera checks the moving-camera variant as probe() checks the static one; auto-selected Triton runs it
    on the first moving frame and falls back to the torch path (here a torch path stands in for it)."""
    gen, z = gen_z
    r = Renderer(gen, 9, 9, path="torch")
    assert r.probe_camera() is None
    right = r._impl.moving
    r._impl.moving = lambda aff, *a: right(aff * 1.01, *a)
    assert "moving-camera values differ" in r.probe_camera()
    r.path, r._camera_check = "triton", (None,)
    with pytest.warns(RuntimeWarning, match="moving camera failed its check"):
        got = r.render(z[:1], camera=MOVING[1])
    assert r.path == "torch" and np.array_equal(got, Renderer(gen, 9, 9, path="torch").render(z[:1], camera=MOVING[1]))


def test_a_preset_takes_the_camera_and_names_a_bad_schedule(tmp_path):
    from pipeline.batch import load_preset
    from pipeline.batch.preset import PresetError

    preset = tmp_path / "p.toml"
    preset.write_text('[jobs.z]\nkind = "walk"\nckpt = "e24"\nframes = 4\nsize = 32\nzoom = 4\npan = "1,2"\n')
    assert {(j.settings.zoom, j.settings.pan) for j in load_preset(preset).jobs.values()} == {(4.0, "1,2")}
    preset.write_text('[jobs.z]\nkind = "walk"\nckpt = "e24"\nframes = 4\nsize = 32\nzoom = "0s=1, 2x=3"\n')
    with pytest.raises(PresetError, match="job z, key zoom: --zoom keyframe time"):
        load_preset(preset)


def test_segments_and_replay_render_the_same_camera(ckpt, tmp_path):
    """A segment (the --workers and farm unit) takes the camera of its own frames of the whole video, and a sidecar
    replays the camera: both decode to the walk's frames."""
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs.replay import replay
    from pipeline.jobs.segments import render_segment
    from video_helpers import read_video

    s = WalkSettings(frames=6, size=16, keyframes=2, lossless=True, pace="none", zoom="1:32", rotate="0:45")
    render_walk(ckpt, tmp_path / "w.mp4", s)
    whole = read_video(tmp_path / "w.mp4")
    replay(tmp_path / "w.mp4.json", tmp_path / "again.mp4")
    assert np.array_equal(read_video(tmp_path / "again.mp4"), whole)
    ck = load_checkpoint(ckpt)
    from pipeline.jobs.render import checkpoint_path

    _, latents, _ = checkpoint_path(s.resolved(), ck)
    render_segment(ck, latents[3:6], s.resolved(), "cpu", 1, tmp_path / "seg.mp4", start=3)
    assert np.array_equal(read_video(tmp_path / "seg.mp4"), whole[3:6])
    assert not np.array_equal(whole[3], whole[4])
