"""The web app's render queue: one walk render at a time in a worker thread, the same library call as
`cppn-video walk` (render_walk with WalkSettings, keyframes through a keyframes file), cancellable, and
leaving nothing behind when cancelled or failed."""
from __future__ import annotations

import shlex
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.atomic import atomic_path, remove
from pipeline.errors import UserError
from pipeline.jobs.settings import WalkSettings
from pipeline.serve.requests import RenderRequest
from pipeline.serve.workspace import Workspace

STATES = ("idle", "running", "done", "cancelled", "failed")


class Busy(UserError):
    """A render is already running (one at a time)."""


class Cancelled(Exception):
    """Raised inside the render's progress callback to stop it; render_walk then removes its temp output."""


@dataclass
class Job:
    id: int
    ckpt: str
    stem: str
    total: int
    state: str = "running"
    done: int = 0
    error: str | None = None
    started: float = field(default_factory=time.time)
    seconds: float | None = None
    files: dict = field(default_factory=dict)  # role -> file name in the output folder
    command: str = ""
    preset: str = ""

    def public(self) -> dict:
        return {"id": self.id, "ckpt": self.ckpt, "name": self.stem, "state": self.state, "done": self.done,
                "total": self.total, "error": self.error, "seconds": self.seconds, "files": dict(self.files),
                "command": self.command, "preset": self.preset}


class RenderJobs:
    """One render at a time. `on_event(job_dict)` is called (from the worker thread) when a job starts, makes
    progress (at most every `every_s` seconds) and ends."""

    def __init__(self, ws: Workspace, on_event: Callable[[dict], None] | None = None, every_s: float = 0.1):
        self.ws = ws
        self.on_event = on_event or (lambda job: None)
        self.every_s = every_s
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_id = 1

    def status(self) -> dict:
        with self._lock:
            return self._job.public() if self._job is not None else {"state": "idle"}

    def submit(self, req: RenderRequest) -> dict:
        with self._lock:
            if self._job is not None and self._job.state == "running":
                raise Busy(f"render {self._job.stem} is still running ({self._job.done}/{self._job.total} frames); "
                           f"wait for it or cancel it")
            stem = self._stem(req)
            job = Job(self._next_id, req.ckpt, stem, req.settings.resolved().frames)
            self._next_id += 1
            job.command, job.preset = reproduce(self.ws, req, stem)
            self._job = job
            self._cancel = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(job, req, self._cancel), name=f"render-{stem}",
                                            daemon=True)
            self._thread.start()
            return job.public()

    def cancel(self) -> dict:
        with self._lock:
            job = self._job
            if job is None or job.state != "running":
                raise UserError("no render is running; nothing to cancel")
            self._cancel.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=60)
        return self.status()

    def shutdown(self) -> None:
        """Cancel a running render and wait for it to clean up (the server is stopping)."""
        self._cancel.set()
        self.wait(60)

    def wait(self, timeout: float | None = None) -> dict:
        """Wait for the current job to end (for tests and the benchmark); returns its status."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def _stem(self, req: RenderRequest) -> str:
        """A name whose outputs exist in no form yet: an output never replaces anything."""
        def taken(stem):
            return any((self.ws.out / f"{stem}{suffix}").exists() for suffix in (*SUFFIXES.values(), ".webm"))

        if req.name is not None:
            if taken(req.name):
                raise UserError(f"outputs named {req.name} already exist in the output folder; choose another name",
                                key="name")
            return req.name
        n = 1
        while taken(f"walk-{req.ckpt}-{n:03d}"):
            n += 1
        return f"walk-{req.ckpt}-{n:03d}"

    def _run(self, job: Job, req: RenderRequest, cancel: threading.Event) -> None:
        from pipeline.jobs.render import render_walk

        out = self.ws.out
        keys_path, video = out / f"{job.stem}{SUFFIXES['keyframes']}", out / f"{job.stem}{SUFFIXES['video']}"
        last = [0.0]

        def progress(n: int) -> None:
            if cancel.is_set():
                raise Cancelled
            job.done += n
            now = time.monotonic()
            if now - last[0] >= self.every_s or job.done == job.total:
                last[0] = now
                self.on_event(job.public())

        self.on_event(job.public())
        t0 = time.perf_counter()
        try:
            with atomic_path(keys_path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, req.keyframes, allow_pickle=False)
            settings = replace(req.settings, keyframes_file=str(keys_path))
            render_walk(self.ws.checkpoint(req.ckpt), video, settings, progress=progress)
            job.files = {role: f"{job.stem}{suffix}" for role, suffix in SUFFIXES.items()}
            job.state = "done"
        except Cancelled:
            job.state = "cancelled"
        except UserError as e:
            job.state, job.error = "failed", str(e)
        except Exception as e:  # the job fails, the server stays up; the page shows why
            job.state, job.error = "failed", f"{type(e).__name__}: {e}"
        finally:
            if job.state != "done":
                # render_walk removed its own temp output; the keyframes file is ours and goes too
                for suffix in SUFFIXES.values():
                    remove(out / f"{job.stem}{suffix}")
            job.seconds = round(time.perf_counter() - t0, 3)
            self.on_event(job.public())


SUFFIXES = {"video": ".mp4", "sidecar": ".mp4.json", "keyframes": ".keys.npy"}


def reproduce(ws: Workspace, req: RenderRequest, stem: str) -> tuple[str, str]:
    """(a `cppn-video walk` command, a preset job) that render this job again, run from the output folder."""
    s: WalkSettings = req.settings
    ckpt = ws.choice(req.ckpt).source
    keys, video = f"{stem}{SUFFIXES['keyframes']}", f"{stem}{SUFFIXES['video']}"
    chosen = [(name, getattr(s, name)) for name in EXPORTED if getattr(s, name) != getattr(DEFAULTS, name)]
    if s.audio is not None:  # run from the output folder, where the uploaded track is
        chosen = [(name, Path(value).name if name == "audio" else value) for name, value in chosen]
    args = ["cppn-video", "walk", "--ckpt", ckpt, "--keyframes-file", keys]
    for name, value in chosen:
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    args += ["-o", video]
    command = f"cd {shlex.quote(str(ws.out))} && " + " ".join(shlex.quote(a) for a in args)
    job = stem.replace("-", "_").replace(".", "_")
    lines = [f"[jobs.{job}]", 'kind = "walk"', f"ckpt = {_toml(ckpt)}", f"keyframes_file = {_toml(keys)}"]
    lines += [f"{name} = {_toml_value(value)}" for name, value in chosen]
    lines += [f"output = {_toml(video)}"]
    return command, "\n".join(lines) + "\n"


# What the page sets, exported when it differs from the walk's defaults (frames always: it is the page's own).
EXPORTED = ("frames", "size", "fps", "ease", "interp", "loop", "invert", "hold", "pace", "palette", "colors", "zoom",
            "pan", "rotate", "audio", "audio_offset", "sync", "beats_per_keyframe", "react")
DEFAULTS = WalkSettings(frames=-1)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    return _toml(value)


def _toml(text: str) -> str:
    """A TOML basic string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'
