"""`cppn-video train` and `cppn-video info`: help, usage errors, Ctrl-C + --resume, info output."""
from __future__ import annotations

import hashlib
import json
import signal
import sys
import threading

import pytest
import torch
from click.testing import CliRunner

import pipeline.train.loop as loop
from idx_helpers import write_idx_dataset
from pipeline.cli import cli, main
from pipeline.cli.common import stop_on_interrupt


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("digits"), n_train=64, n_test=0, seed=2)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("args, expected", [
    ([], ["train", "info"]),
    (["train"], ["--model", "--width", "--epochs", "--save-at", "--out", "--data", "--dataset", "--batch-size",
                 "--limit", "--seed", "--resume", "--quiet", "[default: mnist]", "[default: 0;"]),
    (["info"], ["CKPT", "--json"]),
])
def test_help(args, expected):
    result = run(*args, "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # help text wraps at any space
    for word in expected:
        assert word in text


@pytest.mark.parametrize("args, flag", [
    (["--model", "resnet", "--epochs", "2", "--save-at", "3"], "--save-at"),
    (["--model", "resnet", "--epochs", "2", "--save-at", "six"], "--save-at"),
    (["--model", "gan", "--epochs", "2"], "--model"),
    (["--model", "resnet", "--epochs", "0"], "--epochs"),
    (["--model", "resnet", "--epochs", "2", "--width", "0"], "--width"),
    (["--model", "resnet", "--epochs", "2", "--batch-size", "-5"], "--batch-size"),
    (["--model", "resnet", "--epochs", "2", "--data", "/no/such/dir"], "--data"),
    (["--model", "resnet", "--epochs", "2", "--dataset", "cifar"], "--dataset"),
    (["--epochs", "2"], "--model"),
    (["--model", "prev"], "--epochs"),
])
def test_bad_arguments_are_usage_errors(tmp_path, args, flag):
    result = CliRunner().invoke(cli, ["train", "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output
    assert flag in result.output
    assert not (tmp_path / "run").exists()  # nothing was started


def test_first_ctrl_c_sets_the_flag_second_aborts():
    stop = threading.Event()
    before = signal.getsignal(signal.SIGINT)
    with stop_on_interrupt(stop, "stopping"):
        # raise_signal, not os.kill(os.getpid()): a signal sent to the process may be taken by any thread
        # that does not block it, and runs its Python handler only once that thread has been scheduled;
        # raise() delivers it to this thread, and raise_signal runs the handler before it returns.
        signal.raise_signal(signal.SIGINT)
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_train_interrupt_resume_and_info(data, tmp_path, monkeypatch):
    """Ctrl-C during the first batch -> state.pt + exit 130; --resume finishes; info shows the provenance."""
    out = tmp_path / "run"
    real_crops = loop.random_crops
    calls = {"n": 0}

    def crops_then_ctrl_c(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C during batch 1 (handled here)
        return real_crops(*a, **kw)

    monkeypatch.setattr(loop, "random_crops", crops_then_ctrl_c)
    # Part one's model, narrowed so the test is quick (tests/test_train.py runs the article's sizes).
    result = run("train", "--model", "prev", "--width", "16", "--epochs", "1", "--batch-size", "16",
                 "--limit", "32", "--seed", "4", "--out", out, "--data", data)
    assert result.exit_code == 130, result.output
    assert f"cppn-video train --out {out} --resume" in result.output
    assert (out / "state.pt").exists() and not (out / "e1.pt").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1

    result = run("train", "--out", out, "--resume", "--quiet")  # settings come from state.pt
    assert result.exit_code == 0, result.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    text = run("info", out / "e1.pt")
    assert text.exit_code == 0
    sha = hashlib.sha256((out / "e1.pt").read_bytes()).hexdigest()
    for fragment in ("kind: render", "family: prev", "width: 16", f"sha256: {sha}", "seed: 4",
                     "epoch: 1", "batches: 2", "images_seen: 32", "version: 0.1.0", "parameters: ",
                     "train-images-idx3-ubyte.gz: ", "missing_classes", "lr_g: 0.005", "beta1: 0.65"):
        assert fragment in text.output, fragment

    js = run("info", out / "state.pt", "--json")
    info = json.loads(js.output)
    assert info["kind"] == "train" and info["family"] == "prev"
    assert info["generator_config"]["width"] == 16 and info["class_latents"]["shape"] == [10, 32]
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.iterdir()}
    assert info["meta"]["dataset"]["files"] == files and info["meta"]["epoch"] == 1
    weights = torch.load(out / "state.pt", weights_only=True)["generator"]
    assert info["parameters"] == sum(v.numel() for v in weights.values())


def test_info_errors_are_one_line(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    monkeypatch.setattr(sys, "argv", ["cppn-video", "info", str(bad)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and err.count("\n") == 1


def test_resume_without_a_run_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["cppn-video", "train", "--out", str(tmp_path / "none"), "--resume"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "nothing to resume" in err and err.count("\n") == 1
