"""Every command stopped by Ctrl-C (SIGINT to the process group), SIGHUP (the terminal closed: to the group)
or SIGTERM (to the main process alone): exit 130 without a traceback, no process of the run survives
(ffmpeg, segment workers), no temporary file or folder is left, and an interrupted training resumes to
exactly the weights of an uninterrupted one.

The three signals share one handler (pipeline.stops; the first tests check that it is one, and that an
inherited "ignore" is kept). So each command is stopped by the signals that take a different path through
it: a group signal (SIGINT or SIGHUP, which its workers and encoders also receive) and SIGTERM (which reaches
the main process alone, so it must stop the rest); SIGHUP end to end stops the 2-worker walk and training.
Each case starts real processes and costs seconds; one per path keeps the file inside the suite's time.
`batch --ray` stopped by SIGTERM is tests/test_farm.py's (it needs a Ray instance running beside it)."""
from __future__ import annotations

import json
import signal

import pytest
import torch

from cli_helpers import run_main
from idx_helpers import write_idx_dataset
from pipeline import stops
from pipeline.cli.common import stop_on_interrupt
from pipeline.checkpoint import load_checkpoint, read_checkpoint_dict
from proc_helpers import leftovers, stop_cli
from render_helpers import make_checkpoint

SIGNALS = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sighup": signal.SIGHUP}


def test_every_stop_signal_gets_the_same_handler_and_an_ignored_one_stays_ignored():
    def handler(signum, frame):
        pass

    saved = {sig: signal.getsignal(sig) for sig in SIGNALS.values()}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
        with stops.handled(handler) as installed:
            assert installed
            assert signal.getsignal(signal.SIGINT) is handler and signal.getsignal(signal.SIGTERM) is handler
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with stops.handled(handler):
            assert all(signal.getsignal(sig) is handler for sig in SIGNALS.values())
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # restored
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
    assert {stops.stop_name(s) for s in stops.STOP_SIGNALS} == {"Ctrl-C", "SIGTERM", "SIGHUP"}


def test_a_graceful_stop_names_each_signal_and_a_second_one_aborts():
    import threading

    for sig in SIGNALS.values():
        event = threading.Event()
        with stop_on_interrupt(event, "stopping"):
            signal.raise_signal(sig)
            assert event.is_set(), sig
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(sig)


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


# A segment walk stopped by SIGTERM to the main process alone is test_batch's case (its walk has 2 workers);
# SIGHUP, a group signal as Ctrl-C is and the same handler (first tests), stops the 2-worker walk and training.
@pytest.mark.parametrize("workers,how", [(1, "sigint"), (1, "sigterm"), (2, "sighup")])
def test_walk(assets, tmp_path, how, workers):
    out = tmp_path / "w.mp4"
    args = ["walk", "--ckpt", str(assets / "A.pt"), "--frames", "100000", "--size", "64", "--batch", "1",
            "--workers", str(workers), "--quiet", "-o", str(out)]
    started = ".w.mp4.*.segments/.segment_*" if workers > 1 else ".w.mp4.*"
    res, survivors = stop_cli(args, _encoding(tmp_path, started, workers), how)
    _check_stopped(res, survivors, tmp_path, [])


def test_compare(assets, tmp_path, how="sigint"):
    out = tmp_path / "c.mp4"
    args = ["compare", str(assets / "A.pt"), str(assets / "B.pt"), "--frames", "100000", "--panel-size", "64",
            "--batch", "1", "--quiet", "-o", str(out)]
    res, survivors = stop_cli(args, _encoding(tmp_path, ".c.mp4.*"), how)
    _check_stopped(res, survivors, tmp_path, [])


TRAIN = ["train", "--model", "prev", "--width", "16", "--epochs", "4", "--batch-size", "16", "--limit", "48",
         "--seed", "11", "--quiet"]


def test_train_saves_its_state_and_resumes_to_the_same_weights(assets, tmp_path, how="sighup"):
    """Stopped by SIGHUP (a graceful stop: Ctrl-C's in-process form is tests/test_cli_train.py's), resumed
    from the files that process left, the run ends with the weights of an uninterrupted run (trained and
    resumed here in-process: the kernels' sums do not depend on the thread count)."""
    done = run_main(TRAIN + ["--data", assets / "data", "--out", tmp_path / "reference"])
    assert done.returncode == 0, done.stderr
    uninterrupted = load_checkpoint(tmp_path / "reference" / "e4.pt")
    out = tmp_path / "run"
    metrics = out / "metrics.jsonl"
    args = TRAIN + ["--data", str(assets / "data"), "--out", str(out)]
    res, survivors = stop_cli(args, lambda: metrics.exists() and metrics.read_text().count("\n") >= 1, how)
    assert "--resume" in res.stderr
    _check_stopped(res, survivors, out, ["state.pt", "metrics.jsonl", "config.json"]
                   + [p.name for p in out.glob("e*.pt")])
    position = read_checkpoint_dict(out / "state.pt")[0]["position"]
    assert position["epoch"] * 3 + position["batch"] < 12  # stopped before the end
    done = run_main(["train", "--out", out, "--resume", "--quiet"])  # from what the stopped process saved
    assert done.returncode == 0, done.stderr
    resumed = load_checkpoint(out / "e4.pt")
    for k, v in uninterrupted.generator.state_dict().items():
        assert torch.equal(v, resumed.generator.state_dict()[k]), k


def test_batch(assets, tmp_path, how="sigterm"):
    """A batch whose walk renders in two worker processes: stopped, it records the job as interrupted.
    (SIGTERM to the main process; a SIGINT is tests/test_batch.py's Ctrl-C test.)"""
    (tmp_path / "A.pt").symlink_to(assets / "A.pt")
    preset = tmp_path / "p.toml"
    preset.write_text('[settings]\nout_dir = "out"\n[jobs.long]\nkind = "walk"\nckpt = "A.pt"\nsize = 64\n'
                      'frames = 100000\nbatch = 1\nworkers = 2\npreset = "ultrafast"\n')
    out = tmp_path / "out"
    res, survivors = stop_cli(["batch", str(preset), "--devices", "cpu", "--quiet"],
                              _encoding(out, ".long.mp4.*.segments/.segment_*", 2), how, cwd=tmp_path)
    _check_stopped(res, survivors, out, ["logs", "manifest.json", "preset.resolved.json"])
    assert json.loads((out / "manifest.json").read_text())["jobs"]["long"]["status"] == "interrupted"
