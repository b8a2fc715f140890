"""Every command stopped by Ctrl-C (SIGINT to the process group) or SIGTERM (to the main process alone):
exit 130 without a traceback, no process of the run survives (ffmpeg, segment workers), no temporary file or
folder is left, and an interrupted training resumes to exactly the weights of an uninterrupted one."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from idx_helpers import write_idx_dataset
from pipeline.checkpoint import load_checkpoint, read_checkpoint_dict
from proc_helpers import REPO, leftovers, stop_cli
from render_helpers import make_checkpoint

HOW = ["sigint", "sigterm"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("assets")
    make_checkpoint(d / "A.pt")
    make_checkpoint(d / "B.pt", epoch=2)
    write_idx_dataset(d / "data", n_train=192, n_test=40, seed=3)
    return d


def _encoding(folder, pattern, n=1):
    """ready(): n writers are encoding (their temp outputs exist)."""
    return lambda: len(list(folder.glob(pattern))) >= n


def _check_stopped(res, survivors, folder, expected):
    assert res.returncode == 130, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert survivors == [], f"processes of the run still alive: {survivors}"
    assert leftovers(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("workers", [1, 2])
def test_walk(assets, tmp_path, how, workers):
    out = tmp_path / "w.mp4"
    args = ["walk", "--ckpt", str(assets / "A.pt"), "--frames", "100000", "--size", "64", "--batch", "1",
            "--workers", str(workers), "--quiet", "-o", str(out)]
    started = ".w.mp4.*.segments/.segment_*" if workers > 1 else ".w.mp4.*"
    res, survivors = stop_cli(args, _encoding(tmp_path, started, workers), how)
    _check_stopped(res, survivors, tmp_path, [])


@pytest.mark.parametrize("how", HOW)
def test_compare(assets, tmp_path, how):
    out = tmp_path / "c.mp4"
    args = ["compare", str(assets / "A.pt"), str(assets / "B.pt"), "--frames", "100000", "--panel-size", "64",
            "--batch", "1", "--quiet", "-o", str(out)]
    res, survivors = stop_cli(args, _encoding(tmp_path, ".c.mp4.*"), how)
    _check_stopped(res, survivors, tmp_path, [])


@pytest.fixture(scope="module")
def uninterrupted(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "pipeline", *TRAIN, "--data", str(assets / "data"), "--out", str(out)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return load_checkpoint(out / "e4.pt")


TRAIN = ["train", "--model", "prev", "--width", "16", "--epochs", "4", "--batch-size", "16", "--limit", "48",
         "--seed", "11", "--quiet"]


@pytest.mark.parametrize("how", HOW)
def test_train_saves_its_state_and_resumes_to_the_same_weights(assets, tmp_path, uninterrupted, how):
    out = tmp_path / "run"
    metrics = out / "metrics.jsonl"
    args = TRAIN + ["--data", str(assets / "data"), "--out", str(out)]
    res, survivors = stop_cli(args, lambda: metrics.exists() and metrics.read_text().count("\n") >= 1, how)
    assert "--resume" in res.stderr
    _check_stopped(res, survivors, out, ["state.pt", "metrics.jsonl", "config.json"]
                   + [p.name for p in out.glob("e*.pt")])
    position = read_checkpoint_dict(out / "state.pt")[0]["position"]
    assert position["epoch"] * 3 + position["batch"] < 12  # stopped before the end
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pipeline", "train", "--out", str(out), "--resume", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = load_checkpoint(out / "e4.pt")
    for k, v in uninterrupted.generator.state_dict().items():
        assert torch.equal(v, resumed.generator.state_dict()[k]), k


@pytest.mark.parametrize("how", HOW)
def test_batch(assets, tmp_path, how):
    """A batch whose walk renders in two worker processes: stopped, it records the job as interrupted."""
    (tmp_path / "A.pt").symlink_to(assets / "A.pt")
    preset = tmp_path / "p.toml"
    preset.write_text('[settings]\nout_dir = "out"\n[jobs.long]\nkind = "walk"\nckpt = "A.pt"\nsize = 64\n'
                      'frames = 100000\nbatch = 1\nworkers = 2\npreset = "ultrafast"\n')
    out = tmp_path / "out"
    res, survivors = stop_cli(["batch", str(preset), "--devices", "cpu", "--quiet"],
                              _encoding(out, ".long.mp4.*.segments/.segment_*", 2), how, cwd=tmp_path)
    _check_stopped(res, survivors, out, ["logs", "manifest.json", "preset.resolved.json"])
    assert json.loads((out / "manifest.json").read_text())["jobs"]["long"]["status"] == "interrupted"


def test_batch_on_ray_stops_on_sigterm(assets, tmp_path):
    """`batch --ray` on a local cluster: ray.init puts in a SIGTERM handler that aborts the driver (exit 134,
    tasks running on, the cluster's processes orphaned). SIGTERM must stop it as Ctrl-C does: the tasks
    cancelled, the cluster shut down, no output and no process left."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'cppn-video[farm]')")
    (tmp_path / "A.pt").symlink_to(assets / "A.pt")
    preset = tmp_path / "p.toml"
    preset.write_text('[settings]\nout_dir = "out"\n[jobs.long]\nkind = "walk"\nckpt = "A.pt"\nsize = 64\n'
                      'frames = 1000000\nbatch = 1\nworkers = 2\npreset = "ultrafast"\n')
    out = tmp_path / "out"
    log = out / "logs" / "long.log"
    res, survivors = stop_cli(["batch", str(preset), "--ray", "--quiet"],
                              lambda: log.exists() and "submitting 2 segment tasks" in log.read_text(), "sigterm",
                              cwd=tmp_path)
    _check_stopped(res, survivors, out, ["logs", "manifest.json", "preset.resolved.json"])
    assert json.loads((out / "manifest.json").read_text())["jobs"]["long"]["status"] == "interrupted"
