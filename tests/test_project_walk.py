"""Your own digits as keyframes (jobs.projected): walk --images, still --image, compare per panel, presets;
the sidecar keeps each image's SHA-256 and the projected latents, and replay renders them without the images.
Projections here take 2 Adam steps (projection_steps) to keep the suite fast; the method is test_project's."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import run_main
from test_project import typeset

from pipeline.jobs.compare import render_compare
from pipeline.jobs.render import render_still, render_walk
from pipeline.jobs.replay import replay
from pipeline.jobs.settings import CompareSettings, StillSettings, WalkSettings
from pipeline.render import Renderer

STEPS = 2


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """A 5-frame 32 px walk through two typeset digits (PNG frames), and its sidecar."""
    d = tmp_path_factory.mktemp("walk")
    images = [str(typeset(d / "three.png", 3)), str(typeset(d / "seven.png", 7, dark_on_light=False))]
    s = WalkSettings(frames=5, size=32, images=",".join(images), projection_steps=STEPS, fmt="png", scale=8.0,
                     pace="none")
    info = render_walk("e24", d / "walk", s)
    return d, images, info


def _frames(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("*.png"))]


def test_walk_images_keyframes_are_the_projections_and_the_sidecar_records_them(walked):
    d, images, info = walked
    assert info["kind"] == "images"
    assert [e["path"] for e in info["images"]] == images
    assert [e["sha256"] for e in info["images"]] == [hashlib.sha256(Path(p).read_bytes()).hexdigest()
                                                     for p in images]
    assert info["projection"]["steps"] == STEPS
    keys = np.asarray(info["keyframes"], dtype=np.float32)
    assert keys.shape == (2, 32)
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs.projected import project_keyframes

    ck = load_checkpoint("e24")
    projected, _ = project_keyframes(",".join(images), ck, STEPS)
    np.testing.assert_array_equal(keys, projected)
    with Renderer(ck.generator, 32, 32, scale=8.0, path="reference") as r:
        want = r.render(keys)  # [2, 32, 32] uint8: still renders of the projected latents
    frames = sorted((d / "walk").glob("*.png"))
    assert len(frames) == 5
    first, last = (np.asarray(Image.open(frames[i])) for i in (0, -1))
    for got, ref in ((first, want[0]), (last, want[1])):  # within one grey level of the oracle
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert first.std() > 10 and not np.array_equal(first, last)  # a picture, and not the same one


def test_replay_needs_neither_the_images_nor_a_projection(walked, monkeypatch):
    d, images, info = walked
    hidden = d / "hidden"
    hidden.mkdir(exist_ok=True)
    for p in images:  # the images are gone
        Path(p).rename(hidden / Path(p).name)
    import pipeline.project.fit as fit

    monkeypatch.setattr(fit, "project_images", lambda *a, **k: pytest.fail("replay projected again"))
    try:
        again = replay(d / "walk.json", out=d / "again")
    finally:
        for p in images:
            (hidden / Path(p).name).rename(p)
    assert again["images"] == info["images"] and np.array_equal(again["keyframes"], info["keyframes"])
    assert _frames(d / "again") == _frames(d / "walk")


def test_still_image_and_compare_project_into_each_checkpoint(walked):
    d, images, info = walked
    still = render_still("e24", d / "still.png", StillSettings(size=32, image=images[0], projection_steps=STEPS))
    assert still["latent_source"]["sha256"] == info["images"][0]["sha256"]
    np.testing.assert_allclose(still["latent"], info["keyframes"][0], rtol=0, atol=1e-5)  # one image: own batch
    c = render_compare(["e24", "e6"], d / "cmp", CompareSettings(frames=2, panel_size=32, images=",".join(images),
                                                                  projection_steps=STEPS, fmt="png", pace="none"))
    panels = c["checkpoints"]
    assert [p["images"] for p in panels] == [info["images"]] * 2
    assert np.asarray(panels[0]["keyframes"]).shape == np.asarray(panels[1]["keyframes"]).shape == (2, 32)
    assert not np.allclose(panels[0]["keyframes"], panels[1]["keyframes"])  # each into its own checkpoint
    np.testing.assert_array_equal(np.asarray(panels[0]["keyframes"], np.float32), np.asarray(info["keyframes"],
                                                                                              np.float32))


def test_a_bad_image_is_one_line_and_nothing_is_written(tmp_path):
    good = typeset(tmp_path / "ok.png", 3)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    res = run_main(["walk", "--images", f"{good},{bad}", "--frames", "3", "--size", "32", "-o",
                    tmp_path / "out.mp4", "--quiet"])
    assert res.returncode == 1 and "bad.png" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == sorted([good, bad])  # nothing at the target, no temp file
    res = run_main(["walk", "--images", str(good), "--digits", "3,4", "--frames", "3", "-o", tmp_path / "o.mp4"])
    assert res.returncode == 1 and "give only one of" in res.stderr
    res = run_main(["still", "--image", str(good), "-o", good, "--size", "32"])  # the output would replace it
    assert res.returncode == 1 and "is the input" in res.stderr and Path(good).read_bytes()[:4] == b"\x89PNG"


def test_a_preset_reads_its_images_relative_to_itself(tmp_path):
    from pipeline.batch.preset import load_preset

    (tmp_path / "pics").mkdir()
    typeset(tmp_path / "pics" / "a.png", 4)
    preset = tmp_path / "mine.toml"
    preset.write_text('[jobs.mine]\nkind = "walk"\nckpt = "e24"\nimages = "pics/a.png,pics/a.png"\n'
                      'frames = 3\nsize = 32\nprojection_steps = 2\n', encoding="utf-8")
    plan = load_preset(preset)
    job = plan.jobs["mine"]
    assert job.settings.images == ",".join([str(tmp_path / "pics" / "a.png")] * 2)
    (tmp_path / "pics" / "a.png").unlink()
    with pytest.raises(Exception, match="a.png not found"):
        load_preset(preset)


def test_the_cli_projects_once_under_a_progress_bar(tmp_path, monkeypatch):
    import pipeline.project.fit as fit

    calls = []
    real = fit.project_images
    monkeypatch.setattr(fit, "project_images", lambda *a, **k: calls.append(1) or real(*a, **k))
    good = typeset(tmp_path / "five.png", 5)
    res = run_main(["walk", "--images", f"{good},{good}", "--frames", "3", "--size", "32", "--scale", "8",
                    "--pace", "none", "-o", tmp_path / "w.gif"])
    assert res.returncode == 0, res.stderr
    assert "2 pictures into e24" in res.stdout + res.stderr and len(calls) == 1
    info = json.loads((tmp_path / "w.gif.json").read_text())
    assert info["kind"] == "images" and len(info["keyframes"]) == 2
