"""Checkpoint files: exact round trip, bundled names, class latents, and one-line errors."""
from __future__ import annotations

import hashlib
from dataclasses import asdict

import pytest
import torch

import pipeline.checkpoint as ckpt_mod
from pipeline.checkpoint import (FORMAT_VERSION, list_bundled, load_checkpoint, resolve_checkpoint,
                                 save_render_checkpoint)
from pipeline.train.latents import compute_class_latents
from pipeline.coords import grid
from pipeline.errors import UserError
from pipeline.models import Encoder, EncoderConfig, build_generator, generator_config


class NotData:
    """A class a weights-only load must refuse to rebuild."""


def small_generator(family: str = "resnet", seed: int = 0):
    torch.manual_seed(seed)
    cfg = (generator_config("resnet", n_blocks=3, width=5) if family == "resnet"
           else generator_config("prev", width=16, tanh_layers=2))
    gen = build_generator(cfg)
    with torch.no_grad():  # not the init values, so a load that re-initialises would be caught
        for p in gen.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return gen


META = {"epoch": 6, "seed": 3, "dataset": {"name": "mnist", "files": {"a.gz": "ab" * 32}}, "command": ["x", "--y"]}


def save_one(path, family="resnet"):
    gen = small_generator(family)
    latents = torch.randn(10, gen.cfg.z_dim)
    save_render_checkpoint(path, gen, latents, META)
    return gen, latents


@pytest.mark.parametrize("family", ["resnet", "prev"])
def test_round_trip_is_exact(tmp_path, family):
    path = tmp_path / "e6.pt"
    gen, latents = save_one(path, family)
    ck = load_checkpoint(path)
    assert ck.kind == "render" and ck.family == family and ck.format_version == FORMAT_VERSION
    assert ck.path == path and ck.name == "e6"
    assert ck.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ck.generator_config == gen.cfg
    original, loaded = gen.state_dict(), ck.generator.state_dict()
    assert original.keys() == loaded.keys()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    assert torch.equal(ck.class_latents, latents)
    assert ck.meta == META and ck.epoch == 6
    assert not ck.generator.training and ck.parameter_count() == sum(p.numel() for p in gen.parameters())
    z, coords = torch.randn(2, gen.cfg.z_dim), grid(7, 5)
    with torch.no_grad():
        assert torch.equal(ck.generator(z, coords), gen(z, coords))


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    save_one(tmp_path / "e1.pt")
    save_one(tmp_path / "e1.pt")  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1.pt"]


def test_bundled_names_resolve(tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    monkeypatch.setattr(ckpt_mod, "ASSETS_DIR", assets)
    assert list_bundled() == []  # a missing directory is simply empty
    assets.mkdir()
    save_one(assets / "e24.pt")
    save_one(assets / "prev.pt", "prev")
    assert list_bundled() == ["e24", "prev"]
    assert resolve_checkpoint("e24") == assets / "e24.pt"
    assert resolve_checkpoint("prev.pt") == assets / "prev.pt"
    assert load_checkpoint("prev").family == "prev"
    # an existing path wins over a bundled name
    local = tmp_path / "e24"
    save_one(local, "prev")
    assert resolve_checkpoint(str(local)) == local
    with pytest.raises(UserError) as err:
        load_checkpoint("e99")
    msg = str(err.value)
    assert "e99" in msg and "e24, prev" in msg and "\n" not in msg


def _expect_error(path, *fragments):
    with pytest.raises(UserError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.pt", "not found")


def test_garbage_and_empty_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 10)
    _expect_error(garbage, "not a torch file")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    _expect_error(empty, "empty")


def test_truncated_checkpoint(tmp_path):
    good = tmp_path / "good.pt"
    save_one(good)
    raw = good.read_bytes()
    for cut in (len(raw) // 3, len(raw) - 50):
        bad = tmp_path / f"cut{cut}.pt"
        bad.write_bytes(raw[:cut])
        _expect_error(bad, "truncated or corrupt")


def test_torch_file_that_is_not_ours(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.randn(3, 3), "step": 5}, other)
    _expect_error(other, "not a cppn-video checkpoint")
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(4), tensor)
    _expect_error(tensor, "not a cppn-video checkpoint")


def test_code_objects_are_refused(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"format_version": FORMAT_VERSION, "x": NotData()}, path)
    _expect_error(path, "not plain data")


def test_wrong_version_incomplete_and_unknown_family(tmp_path):
    good = tmp_path / "good.pt"
    save_one(good)
    data = torch.load(good, weights_only=True)

    newer = tmp_path / "newer.pt"
    torch.save({**data, "format_version": FORMAT_VERSION + 1}, newer)
    _expect_error(newer, f"format {FORMAT_VERSION + 1}", "upgrade")

    incomplete = tmp_path / "incomplete.pt"
    torch.save({k: v for k, v in data.items() if k != "class_latents"}, incomplete)
    _expect_error(incomplete, "missing class_latents")

    unknown = tmp_path / "unknown.pt"
    torch.save({**data, "family": "stylegan", "generator_config": {**data["generator_config"], "family": "stylegan"}},
               unknown)
    _expect_error(unknown, "unknown model family 'stylegan'", "resnet, prev")

    bad_weights = tmp_path / "bad_weights.pt"
    torch.save({**data, "generator": {k: v[..., :1] for k, v in data["generator"].items()}}, bad_weights)
    _expect_error(bad_weights, "do not match its config")


@pytest.mark.parametrize("field, value, fragment", [
    ("n_blocks", 300_000, "n_blocks = 300000 is outside 1..1024"),
    ("width", -3, "width = -3 is outside 1..4096"),
    ("width", 1_000_000, "width = 1000000 is outside"),
    ("z_scale", float("nan"), "z_scale = nan is not finite"),
])
def test_generator_config_is_checked_before_building(tmp_path, field, value, fragment, monkeypatch):
    path = tmp_path / "e6.pt"
    save_one(path)
    data = torch.load(path, weights_only=True)
    data["generator_config"][field] = value
    torch.save(data, path)
    built = []
    monkeypatch.setattr(ckpt_mod, "build_generator", lambda cfg: built.append(cfg))
    _expect_error(path, fragment)
    assert built == []  # refused before any module was built


def test_nan_weights_are_refused_at_load_naming_the_tensor(tmp_path):
    path = tmp_path / "e6.pt"
    save_one(path)
    data = torch.load(path, weights_only=True)
    data["generator"]["blocks.1.tanh.weight"][0, 0] = float("nan")
    torch.save(data, path)
    _expect_error(path, "blocks.1.tanh.weight", "NaN")


def test_digit_bank_round_trip_and_validation(tmp_path):
    gen = small_generator()
    bank = {"latents": torch.randn(20, gen.cfg.z_dim), "labels": torch.arange(10).repeat_interleave(2)}
    path = tmp_path / "e6.pt"
    save_render_checkpoint(path, gen, torch.randn(10, gen.cfg.z_dim), META, bank)
    ck = load_checkpoint(path)
    assert torch.equal(ck.digit_latents, bank["latents"]) and torch.equal(ck.digit_labels, bank["labels"])
    data = torch.load(path, weights_only=True)
    data["digit_bank"]["labels"] = torch.full((20,), 11)
    torch.save(data, path)
    _expect_error(path, "digit_bank labels must be within 0..9")
    with pytest.raises(ValueError, match="float32"):
        save_render_checkpoint(path, gen, torch.randn(10, gen.cfg.z_dim), META,
                               {"latents": torch.randn(3, 2), "labels": torch.zeros(3, dtype=torch.int64)})


def test_class_latents_are_class_means_of_mu(monkeypatch):
    torch.manual_seed(0)
    encoder = Encoder(EncoderConfig(hidden=16, z_dim=4)).train()
    images = torch.randint(0, 256, (23, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 5, 6, 7, 8, 9] * 2 + [0, 1, 2, 3, 5])  # no class 4
    latents, missing = compute_class_latents(encoder, images, labels, batch_size=4)
    assert missing == [4] and latents.shape == (10, 4) and latents.dtype == torch.float32
    assert torch.equal(latents[4], torch.zeros(4))
    assert encoder.training  # restored
    encoder.eval()
    with torch.no_grad():
        mu, _ = encoder(images[:, 1:27, 1:27].float() / 255.0)
    for c in (0, 1, 9):
        torch.testing.assert_close(latents[c], mu[labels == c].mean(0), rtol=1e-5, atol=1e-6)


def test_generator_config_is_plain_values(tmp_path):
    path = tmp_path / "e1.pt"
    gen, _ = save_one(path)
    data = torch.load(path, weights_only=True)
    assert data["generator_config"] == asdict(gen.cfg) and data["kind"] == "render"


# What the package ships: the article's four full-scale models (docs/REPRODUCTION.md), nothing less.
SHIPPED = {"prev": ("prev", 128, 24, 60000), "e6": ("resnet", 6, 6, 70000), "e24": ("resnet", 6, 24, 70000),
           "w4": ("resnet", 4, 24, 70000)}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_checkpoints_are_the_full_scale_runs(name):
    family, width, epoch, n_images = SHIPPED[name]
    assert name in list_bundled()
    ck = load_checkpoint(name)
    assert (ck.family, ck.generator_config.width, ck.meta["epoch"]) == (family, width, epoch)
    assert ck.meta["dataset"]["n_images"] == n_images and ck.meta["limit"] is None
    assert ck.digit_latents.shape == (160, 32) and torch.equal(torch.bincount(ck.digit_labels), torch.full((10,), 16))
    assert not any(str(arg).startswith("/") for arg in ck.meta["command"])  # no machine's folders recorded
