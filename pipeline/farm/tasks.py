"""What runs on the cluster's workers: train, render and segment tasks, each in a private scratch folder.

A task receives its input files as bytes (Ray resolves the object references passed as top-level
arguments), checks each against its SHA-256, writes them into its scratch folder under the same last two
path parts as on the driver (so checkpoint names, compare labels and the train run's portable paths are
the ones a local run records), runs the same library call the local batch runs, and returns its outputs
as bytes. It never writes anywhere else: the driver publishes the outputs. Paths of the scratch folder
in a returned sidecar are rewritten to the driver's paths.

Scratch folders are `<tmp>/cppn-video-farm/<pid>-<random>`, removed when the task ends in any way but
SIGKILL (a killed worker, or a force-cancel); each task first removes those whose process is gone (renamed
out of the way first: what a killed worker left running may still write there, see clear_dead_scratch).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import ray

SCRATCH_NAME = "cppn-video-farm"


# ----------------------------------------------------------------------------- scratch folders


SCRATCH_ENV = "CPPN_FARM_SCRATCH"  # where workers put scratch folders (default: the temp dir)


def scratch_root() -> Path:
    return Path(os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()) / SCRATCH_NAME


_PF_EXITING = 0x4  # the kernel's per-task flag, set as do_exit() starts (linux/sched.h)


def _alive(pid: int) -> bool:
    """A running process (see _stat_alive); without /proc (not Linux) whatever signal 0 says."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return _stat_alive(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return True


def _stat_alive(stat: str) -> bool:
    """Whether a process's /proc/PID/stat line is a running process. A zombie is not: a SIGKILLed worker stays
    one until Ray's raylet reaps it, which on a loaded machine can be after the next task looks. Nor is one
    that is exiting: its sockets close (which is how Ray learns of the death and retries or fails the task) in
    the middle of do_exit, before it becomes a zombie, and on a loaded machine the next look can fall in
    between (test_farm caught each of the two keeping a dead worker's folder)."""
    fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, session, tty, tpgid, flags, ...
    return fields[0] not in "ZX" and not int(fields[6]) & _PF_EXITING


_TRASH = ".removing-"  # a dead worker's folder while it is removed (left only if its removal was cut short)
_REMOVE_PASSES = 5


def clear_dead_scratch(root: Path | None = None) -> list[str]:
    """Remove the scratch folders of worker processes that no longer exist; returns their names.

    The worker is gone, but not necessarily everything that writes into its folder: a SIGKILLed render task's
    ffmpeg runs in its own process group, so the kill does not reach it; it reads EOF on its stdin and only
    then creates its output file there, after the worker died (on a loaded machine, while the next task or
    the driver is already clearing the folder). Removed in place, the folder could get that file between
    rmtree emptying a directory and removing it: rmdir failed (ENOTEMPTY, ignored) and the folder stayed,
    yet was reported removed. So the folder is first renamed: no path under its old name exists any more,
    ffmpeg's open fails instead, and the tree is removed under the new name, which nothing looks up.
    """
    root = scratch_root() if root is None else Path(root)
    removed = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if p.name.startswith(_TRASH):  # another task is removing it, or its removal was cut short
            if _remove_tree(p):
                removed.append(p.name)
            continue
        pid = p.name.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            trash = p.with_name(_TRASH + p.name)
            try:
                os.rename(p, trash)
            except OSError:  # gone: another task (the other node's worker) got there first
                continue
            _remove_tree(trash)
            removed.append(p.name)
    return removed


def _remove_tree(path: Path) -> bool:
    """rmtree, again while anything is left: after the rename only a creation whose path lookup had already
    passed the old name can still land in the tree, and the pass that finds its file removes it (a pass
    fails only where such a file appeared, and none can start any more)."""
    for _ in range(_REMOVE_PASSES):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return True
    return False


@contextmanager
def scratch() -> Iterator[Path]:
    """A private folder for one task, removed afterwards (also when cancelled: KeyboardInterrupt unwinds)."""
    root = scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    clear_dead_scratch(root)
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- inputs and outputs


@dataclass(frozen=True)
class InputFile:
    """One input file as the driver has it: its path there and its SHA-256 (its bytes travel as an object)."""
    path: str
    sha256: str

    def place(self, folder: Path, data: bytes) -> Path:
        """Write `data` under folder/<parent name>/<name> after checking it against the SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise RuntimeError(f"{self.path} arrived with SHA-256 {digest[:12]}..., expected {self.sha256[:12]}...")
        src = Path(self.path)
        dest = folder / (src.parent.name or "_") / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return dest


def mirror(folder: Path, driver_path: str) -> Path:
    """Where a driver path's last two parts go inside `folder` (created)."""
    src = Path(driver_path)
    dest = folder / (src.parent.name or "_") / src.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def pack(path: Path) -> dict:
    """A file or folder as {relative path: bytes} ("" for a file itself)."""
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return {"": path.read_bytes()}


def swap_paths(value, mapping: dict):
    """`value` (a sidecar) with every string that is, or starts with, a scratch path given the driver's path."""
    if isinstance(value, dict):
        return {k: swap_paths(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [swap_paths(v, mapping) for v in value]
    if isinstance(value, str):
        for old, new in mapping.items():
            if value == old or value.startswith(old + os.sep):
                return new + value[len(old):]
    return value


# ----------------------------------------------------------------------------- progress and the test hook


class Reporter:
    """Sends a job's progress to the driver's ProgressBox (fire and forget), and runs the fault-test hook."""

    def __init__(self, box, job: str, kill: tuple | None = None):
        self.box, self.job, self.kill = box, job, kill

    def total(self, total: int, unit: str) -> None:
        if self.box is not None:
            self.box.put.remote({"event": "job_total", "job": self.job, "total": total, "unit": unit})

    def advance(self, n: int, info: str = "") -> None:
        if n and self.box is not None:
            self.box.put.remote({"event": "job_advance", "job": self.job, "n": n, "info": info})
        if n and self.kill is not None:
            _maybe_die(*self.kill)


def _maybe_die(folder: str, times: int) -> None:
    """The fault tests' hook: the first `times` attempts SIGKILL their own worker process mid-task."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.iterdir())) < times:
        (folder / f"killed-{os.getpid()}").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def _device() -> str:
    return "cuda" if ray.get_gpu_ids() else "cpu"


def _threads() -> int:
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    return max(1, int(cpus))


# ----------------------------------------------------------------------------- the tasks


@dataclass(frozen=True)
class RenderSpec:
    job: str
    kind: str                     # walk | still | compare
    settings: object              # WalkSettings / StillSettings / CompareSettings (device chosen here)
    inputs: tuple                 # (key, InputFile) per object passed after the spec, in order
    output: str                   # the driver's output path
    kill: tuple | None = None     # fault-test hook (folder, times)


@ray.remote
def render_task(spec: RenderSpec, box, *blobs: bytes) -> dict:
    """One walk, still or compare render -> {"files": pack(output), "sidecar": info with the driver's paths}."""
    import torch

    torch.set_num_threads(_threads())
    with scratch() as tmp:
        placed: dict[str, list[Path]] = {}
        mapping: dict[str, str] = {}
        for i, ((key, f), data) in enumerate(zip(spec.inputs, blobs)):
            dest = f.place(tmp / "in" / str(i), data)
            placed.setdefault(key, []).append(dest)
            mapping[str(dest)] = f.path
        out = mirror(tmp / "out", spec.output)
        mapping[str(out)] = spec.output
        s = replace(spec.settings, device=_device())
        report = Reporter(box, spec.job, spec.kill)
        from pipeline.jobs.kinds import render_kind

        kind = render_kind(spec.kind)  # one walk process here: the driver sends walks with workers as segments
        if "keyframes_file" in placed:
            s = replace(s, keyframes_file=str(placed["keyframes_file"][0]))
        if "audio" in placed:  # the soundtrack, as placed here (its sound is muxed on this worker)
            s = replace(s, audio=str(placed["audio"][0]))
        for key in ("images", "image"):  # pictures to project (jobs.projected), as placed here
            if key in placed:
                s = replace(s, **{key: ",".join(str(p) for p in placed[key])})
        if spec.kind != "still":
            report.total(kind.frames(s), "frames")
        info = kind.render(placed[kind.input_key], out, s, progress=report.advance)
        if spec.kind == "still":
            report.advance(1)
        return {"files": pack(out), "sidecar": swap_paths(_plain(info), mapping)}


@dataclass(frozen=True)
class SegmentSpec:
    job: str
    index: int
    start: int
    stop: int
    settings: object              # the walk's resolved WalkSettings
    ckpt: InputFile
    kill: tuple | None = None


@ray.remote
def segment_task(spec: SegmentSpec, box, ckpt: bytes, latents) -> tuple[bytes, dict]:
    """Frames [start, stop) of a walk (latents: the whole path) -> (the segment's MP4 bytes, its entry)."""
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs.segments import render_segment

    with scratch() as tmp:
        ck = load_checkpoint(spec.ckpt.place(tmp / "in", ckpt))
        out = tmp / f"segment_{spec.index:03d}.mp4"
        report = Reporter(box, spec.job, spec.kill)
        info = render_segment(ck, latents[spec.start:spec.stop], spec.settings, _device(), _threads(), out,
                              progress=report.advance, start=spec.start)
        return out.read_bytes(), info


@dataclass(frozen=True)
class TrainSpec:
    job: str
    config: object                # the resolved TrainConfig (out_dir, data_dir: the driver's)
    data: tuple                   # InputFile per data file, in the order of the objects after the spec
    run: tuple                    # InputFile per file of the run being resumed, after the data files
    resume: bool
    command: tuple


@ray.remote
def train_task(spec: TrainSpec, box, *blobs: bytes) -> dict:
    """Train (or resume) in scratch -> {file name: bytes} of every file of the run folder."""
    from pipeline.train import train
    from pipeline.train.run_dir import run_files

    with scratch() as tmp:
        cfg = spec.config
        data_dir = None
        if cfg.data_dir is not None:  # the folder keeps its last two path parts, as recorded paths do
            data_dir = mirror(tmp / "data", str(cfg.data_dir))
            data_dir.mkdir()
            for f, data in zip(spec.data, blobs):
                os.replace(f.place(tmp / "in", data), data_dir / Path(f.path).name)
        run = mirror(tmp / "run", str(cfg.out_dir))
        run.mkdir()
        for f, data in zip(spec.run, blobs[len(spec.data):]):
            os.replace(f.place(tmp / "prev", data), run / Path(f.path).name)
        cfg = replace(cfg, out_dir=str(run), data_dir=None if data_dir is None else str(data_dir))
        report = Reporter(box, spec.job)
        epochs = {"n": cfg.epochs}

        def on_event(event: dict) -> None:
            if event["event"] == "start":
                epochs["n"] = event["epochs"]
                report.total(event["total"] - event["done"], "batches")
            elif event["event"] == "batch":
                report.advance(1, f"epoch {event['epoch']}/{epochs['n']}")

        result = train(cfg, resume=spec.resume, progress=on_event, command=list(spec.command), device=_device())
        if result.interrupted:
            raise RuntimeError("training stopped before it finished")
        return {p.name: p.read_bytes() for p in run_files(run)}


def _plain(info):
    """A sidecar dict as JSON values (what provenance writes), so paths can be swapped in strings."""
    import json

    from pipeline.provenance import sidecar_text

    return json.loads(sidecar_text(info))


@ray.remote(num_cpus=0)
class ProgressBox:
    """Collects the tasks' progress events; the driver drains it a few times a second."""

    def __init__(self):
        self.events: list[dict] = []

    def put(self, event: dict) -> None:
        self.events.append(event)

    def drain(self) -> list[dict]:
        events, self.events = self.events, []
        return events
