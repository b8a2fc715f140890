"""cppn-video batch --ray: a preset on a 2-node Ray cluster (one machine) gives the local batch's outputs,
survives a killed worker, reports a job that keeps failing once, resumes by skipping, and stops cleanly."""
from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from idx_helpers import write_idx_dataset
from pipeline.batch import load_preset, run_batch
from pipeline.cli import cli
from proc_helpers import leftovers, stop_cli, tagged
from render_helpers import make_checkpoint
from video_helpers import read_video

# A tiny training run, a lossless walk from its checkpoint in 2 segments (one frame per batch, so a
# worker can die mid-segment), a CRF 18 comparison of that checkpoint with a fixed one, and a still.
PRESET = """
[settings]
out_dir = "out"
data_dir = "data"

[jobs.train_p]
kind = "train"
model = "prev"
width = 8
depth = 1
limit = 40
batch_size = 20
epochs = 1

[jobs.walk]
kind = "walk"
ckpt = "@train_p/e1.pt"
size = 32
frames = 6
keyframes = 2
batch = 1
lossless = true
preset = "ultrafast"
workers = 2

[jobs.compare]
kind = "compare"
ckpts = ["@train_p/e1.pt", "A.pt"]
labels = ["trained", "fixed"]
panel_size = 32
frames = 4
keyframes = 2
crf = 18
preset = "ultrafast"

[jobs.still]
kind = "still"
ckpt = "A.pt"
size = 32
"""

OUTPUTS = ["train_p/e1.pt", "walk.mp4", "compare.mp4", "still.png"]

# The local reference renders the 2-segment walk on this 2-core machine, which warns that it is slow.
pytestmark = pytest.mark.filterwarnings("ignore:--workers 2 on:RuntimeWarning")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture(scope="module")
def cluster(scratch):
    """Two Ray nodes of one CPU each on this machine; the driver connected to them."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'cppn-video[farm]')")
    from ray.cluster_utils import Cluster

    os.environ["CPPN_FARM_SCRATCH"] = str(scratch)  # the nodes' workers inherit it
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    light = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}
    c = Cluster(initialize_head=True, head_node_args={**light, "include_dashboard": False})
    c.add_node(**light)
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()
    os.environ.pop("CPPN_FARM_SCRATCH", None)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("assets")
    make_checkpoint(d / "A.pt")
    write_idx_dataset(d / "data", 40, 0)
    return d


def write_preset(folder: Path, assets: Path, text: str = PRESET) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for entry in ("A.pt", "data"):
        if not (folder / entry).exists():
            (folder / entry).symlink_to(assets / entry)
    path = folder / "p.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def local(tmp_path_factory, assets):
    """The same preset run by the local batch: the reference."""
    path = write_preset(tmp_path_factory.mktemp("local"), assets)
    result = run_batch(load_preset(path), devices=["cpu"])
    assert result.ok, result.to_dict()
    return path.parent / "out"


def farm(path: Path, **kw):
    from pipeline.farm import run_farm

    return run_farm(load_preset(path), **kw)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def no_temp_files(out: Path, scratch: Path) -> None:
    assert not [p for p in out.rglob(".*") if p.name != ".cppn-video.lock"], list(out.rglob(".*"))
    assert not list((scratch / "cppn-video-farm").glob("*")) if (scratch / "cppn-video-farm").exists() else True


def same_checkpoint(a: Path, b: Path) -> bool:
    import torch

    def plain(path):
        data = torch.load(path, weights_only=True)
        data["meta"] = {k: v for k, v in data["meta"].items() if k not in ("created", "train_seconds", "command")}
        return data

    def equal(x, y) -> bool:
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(equal(x[k], y[k]) for k in x)
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and torch.equal(x, y)
        return x == y

    return equal(plain(a), plain(b))


def test_farm_run_matches_the_local_batch_and_a_rerun_skips_everything(cluster, assets, local, tmp_path, scratch):
    path = write_preset(tmp_path, assets)
    out = tmp_path / "out"
    events = []
    first = farm(path, progress=events.append)
    assert first.statuses == {"train_p": "done", "walk": "done", "compare": "done", "still": "done"}, first.to_dict()
    # Training is deterministic: the same checkpoint but for when it was made, how long it took and the
    # preset's folder in the recorded command; the lossless walk, joined from segments rendered on both
    # nodes, is byte-identical.
    assert same_checkpoint(out / "train_p/e1.pt", local / "train_p/e1.pt")
    assert (out / "walk.mp4").read_bytes() == (local / "walk.mp4").read_bytes()
    assert read_video(out / "walk.mp4").shape == (6, 32, 32)
    assert psnr(read_video(out / "compare.mp4"), read_video(local / "compare.mp4")) > 45
    assert (out / "still.png").read_bytes() == (local / "still.png").read_bytes()
    side = json.loads((out / "walk.mp4.json").read_text())
    assert side["output"] == str(out / "walk.mp4") and side["checkpoint"]["path"] == str(out / "train_p/e1.pt")
    assert side["workers"] == 2 and [(g["start"], g["stop"]) for g in side["segments"]] == [(0, 3), (3, 6)]
    compare_side = json.loads((out / "compare.mp4.json").read_text())
    assert str(tmp_path) in json.dumps(compare_side) and str(scratch) not in json.dumps(compare_side)
    m = json.loads((out / "manifest.json").read_text())
    assert all(m["jobs"][j]["status"] == "done" for j in first.statuses)
    assert sum(e["n"] for e in events if e["event"] == "job_advance" and e["job"] == "walk") == 6
    no_temp_files(out, scratch)

    before = {p: (out / p).stat().st_mtime_ns for p in OUTPUTS}
    second = farm(path)
    assert set(second.statuses.values()) == {"skipped"}, second.to_dict()
    assert {p: (out / p).stat().st_mtime_ns for p in OUTPUTS} == before
    # The local batch agrees that the farm's outputs are up to date: one manifest, two engines.
    assert set(run_batch(load_preset(path), devices=["cpu"]).statuses.values()) == {"skipped"}


def test_a_worker_killed_mid_segment_is_retried_and_the_video_is_the_same(cluster, assets, local, tmp_path, scratch,
                                                                          monkeypatch):
    marks = tmp_path / "kills"
    monkeypatch.setenv("CPPN_FARM_TEST_KILL", f"walk:1:{marks}")  # segment 0 SIGKILLs its worker after 1 frame
    path = write_preset(tmp_path, assets)
    result = farm(path, only=["walk"])
    assert result.statuses == {"train_p": "done", "walk": "done"}, result.to_dict()
    assert len(list(marks.iterdir())) == 1  # it did die once
    assert np.array_equal(read_video(tmp_path / "out/walk.mp4"), read_video(local / "walk.mp4"))
    assert (tmp_path / "out/walk.mp4").read_bytes() == (local / "walk.mp4").read_bytes()
    no_temp_files(tmp_path / "out", scratch)


RENDERS = """
[settings]
out_dir = "out"

[jobs.walk]
kind = "walk"
ckpt = "A.pt"
size = 32
frames = 4
keyframes = 2
batch = 1
preset = "ultrafast"

[jobs.still]
kind = "still"
ckpt = "A.pt"
size = 32

[jobs.still_after]
kind = "still"
ckpt = "A.pt"
after = ["walk"]
size = 32
"""


def test_a_job_that_keeps_failing_is_reported_once_and_the_others_finish(cluster, assets, tmp_path, scratch,
                                                                         monkeypatch):
    marks = tmp_path / "kills"
    monkeypatch.setenv("CPPN_FARM_TEST_KILL", f"walk:99:{marks}")
    path = write_preset(tmp_path, assets, RENDERS)
    result = farm(path)
    assert result.statuses == {"walk": "failed", "still": "done", "still_after": "blocked"}, result.to_dict()
    assert len(list(marks.iterdir())) == 3  # the first try and 2 retries
    reason = result.outcome("walk").reason
    assert "\n" not in reason and "2 retries" in reason, reason
    assert not (tmp_path / "out/walk.mp4").exists()
    assert json.loads((tmp_path / "out/manifest.json").read_text())["jobs"]["walk"]["status"] == "failed"
    # SIGKILL leaves the last attempt's scratch folder; it belongs to a dead process, so the next task on
    # that node removes it (clear_dead_scratch), as it does here. The killed attempt's ffmpeg may still be
    # running (it creates its output there only after the worker died): the folders must go all the same,
    # the earlier attempts' ones (cleared by the retries) and this one (see the test below).
    from pipeline.farm.tasks import clear_dead_scratch

    root = scratch / "cppn-video-farm"
    left = sorted(p.name for p in root.iterdir())
    assert len(left) <= 1 and clear_dead_scratch(root) == left
    no_temp_files(tmp_path / "out", scratch)


def test_a_dead_workers_scratch_folder_goes_even_if_its_ffmpeg_writes_there_meanwhile(tmp_path, monkeypatch):
    """A SIGKILLed worker's ffmpeg (its own process group: the kill does not reach it) lives on, and only once
    it reads EOF does it create its output file, by path, in the dead worker's scratch folder. Here it does so
    at the worst moment: while the folder is being removed, after rmtree emptied a directory, before rmdir."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'cppn-video[farm]')")
    from pipeline.farm.tasks import clear_dead_scratch

    root = tmp_path / "cppn-video-farm"
    name = "4194304-dead"  # PID_MAX_LIMIT: no process has this id
    out = root / name / "out" / "out"
    out.mkdir(parents=True)
    (out / "frame").write_bytes(b"")
    real_rmdir, tries = os.rmdir, []

    def ffmpeg_creates_its_output_first(*args, **kwargs):
        if not tries:
            try:
                (out / ".walk.mp4.1234abcd.partial.mp4").write_bytes(b"")
                tries.append("created")
            except OSError:
                tries.append("could not")
        return real_rmdir(*args, **kwargs)

    monkeypatch.setattr(os, "rmdir", ffmpeg_creates_its_output_first)
    assert clear_dead_scratch(root) == [name]
    assert tries and not list(root.iterdir()), (tries, sorted(map(str, root.rglob("*"))))


def test_a_worker_counts_as_dead_once_it_is_exiting_or_a_zombie():
    """clear_dead_scratch's test of a folder's worker: a SIGKILLed worker closes its sockets (Ray then reports the
    task failed) while it is still exiting, before it is a zombie; either way its folder may go."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'cppn-video[farm]')")
    import signal
    import subprocess

    from pipeline.farm.tasks import _alive, _stat_alive

    line = "4242 (ray::render_task) {} 1 4242 4242 0 -1 {} 0 0 0 0 5 3 0 0 20 0 9 0 100 0 0"
    assert _stat_alive(line.format("S", 4194560))             # sleeping, flags without PF_EXITING
    assert _stat_alive(line.format("R", 0x400100))
    assert not _stat_alive(line.format("R", 0x400104))        # PF_EXITING: in do_exit
    assert not _stat_alive(line.format("D", 0x404))
    assert not _stat_alive(line.format("Z", 0x400104))        # a zombie
    assert not _stat_alive(line.replace("ray::render_task", "a) b (c").format("S", 0x404))  # ")" in the name
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(child.pid) and time.monotonic() < deadline:  # not waited for: exiting, then a zombie
            time.sleep(0.01)
        assert not _alive(child.pid)  # dead before it is reaped (often before waitpid could even see it)
    finally:
        child.kill()
        child.wait()
    assert not _alive(child.pid)


def test_stopping_cancels_the_tasks_and_leaves_no_partial_output(cluster, assets, tmp_path, scratch):
    path = write_preset(tmp_path, assets, RENDERS.replace("frames = 4", "frames = 400").replace("size = 32\nframes",
                                                                                               "size = 96\nframes"))
    stop = threading.Event()

    def progress(event):
        if event["event"] == "job_advance" and event["job"] == "walk":
            stop.set()

    result = farm(path, only=["walk"], progress=progress, stop_flag=stop)
    assert result.statuses == {"walk": "interrupted"} and result.exit_code == 130
    assert not (tmp_path / "out/walk.mp4").exists()
    assert json.loads((tmp_path / "out/manifest.json").read_text())["jobs"]["walk"]["status"] == "interrupted"
    no_temp_files(tmp_path / "out", scratch)  # the cancelled task removed its scratch folder and ffmpeg's file


def test_cli_ray_runs_and_without_ray_says_how_to_install(cluster, assets, tmp_path, monkeypatch):
    path = write_preset(tmp_path, assets, RENDERS)
    res = CliRunner().invoke(cli, ["batch", str(path), "--ray", "--only", "still", "--quiet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out/still.png").is_file()
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    res = CliRunner().invoke(cli, ["batch", str(path), "--ray"])
    assert res.exit_code != 0
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and 'pip install "cppn-video[farm]"' in line and "Traceback" not in res.output


def test_batch_ray_starts_its_own_instance_beside_a_running_one_and_stops_on_sigterm(cluster, assets, tmp_path):
    """`batch --ray` without an address, while another Ray instance runs on this machine (the module's
    cluster): it starts a Ray instance of its own (a bare ray.init() joined the running one, and died when it
    shut down). SIGTERM to the main process stops it as Ctrl-C does (ray.init puts in a SIGTERM handler that
    aborts the driver: exit 134, tasks running on, the instance's processes orphaned): the tasks cancelled,
    its instance shut down, no output and no process of the run left, the other instance unharmed."""
    import ray

    (tmp_path / "A.pt").symlink_to(assets / "A.pt")
    preset = tmp_path / "p.toml"
    preset.write_text('[settings]\nout_dir = "out"\n[jobs.long]\nkind = "walk"\nckpt = "A.pt"\nsize = 64\n'
                      'frames = 1000000\nbatch = 1\nworkers = 2\npreset = "ultrafast"\n')
    out = tmp_path / "out"
    log = out / "logs" / "long.log"
    tag = secrets.token_hex(8)
    own_raylet = []

    def ready():
        if not (log.exists() and "submitting 2 segment tasks" in log.read_text()):
            return False
        own_raylet.extend(p for p in tagged(tag) if _comm(p) == "raylet")  # started by the run, not the cluster's
        return True

    res, survivors = stop_cli(["batch", str(preset), "--ray", "--quiet"], ready, "sigterm", cwd=tmp_path,
                              env={"RAY_ADDRESS": ""}, tag=tag)
    assert own_raylet, "the run joined the Ray instance already running instead of starting its own"
    assert res.returncode == 130 and "Traceback" not in res.stderr, res.stderr
    assert survivors == [], f"processes of the run still alive: {survivors}"
    assert leftovers(out) == []
    assert sorted(p.name for p in out.iterdir()) == ["logs", "manifest.json", "preset.resolved.json"]
    assert json.loads((out / "manifest.json").read_text())["jobs"]["long"]["status"] == "interrupted"
    assert ray.get(ray.remote(lambda: 7).remote(), timeout=60) == 7  # the module's cluster still serves


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
