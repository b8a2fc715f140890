"""Your own digits: pictures read as MNIST digits were made, projected into a checkpoint, written as a
keyframes file; bad files are one line before anything is written. (The quality over many digits is
benchmarks/projection_quality.py's, recorded in docs/REPRODUCTION.md.)"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from cli_helpers import run_main
from pipeline.errors import UserError
from pipeline.latents import load_keyframes
from pipeline.project import read_digit_image
from pipeline.project.images import mnist_normalise

REAL_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def typeset(path, digit: int, size=(300, 200), dark_on_light=True, mode="RGB"):
    """A digit in Pillow's own font (the same on every machine), saved as a scan or a drawing app would."""
    paper, ink = ((245, 240, 230), (25, 25, 35)) if dark_on_light else ((10, 10, 10), (240, 240, 240))
    im = Image.new("RGB", size, paper)
    font = ImageFont.load_default(size=int(size[1] * 0.7))
    ImageDraw.Draw(im).text((size[0] // 3, size[1] // 10), str(digit), fill=ink, font=font)
    im.convert(mode).save(path, format="PNG" if Path(path).suffix == ".npy" else None)
    return path


def test_polarity_size_and_format_do_not_change_what_is_read(tmp_path):
    a = read_digit_image(typeset(tmp_path / "a.png", 4))
    b = read_digit_image(typeset(tmp_path / "b.jpg", 4, dark_on_light=False, mode="L"))
    c = read_digit_image(typeset(tmp_path / "c.png", 4, size=(90, 60)))
    assert a.inverted and not b.inverted and not a.blank
    for r in (a, b, c):
        assert r.image.shape == (26, 26) and r.image.dtype == np.float32
        assert r.image.max() == pytest.approx(1.0) and r.image.min() >= 0.0
    assert np.abs(a.image - b.image).mean() < 0.03  # JPEG and a 3.3x smaller original: close, not equal
    assert np.abs(a.image - c.image).mean() < 0.05
    ys, xs = np.nonzero(a.image > 0.2)
    assert 20 <= np.ptp(ys) + 1 <= 21  # the longer side of the box fits 20 px (+1 for anti-aliasing)
    mass = a.image / a.image.sum()
    cy, cx = (mass.sum(1) @ np.arange(26)), (mass.sum(0) @ np.arange(26))
    assert abs(cy - 13) <= 0.6 and abs(cx - 13) <= 0.6  # centre of mass at the field's (14, 14), minus the crop
    assert a.sha256 != b.sha256 and len(a.sha256) == 64


@pytest.mark.skipif(not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="real MNIST not present")
def test_an_mnist_digit_normalises_to_itself():
    from pipeline.data import load_dataset

    test = load_dataset(data_dir=str(REAL_MNIST), split="test", download=False)
    raw = test.images[:40].numpy() / 255.0
    out = np.stack([mnist_normalise(x)[0] for x in raw])
    assert np.abs(out - raw[:, 1:27, 1:27]).mean() < 0.01  # the same procedure that made them


def test_blank_and_noise_images_give_a_result_and_a_warning_never_a_crash(tmp_path):
    Image.new("L", (64, 64), 255).save(tmp_path / "blank.png")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(tmp_path / "noise.png")
    yy, xx = np.mgrid[0:120, 0:160]
    photo = np.stack([xx / 160 * 255, yy / 120 * 255, 128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], -1)
    Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(tmp_path / "photo.jpg")  # colour, no digit
    typeset(tmp_path / "seven.png", 7)
    names = ["blank.png", "noise.png", "photo.jpg", "seven.png"]
    res = run_main(["project", *(tmp_path / n for n in names), "--ckpt", "e24", "-o", tmp_path / "k.npy", "--json"])
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    blank, noise, photo, seven = info["images"]
    assert blank["blank"] and "blank" in blank["warning"]
    assert not seven["warning"] and seven["read"] == 7 and seven["confidence"] > 0.9
    for row in (noise, photo):  # a result for each, and a warning exactly when the render is not read
        assert not row["blank"] and 0 <= row["read"] <= 9 and row["pixel_rmse"] >= 0
        assert bool(row["warning"]) == (row["confidence"] < 0.5), row
        assert not row["warning"] or "not read as a digit" in row["warning"]
    keys = load_keyframes(tmp_path / "k.npy", z_dim=32)  # what walk --keyframes-file reads
    assert keys.shape == (4, 32) and np.allclose(keys, np.array(info["latents"], dtype=np.float32))
    side = json.loads((tmp_path / "k.npy.json").read_text())
    assert [i["sha256"] for i in side["images"]] == [i["sha256"] for i in info["images"]]
    assert side["checkpoint"]["name"] == "e24"


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", b""])
def test_a_corrupt_or_non_image_file_is_one_line_and_nothing_is_written(tmp_path, content):
    typeset(tmp_path / "ok.png", 3)
    (tmp_path / "bad.png").write_bytes(content)
    res = run_main(["project", tmp_path / "ok.png", tmp_path / "bad.png", "-o", tmp_path / "k.npy", "--quiet"])
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bad.png" in lines[0], res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", "ok.png"]


def test_the_output_is_checked_before_the_images_are_read(tmp_path):
    typeset(tmp_path / "ok.png", 3)
    with pytest.raises(UserError, match="must end in .npy"):
        from pipeline.project.job import project_files

        project_files("e24", [str(tmp_path / "ok.png")], tmp_path / "k.txt")
    typeset(tmp_path / "pic.npy", 3, mode="L")  # a PNG by its bytes (what is read), named as the output
    before = (tmp_path / "pic.npy").read_bytes()
    res = run_main(["project", tmp_path / "pic.npy", "-o", tmp_path / "pic.npy", "--quiet"])
    assert res.returncode == 1 and "is the input" in res.stderr
    assert (tmp_path / "pic.npy").read_bytes() == before
    res = run_main(["project", tmp_path / "missing.png", "--quiet"])
    assert res.returncode == 1 and "not found" in res.stderr
