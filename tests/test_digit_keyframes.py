"""Walks through encodings of real digits (--digits), the lerp path, and stills of real digits."""
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from pipeline.checkpoint import load_checkpoint, save_render_checkpoint
from pipeline.errors import UserError
from pipeline.jobs import CompareSettings, StillSettings, WalkSettings, render_compare, render_still, render_walk
from pipeline.jobs.compare import caption_height
from pipeline.jobs.render import checkpoint_path, path_latents
from pipeline.latents import walk_path
from pipeline.render import Renderer
from video_helpers import read_video
from render_helpers import lively_generator, make_checkpoint

P = 32
# Bank layout of the test checkpoints, grouped by class: three examples of each digit, one of 7, none of 9.
PER_CLASS = {d: 3 for d in range(9)} | {7: 1}


def bank_for(z_dim: int, seed: int) -> dict:
    labels = torch.tensor([d for d in range(10) for _ in range(PER_CLASS.get(d, 0))], dtype=torch.int64)
    latents = torch.randn(len(labels), z_dim, generator=torch.Generator().manual_seed(seed)) * 2
    return {"latents": latents, "labels": labels}


def make_bank_checkpoint(path, family="resnet", width=None, epoch=1, seed=11):
    gen, _ = lively_generator(family, width)
    class_latents = torch.randn(10, gen.cfg.z_dim, generator=torch.Generator().manual_seed(seed + 100))
    return save_render_checkpoint(path, gen, class_latents, {"epoch": epoch},
                                  digit_bank=bank_for(gen.cfg.z_dim, seed))


@pytest.fixture(scope="module")
def banked(tmp_path_factory):
    return make_bank_checkpoint(tmp_path_factory.mktemp("bank") / "e24.pt", epoch=24)


@pytest.fixture(scope="module")
def old(tmp_path_factory):
    """A checkpoint that predates the digit bank (like the bundled ones)."""
    return make_checkpoint(tmp_path_factory.mktemp("old") / "old.pt")


def rows_of(ck, digit):
    return torch.nonzero(ck.digit_labels == digit).flatten().tolist()


# ---------------------------------------------------------------- keyframes from the bank

def test_digit_walk_keyframes_are_the_bank_rows(banked):
    ck = load_checkpoint(banked)
    s = WalkSettings(frames=30 * 8 + 1, digits="8,6,4,2,0,1,3,5,7", interp="lerp", pace="none")
    keys, latents, rows = checkpoint_path(s, ck)
    expected = [rows_of(ck, d)[0] for d in (8, 6, 4, 2, 0, 1, 3, 5, 7)]
    assert rows.tolist() == expected
    assert np.array_equal(keys, ck.digit_latents[expected].numpy())
    for i in range(9):  # 30 frames per transition: digit i is frame 30*i
        assert np.allclose(latents[30 * i], keys[i], rtol=0, atol=1e-6)
    assert np.array_equal(latents, walk_path(keys, s.frames, interp="lerp", ease=s.ease))
    # path_latents with the bank passed by hand is the same path
    k2, l2 = path_latents(s, ck.z_dim, ck.class_latents, (ck.digit_latents, ck.digit_labels))
    assert np.array_equal(k2, keys) and np.array_equal(l2, latents)


def test_repeated_digits_pick_successive_examples_and_wrap(banked):
    ck = load_checkpoint(banked)
    keys, _, rows = checkpoint_path(WalkSettings(frames=10, digits="4,7,4,4,7,4"), ck)
    fours, sevens = rows_of(ck, 4), rows_of(ck, 7)
    assert len(fours) == 3 and len(sevens) == 1
    # 4: 1st, 2nd, 3rd, then wraps to the 1st; 7 has one example, used each time.
    assert rows.tolist() == [fours[0], sevens[0], fours[1], fours[2], sevens[0], fours[0]]
    assert not np.array_equal(keys[0], keys[2]) and np.array_equal(keys[0], keys[5])


def test_no_bank_is_a_one_line_error_naming_the_fix(old, tmp_path):
    with pytest.raises(UserError) as err:
        render_walk(old, tmp_path / "w.mp4", WalkSettings(frames=4, size=P, digits="1,2"))
    msg = str(err.value)
    assert "\n" not in msg and "checkpoint old" in msg and "--classes" in msg and "trained by this version" in msg
    assert list(tmp_path.iterdir()) == []


def test_digit_missing_from_bank(banked, tmp_path):
    with pytest.raises(UserError, match="no encoding of digit 9"):
        render_walk(banked, tmp_path / "w.mp4", WalkSettings(frames=4, size=P, digits="1,9"))


@pytest.mark.parametrize("kwargs", [
    {"digits": "1,2", "classes": "0-9"},
    {"digits": "1,2", "keyframes_file": "k.npy"},
    {"classes": "0-9", "keyframes_file": "k.npy"},
])
def test_path_choices_are_mutually_exclusive(kwargs):
    with pytest.raises(UserError, match="give only one of --digits, --classes, --keyframes-file") as err:
        WalkSettings(**kwargs).validate()
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="give only one"):
        CompareSettings(**kwargs).walk().validate()


def test_settings_validate_digits_and_interp():
    with pytest.raises(UserError, match="digit 12"):
        WalkSettings(digits="3,12").validate()
    with pytest.raises(UserError, match="unknown interpolation"):
        WalkSettings(interp="spline").validate()
    WalkSettings(digits="0-9", interp="lerp", keyframes=0).validate()  # keyframes unused with digits


def test_digit_walk_video_and_sidecar(banked, tmp_path):
    out = tmp_path / "d.mp4"
    s = WalkSettings(frames=2 * 5 + 1, size=P, digits="3,1,3", interp="lerp", lossless=True, loop=False)
    info = render_walk(banked, out, s)
    video = read_video(out)
    ck = load_checkpoint(banked)
    keys, latents, rows = checkpoint_path(s, ck)
    assert np.array_equal(video, Renderer(ck.generator, P, P).render(latents))
    side = json.loads((tmp_path / "d.mp4.json").read_text())
    assert side["kind"] == info["kind"] == "digits"
    assert side["settings"]["digits"] == "3,1,3" and side["settings"]["interp"] == "lerp"
    assert side["keyframe_digits"] == [3, 1, 3] and side["digit_bank_rows"] == rows.tolist()
    assert np.allclose(np.asarray(side["keyframes"]), ck.digit_latents[rows.tolist()].numpy(), atol=0)
    # the sidecar's settings reproduce the video
    render_walk(banked, tmp_path / "again.mp4", WalkSettings(**side["settings"]))
    assert np.array_equal(read_video(tmp_path / "again.mp4"), video)


def test_digit_walk_loops(banked):
    ck = load_checkpoint(banked)
    keys, latents, _ = checkpoint_path(WalkSettings(frames=3 * 4, digits="0,1,2", interp="lerp", loop=True), ck)
    for i in range(3):
        assert np.array_equal(latents[4 * i], keys[i])
    assert not np.array_equal(latents[-1], keys[0])  # no duplicated frame at the seam


# ---------------------------------------------------------------- compare: each checkpoint's own bank

def test_compare_digits_uses_each_checkpoints_own_bank(banked, tmp_path):
    other = make_bank_checkpoint(tmp_path / "e6.pt", epoch=6, seed=12)
    s = CompareSettings(frames=5, panel_size=P, digits="2,5,2", interp="lerp", lossless=True, pace="none")
    out = tmp_path / "cmp.mp4"
    render_compare([other, banked], out, s)
    side = json.loads((tmp_path / "cmp.mp4.json").read_text())
    assert side["path"] == "digits" and "own checkpoint's stored encodings" in side["latents"]
    video = read_video(out)
    for i, (entry, path) in enumerate(zip(side["checkpoints"], [other, banked])):
        ck = load_checkpoint(path)
        expected = [rows_of(ck, 2)[0], rows_of(ck, 5)[0], rows_of(ck, 2)[1]]
        assert entry["digit_bank_rows"] == expected and entry["keyframe_digits"] == [2, 5, 2]
        assert np.array_equal(np.asarray(entry["keyframes"], np.float32), ck.digit_latents[expected].numpy())
        _, lat = path_latents(s.walk(), ck.z_dim, None, (ck.digit_latents, ck.digit_labels))
        panel = video[:, :P, i * P:(i + 1) * P]
        assert np.array_equal(panel, Renderer(ck.generator, P, P).render(lat))
    assert not np.allclose(side["checkpoints"][0]["keyframes"], side["checkpoints"][1]["keyframes"])


def test_compare_digits_with_a_bankless_checkpoint_fails_before_rendering(banked, old, tmp_path):
    calls = []
    with pytest.raises(UserError, match="checkpoint old stores no single-digit encodings") as err:
        render_compare([banked, old], tmp_path / "x.mp4", CompareSettings(frames=3, panel_size=P, digits="1,2"),
                       progress=calls.append)
    assert "\n" not in str(err.value) and calls == [] and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- stills

def test_still_digit_uses_the_bank_and_class_means_the_mean(banked, old, tmp_path):
    ck = load_checkpoint(banked)
    info = render_still(banked, tmp_path / "a.png", StillSettings(size=P, digit=5))
    assert np.array_equal(info["latent"], ck.digit_latents[rows_of(ck, 5)[0]].numpy())
    assert info["latent_source"]["kind"] == "digit encoding"
    img = iio.imread(tmp_path / "a.png")
    assert np.array_equal(img, Renderer(ck.generator, P, P).render(info["latent"][None])[0])

    info = render_still(banked, tmp_path / "b.png", StillSettings(size=P, digit=5, sample=4))  # 3 stored: wraps
    assert np.array_equal(info["latent"], ck.digit_latents[rows_of(ck, 5)[1]].numpy())
    assert info["latent_source"]["digit_bank_row"] == rows_of(ck, 5)[1]

    info = render_still(banked, tmp_path / "c.png", StillSettings(size=P, digit=5, class_means=True))
    assert np.array_equal(info["latent"], ck.class_latents[5].numpy())
    assert info["latent_source"]["kind"] == "class mean"
    side = json.loads((tmp_path / "c.png.json").read_text())
    assert side["settings"]["class_means"] is True and side["settings"]["sample"] == 0

    info = render_still(old, tmp_path / "d.png", StillSettings(size=P, digit=5))  # no bank: the class mean
    assert np.array_equal(info["latent"], load_checkpoint(old).class_latents[5].numpy())
    assert info["latent_source"]["kind"] == "class mean"


def test_still_settings_errors(banked, tmp_path):
    with pytest.raises(UserError, match="--sample must be at least 0"):
        render_still(banked, tmp_path / "x.png", StillSettings(size=P, digit=1, sample=-1))
    with pytest.raises(UserError, match="no encoding of digit 9"):
        render_still(banked, tmp_path / "x.png", StillSettings(size=P, digit=9))


# ---------------------------------------------------------------- CLI

from cli_helpers import run_main as _run_main  # noqa: E402 (the real entry point, in-process)


def test_cli_walk_digits_lerp_frame_count(banked, tmp_path):
    out = tmp_path / "w.mp4"
    digits = "8,6,4,2"
    frames = 3 * (4 - 1) + 1  # 3 frames per transition, 4 keyframes
    proc = _run_main(["walk", "--ckpt", str(banked), "--digits", digits, "--interp", "lerp", "--frames", str(frames),
                      "--size", str(P), "-o", str(out), "--json", "--crf", "0"])
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["kind"] == "digits" and info["settings"]["interp"] == "lerp" and info["frames"] == frames
    assert read_video(out).shape == (frames, P, P)
    ck = load_checkpoint(banked)
    assert info["digit_bank_rows"] == [rows_of(ck, d)[0] for d in (8, 6, 4, 2)]


def test_cli_still_sample_and_class_means(banked, tmp_path):
    proc = _run_main(["still", "--ckpt", str(banked), "--digit", "3", "--sample", "1", "--size", str(P),
                      "-o", str(tmp_path / "s.png"), "--json"])
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["latent_source"] == {"kind": "digit encoding", "digit": 3, "sample": 1,
                                     "digit_bank_row": rows_of(load_checkpoint(banked), 3)[1]}
    proc = _run_main(["still", "--ckpt", str(banked), "--digit", "3", "--class-means", "--size", str(P),
                      "-o", str(tmp_path / "m.png"), "--json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["latent_source"]["kind"] == "class mean"


@pytest.mark.parametrize("args,message", [
    (["--digits", "1,2"], "stores no single-digit encodings"),
    (["--digits", "1,2", "--classes", "0-9"], "give only one of --digits, --classes, --keyframes-file"),
])
def test_cli_walk_digit_errors_one_line(old, tmp_path, args, message):
    proc = _run_main(["walk", "--ckpt", str(old), "--frames", "3", "--size", str(P), "--quiet",
                      "-o", str(tmp_path / "w.mp4"), *args])
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "w.mp4").exists()


def test_cli_interp_and_cubic_alias():
    from click.testing import CliRunner

    from pipeline.cli import cli
    from pipeline.cli.render import interp_choice

    assert interp_choice(None, False) == "slerp" and interp_choice(None, True) == "cubic"
    assert interp_choice("lerp", False) == "lerp" and interp_choice("cubic", True) == "cubic"
    res = CliRunner().invoke(cli, ["walk", "--interp", "lerp", "--cubic", "--frames", "2"])
    assert res.exit_code == 2 and "--cubic and --interp lerp disagree" in res.output
    for command in ("walk", "compare"):
        res = CliRunner().invoke(cli, [command, "--help"])
        assert "--digits" in res.output and "slerp|lerp|cubic" in res.output and "M*(K-1)+1" in res.output


def test_cli_compare_digits(banked, tmp_path):
    other = make_bank_checkpoint(tmp_path / "e6.pt", epoch=6, seed=13)
    out = tmp_path / "c.mp4"
    proc = _run_main(["compare", str(other), str(banked), "--digits", "0,1", "--interp", "lerp", "--frames", "4",
                      "--panel-size", str(P), "-o", str(out), "--json"])
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["path"] == "digits" and read_video(out).shape == (4, P + caption_height(P), 2 * P)
