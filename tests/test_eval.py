"""`cppn-video eval` and pipeline.evaluate: the bundled digit CNN, its validation, the measurements, the CLI."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pipeline.checkpoint import atomic_torch_save, load_checkpoint, save_render_checkpoint
from pipeline.cli import cli
from pipeline.errors import UserError
from pipeline.digit_classifier import accuracy, classify, cnn_payload
from pipeline.evaluate.metrics import (ASSET_PATH, EvalRow, detail_fraction, evaluate_checkpoint, load_digit_cnn,
                                       random_latents)
from pipeline.models.digit_cnn import DigitCNN, DigitCNNConfig, expected_shapes
from pipeline.models import build_generator, generator_config

REAL_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


class NotData:
    """A class a weights-only load must refuse to rebuild."""


@pytest.fixture(scope="module")
def cnn():
    return load_digit_cnn()


def small_generator(family: str = "resnet", seed: int = 0):
    torch.manual_seed(seed)
    cfg = (generator_config("resnet", n_blocks=3, width=5) if family == "resnet"
           else generator_config("prev", width=16, tanh_layers=2))
    gen = build_generator(cfg)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return gen


def save_tiny(path, family="resnet", bank=False, seed=0):
    gen = small_generator(family, seed)
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(10, gen.cfg.z_dim, generator=g)
    digit_bank = None
    if bank:
        digit_bank = {"latents": torch.randn(7, gen.cfg.z_dim, generator=g),
                      "labels": torch.tensor([0, 1, 2, 3, 4, 5, 9])}
    save_render_checkpoint(path, gen, latents, {"epoch": 3, "seed": seed}, digit_bank)
    return path


# ----------------------------------------------------------------------------- the classifier asset

def test_model_shapes_match_config():
    for cfg in (DigitCNNConfig(), DigitCNNConfig(image_size=28, channels=(8, 16), kernel=3, hidden=32)):
        model = DigitCNN(cfg)
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected_shapes(cfg)
        assert model(torch.rand(3, cfg.image_size, cfg.image_size)).shape == (3, 10)
    with pytest.raises(ValueError):
        DigitCNNConfig(image_size=8)


def test_asset_is_plain_data_small_and_accurate(cnn):
    data = torch.load(ASSET_PATH, map_location="cpu", weights_only=True)
    assert data["format"] == 1 and set(data) >= {"config", "state_dict", "test_accuracy", "train_command",
                                                  "data_sha256"}
    assert data["test_accuracy"] >= 0.99 and cnn.test_accuracy == data["test_accuracy"]
    assert "scripts/train_digit_cnn.py" in data["train_command"]
    assert cnn.model.parameter_count() * 4 < 1_000_000 and ASSET_PATH.stat().st_size < 1_000_000
    assert not cnn.model.training and not any(p.requires_grad for p in cnn.model.parameters())


def test_asset_accuracy_on_real_test_digits(cnn):
    if not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST files not present at {REAL_MNIST} (only on the project's machines)")
    from pipeline.data import center_crops, load_dataset

    test = load_dataset(data_dir=REAL_MNIST, split="test", limit=2000, download=False)
    assert accuracy(cnn.model, center_crops(test.images), test.labels) >= 0.98
    # the recorded data hashes are the files it was trained and tested on
    assert cnn.data_sha256["t10k-images-idx3-ubyte.gz"] == test.files["t10k-images-idx3-ubyte.gz"]


def _good_payload():
    torch.manual_seed(0)
    return cnn_payload(DigitCNN(), 0.5, "python scripts/train_digit_cnn.py", {"a.gz": "00"})


def _save(path, obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    path.write_bytes(buf.getvalue())
    return path


def _bad_assets(tmp_path):
    good = _good_payload()
    wrong_shape = {**good, "state_dict": {**good["state_dict"], "fc1.weight": torch.zeros(128, 100)}}
    wrong_keys = {**good, "config": {**good["config"], "extra": 1}}
    bad_cfg = {**good, "config": {**good["config"], "kernel": 0}}
    missing = {k: v for k, v in good.items() if k != "state_dict"}
    bad_acc = {**good, "test_accuracy": 3.0}
    missing_tensor = {**good, "state_dict": {k: v for k, v in good["state_dict"].items() if k != "fc2.bias"}}
    whole = io.BytesIO()
    torch.save(good, whole)
    return {
        "empty": _write(tmp_path / "empty.pt", b""),
        "text": _write(tmp_path / "text.pt", b"hello, not a model\n"),
        "truncated": _write(tmp_path / "trunc.pt", whole.getvalue()[:200]),
        "python-object": _save(tmp_path / "obj.pt", {**good, "config": NotData()}),
        "wrong-shape": _save(tmp_path / "shape.pt", wrong_shape),
        "wrong-config-keys": _save(tmp_path / "keys.pt", wrong_keys),
        "bad-config": _save(tmp_path / "cfg.pt", bad_cfg),
        "missing-key": _save(tmp_path / "missing.pt", missing),
        "missing-tensor": _save(tmp_path / "tensor.pt", missing_tensor),
        "bad-accuracy": _save(tmp_path / "acc.pt", bad_acc),
        "not-a-dict": _save(tmp_path / "list.pt", [1, 2]),
        "absent": tmp_path / "nope.pt",
    }


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_bad_assets_give_one_line_errors(tmp_path):
    for what, path in _bad_assets(tmp_path).items():
        with pytest.raises(UserError) as info:
            load_digit_cnn(path)
        msg = str(info.value)
        assert "\n" not in msg and str(path) in msg, (what, msg)
    msg = str(pytest.raises(UserError, load_digit_cnn, tmp_path / "obj.pt").value)
    assert "Python objects" in msg
    msg = str(pytest.raises(UserError, load_digit_cnn, tmp_path / "shape.pt").value)
    assert "fc1.weight" in msg


def test_good_payload_round_trips(tmp_path):
    path = atomic_torch_save(_good_payload(), tmp_path / "cnn.pt")
    loaded = load_digit_cnn(path)
    assert loaded.config == DigitCNNConfig() and loaded.test_accuracy == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.pt"]  # atomic: no temp files left


# ----------------------------------------------------------------------------- the measurements

def test_detail_is_higher_for_noise_than_for_a_smooth_blob():
    n = 128
    y, x = np.mgrid[0:n, 0:n] / (n - 1) * 2 - 1
    blob = np.exp(-(x * x + y * y) / 0.2)
    noise = np.random.default_rng(0).random((n, n))
    d_blob, d_noise = detail_fraction(blob), detail_fraction(noise)
    assert 0.0 <= d_blob < 0.05 and 0.9 < d_noise <= 1.0
    assert detail_fraction(np.full((n, n), 0.3)) == 0.0  # no power
    # a pure sinusoid is all above or all below the cutoff (1/8 Nyquist = 1/16 cycles per pixel)
    assert detail_fraction(np.sin(2 * np.pi * x * n / 2 / 4)) > 0.99   # period 4 px
    assert detail_fraction(np.sin(2 * np.pi * x * n / 2 / 64)) < 0.01  # period 64 px
    with pytest.raises(ValueError):
        detail_fraction(np.zeros(5))


def test_random_latents_are_seeded():
    assert torch.equal(random_latents(5, 32, 0), random_latents(5, 32, 0))
    assert not torch.equal(random_latents(5, 32, 0), random_latents(5, 32, 1))


def _check_row(row: EvalRow, samples: int):
    d = row.to_dict()
    json.dumps(d)  # plain values only
    assert 0 <= d["class_digits"] <= 10 and len(d["class_predictions"]) == 10
    assert all(0 <= c <= 9 for c in d["class_predictions"])
    assert d["bank_digits"] is None or 0.0 <= d["bank_digits"] <= 1.0
    assert (d["bank_digits"] is None) == (d["bank_confident"] is None)
    if d["bank_digits"] is not None:
        assert 0.0 <= d["bank_confident"] <= d["bank_digits"] <= 1.0
        assert round(d["bank_confident"] * d["bank_size"]) == d["bank_confident"] * d["bank_size"]
    assert 0.0 <= d["random_recognisable"] <= 1.0 and 0 <= d["random_classes_present"] <= 10
    assert len(d["random_histogram"]) == 10
    assert sum(d["random_histogram"]) == round(d["random_recognisable"] * samples)
    assert d["random_classes_present"] == sum(c > 0 for c in d["random_histogram"])
    for key in ("detail", "detail_random", "detail_class", "random_mean_intensity"):
        assert 0.0 <= d[key] <= 1.0, key
    return d


@pytest.mark.parametrize("family", ["resnet", "prev"])
def test_eval_tiny_checkpoint_fields_in_range(tmp_path, cnn, family):
    ck = load_checkpoint(save_tiny(tmp_path / "e3.pt", family, bank=True))
    row = evaluate_checkpoint(ck, cnn, size=48, samples=30, seed=0, device="cpu")
    d = _check_row(row, 30)
    assert d["name"] == "e3" and d["family"] == family and d["epoch"] == 3 and d["detail_size"] == 48
    assert d["bank_size"] == 7 and d["bank_digits"] is not None
    assert d["cnn_sha256"] == cnn.sha256
    again = evaluate_checkpoint(ck, cnn, size=48, samples=30, seed=0, device="cpu")
    assert again.to_dict() == d  # reproducible


def test_eval_without_bank(tmp_path, cnn):
    ck = load_checkpoint(save_tiny(tmp_path / "e1.pt"))
    d = _check_row(evaluate_checkpoint(ck, cnn, size=32, samples=10, device="cpu"), 10)
    assert d["bank_digits"] is None and d["bank_size"] == 0


def test_bundled_e24_evaluates_white_on_black(cnn):
    ck = load_checkpoint("e24")
    d = _check_row(evaluate_checkpoint(ck, cnn, size=96, samples=100, seed=0, device="cpu"), 100)
    assert d["name"] == "e24" and d["family"] == "resnet" and d["epoch"] == 24
    # orientation: the generator's output is white strokes on a black background, as MNIST (mean ~0.13)
    assert d["random_mean_intensity"] < 0.4
    with torch.no_grad():
        from pipeline.render import Renderer

        img = Renderer(ck.generator, 26, 26, device="cpu").render_float(ck.class_latents)
    border = torch.cat([img[:, 0], img[:, -1], img[:, :, 0], img[:, :, -1]], dim=1)
    assert float(border.mean()) < 0.3 < float(img[:, 9:17, 9:17].max())
    probs = classify(cnn.model, img)
    assert probs.shape == (10, 10) and torch.allclose(probs.sum(1), torch.ones(10))


# ----------------------------------------------------------------------------- the command

def test_cli_json_one_row_per_checkpoint(tmp_path):
    a = save_tiny(tmp_path / "a.pt", "resnet", bank=True, seed=1)
    b = save_tiny(tmp_path / "b.pt", "prev", seed=2)
    res = CliRunner().invoke(cli, ["eval", str(a), str(b), "--json", "--quiet", "--size", "32",
                                   "--samples", "20", "--device", "cpu"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows] == ["a", "b"] and [r["family"] for r in rows] == ["resnet", "prev"]
    for r in rows:
        assert r["random_samples"] == 20 and r["detail_size"] == 32


def test_cli_table(tmp_path):
    a = save_tiny(tmp_path / "e3.pt")
    res = CliRunner().invoke(cli, ["eval", str(a), "--size", "32", "--samples", "10", "--quiet",
                                   "--device", "cpu"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for word in ("e3", "resnet", "/10", "test accuracy"):
        assert word in res.stdout


def test_cli_bad_input_is_one_line(tmp_path):
    from cli_helpers import run_main

    res = run_main(["eval", str(tmp_path / "missing.pt"), "--quiet"])
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing.pt" in lines[0]
    res = CliRunner().invoke(cli, ["eval", "e24", "--samples", "0"])
    assert res.exit_code == 2 and "--samples" in res.output


def test_payload_must_be_plain_data():
    with pytest.raises(ValueError, match="not plain data"):
        cnn_payload(DigitCNN(), 0.5, "x", {}, meta={"torch": torch.__version__})  # a str subclass
    with pytest.raises(ValueError):
        cnn_payload(DigitCNN(), 1.5, "x", {})
