"""Run a preset's jobs in dependency order: skip what is up to date, one job per device, a manifest entry after each.

Scheduling. The main thread walks the selected jobs in dependency order and launches a job once every
job it needs has finished, on a free device (a thread per device). With one device (`cpu`, the
default `auto` on a machine without CUDA) that is a sequential run; with `cuda:0,cuda:1` two
independent jobs render at once. A train job trains on its slot's device (a run resumes on whichever
device it gets: state.pt holds CPU tensors). Only the main thread writes the manifest.

Skipping. Right before a job would launch (its inputs now exist) it is compared with its manifest
entry (see pipeline.batch.manifest.check_job): same settings, same input hashes, outputs present with
the recorded hashes -> skipped. A job whose dependency reran is decided on the new input hashes.
`force` reruns the jobs asked for (the `only` jobs, or all); what they need is still skipped when up
to date, so `--only compare --force` re-renders the comparison without retraining three models.

Training jobs resume: if the run directory holds a state.pt of the same settings (epochs may grow),
the same data, and every checkpoint it should already have written loads, `train(resume=True)`
continues it at the exact batch. A run directory holding a run it cannot continue (other settings, a
damaged or changed checkpoint) is never deleted silently: the job fails saying so, and only --force
removes the old run's files (state.pt, e*.pt, metrics.jsonl, config.json) and starts over.

Locks: the batch holds an flock on out_dir for its whole run (a second batch on the same folder
refuses), and each training holds one on its run directory (pipeline.lock).

Failures. A job's exception is caught: its outcome is "failed" with a one-line reason and the
traceback goes to logs/<job>.log; jobs that need it are "blocked"; independent jobs still run.
Stopping (stop_flag set, e.g. by Ctrl-C in the CLI; or KeyboardInterrupt in the main thread): no new
job starts, renders stop at their next frame batch (their outputs are written to temp files and only
renamed when complete, so nothing partial appears), training stops at its next batch and writes
state.pt, and the manifest records them as "interrupted".

Outcomes: done, skipped (up to date), failed, blocked (a dependency failed or stopped), interrupted,
cancelled (not started because of a stop). BatchResult.exit_code: 0 when every selected job is done or
skipped, 130 when stopped, else 1.
"""
from __future__ import annotations

import json
import re
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pipeline import atomic
from pipeline import __version__
from pipeline.batch.manifest import (MANIFEST_NAME, HashCache, JobStatus, Manifest, check_job, input_hashes,
                                     output_hashes)
from pipeline.batch.graph import forced_jobs, select
from pipeline.batch.records import Job, Preset, rel
from pipeline.batch.train_jobs import train_conflict
from pipeline.errors import UserError
from pipeline.lock import folder_lock
from pipeline.train.run_dir import clear_run
from pipeline.provenance import sidecar_path

LOGS_DIR = "logs"
RESOLVED_NAME = "preset.resolved.json"
OK_STATUSES = ("done", "skipped")
_POLL_S = 0.2          # how often the main thread looks at running jobs and the stop flag
_LOG_EVERY = 0.1       # log a render's progress every 10% of its frames

Event = Callable[[dict], None]


class JobStopped(BaseException):
    """Raised inside a job (from its progress callback) when the batch is asked to stop.

    A BaseException, like KeyboardInterrupt, so no `except Exception` on the way swallows it; the
    renderers' temp-file cleanup runs on any BaseException.
    """


@dataclass
class JobOutcome:
    """What happened to one selected job in this run."""
    name: str
    kind: str
    status: str                     # done | skipped | failed | blocked | interrupted | cancelled
    reason: str = ""                # one line: why it ran, was skipped, failed or was blocked
    seconds: float = 0.0
    log: Path | None = None
    device: str | None = None
    resumed: bool = False           # a train job that continued an interrupted run

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "status": self.status, "reason": self.reason,
                "seconds": round(self.seconds, 3), "log": None if self.log is None else str(self.log),
                "device": self.device, "resumed": self.resumed}


@dataclass
class BatchResult:
    """Every selected job's outcome, in the order they were decided."""
    preset: Path
    out_dir: Path
    manifest: Path
    outcomes: list = field(default_factory=list)

    def outcome(self, name: str) -> JobOutcome:
        return next(o for o in self.outcomes if o.name == name)

    @property
    def statuses(self) -> dict:
        return {o.name: o.status for o in self.outcomes}

    @property
    def ok(self) -> bool:
        return all(o.status in OK_STATUSES for o in self.outcomes)

    @property
    def interrupted(self) -> bool:
        return any(o.status in ("interrupted", "cancelled") for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        if self.ok:
            return 0
        return 130 if self.interrupted else 1

    def to_dict(self) -> dict:
        return {"preset": str(self.preset), "out_dir": str(self.out_dir), "manifest": str(self.manifest),
                "ok": self.ok, "exit_code": self.exit_code, "jobs": [o.to_dict() for o in self.outcomes]}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_devices(text: str | None = "auto", check: bool = True) -> list[str]:
    """"cpu", "auto", "cuda", "cuda:0,cuda:1" -> ["cuda:0", "cuda:1"], each through render's resolve_device;
    check=False (a dry run) only checks the spelling, so a plan can be shown on a machine without CUDA."""
    items = [t.strip().lower() for t in (text or "auto").split(",") if t.strip()]
    if not items:
        raise UserError("--devices is empty; give cpu, auto, cuda or a list such as cuda:0,cuda:1")
    if check:
        from pipeline.render import resolve_device

        return [str(resolve_device(item, "--devices")) for item in items]
    for item in items:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", item):
            raise UserError(f"--devices: unknown device {item!r}; use cpu, auto, cuda or cuda:N, comma-separated "
                            f"(e.g. cuda:0,cuda:1)")
    return ["cuda:0" if item == "cuda" else item for item in items]


# ----------------------------------------------------------------------------- one job's log

class JobLog:
    """logs/<job>.log: appended to on every run, one timestamped line per event."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = atomic.open_append(path)  # never through a link planted at logs/<job>.log

    def __call__(self, message: str) -> None:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        for line in str(message).rstrip("\n").splitlines() or [""]:
            self._f.write(f"{stamp} {line}\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


# ----------------------------------------------------------------------------- job kinds

@dataclass
class _Context:
    preset: Preset
    stop: threading.Event
    emit: Event


def _frames_progress(job: Job, total: int, ctx: _Context, log: JobLog) -> Callable[[int], None]:
    """The renderers' progress(n) callback: forwards frames, logs every 10%, stops the job when asked."""
    state = {"started": False, "done": 0, "logged": 0}
    step = max(1, int(total * _LOG_EVERY))

    def progress(n: int) -> None:
        if ctx.stop.is_set():
            raise JobStopped
        if not state["started"]:
            state["started"] = True
            ctx.emit({"event": "job_total", "job": job.name, "total": total, "unit": "frames"})
            log(f"checks passed; rendering {total} frames")
        if n:
            state["done"] += n
            ctx.emit({"event": "job_advance", "job": job.name, "n": n, "info": ""})
            if state["done"] - state["logged"] >= step or state["done"] >= total:
                state["logged"] = state["done"]
                log(f"frames {state['done']}/{total}")

    return progress


def _input_paths(job: Job, key: str) -> list[Path]:
    return [r.path for r in job.inputs if r.key == key]


def _run_render(job: Job, device: str, ctx: _Context, log: JobLog) -> dict:
    """A walk, still or comparison job through the job-kind registry, on its slot's device."""
    from pipeline.jobs.kinds import render_kind

    kind = render_kind(job.kind)
    if ctx.stop.is_set():
        raise JobStopped
    s = replace(job.settings, device=device)
    job.output.parent.mkdir(parents=True, exist_ok=True)
    progress = _frames_progress(job, kind.frames(s), ctx, log) if job.kind != "still" else None
    if job.kind == "walk" and s.workers > 1:
        log(f"rendering in {s.workers} frame segments (parallel processes), joined without re-encoding")
    return kind.render(_input_paths(job, kind.input_key), job.output, s, progress=progress)


def clear_leftovers(job: Job) -> list[str]:
    """Remove temp files a killed earlier run of this job left beside its outputs; returns their names.

    Renders write `.<output name>.<random>.partial...` (and `.segments` folders, and the same for the
    sidecar) beside the output; they rename them only when complete and remove them on any error or
    signal, but a process killed outright (SIGKILL, power loss) cannot. The batch holds its folder's lock,
    so none is in use. A train job's run directory is cleaned by `train` itself, under that directory's
    own lock (a `train --resume` started by hand may be using it).
    """
    if job.kind == "train":
        return []
    names = {job.output.name, sidecar_path(job.output).name}
    return atomic.clear_temps(job.output.parent, owners=names)


def _run_train(job: Job, device: str, ctx: _Context, log: JobLog, forced: bool, status_code: str) -> tuple[object, bool]:
    """Train (or resume); returns (TrainResult, resumed)."""
    from pipeline.train import train

    cfg = job.settings
    out = Path(cfg.out_dir)
    resume, why, conflict = train_conflict(job, forced, status_code)
    if conflict:
        raise UserError(conflict)
    log(why)
    if not resume:
        removed = clear_run(out)  # only reached when forced, or when there is no earlier run
        if removed:
            log(f"removed the earlier run's {', '.join(removed)} from {out} (--force)")
    log(f"training on {device}")
    state = {"epochs": cfg.epochs}

    def on_event(event: dict) -> None:
        kind = event["event"]
        if kind == "start":
            state["epochs"] = event["epochs"]
            if event.get("note"):
                log(f"note: {event['note']}")
            log(f"{'resuming' if event['resumed'] else 'training'} {cfg.model} on {event['n_images']} images: "
                f"{event['epochs']} epochs x {event['batches_per_epoch']} batches of {cfg.batch_size}")
            ctx.emit({"event": "job_total", "job": job.name, "total": event["total"] - event["done"],
                      "unit": "batches"})
        elif kind == "batch":
            ctx.emit({"event": "job_advance", "job": job.name, "n": 1,
                      "info": f"epoch {event['epoch']}/{state['epochs']}"})
        elif kind == "epoch":
            saved = ", ".join(Path(p).name for p in event["saved"])
            log(f"epoch {event['epoch']} done" + (f"; wrote {saved}" if saved else ""))
        elif kind == "download":
            if event.get("done") == 0:
                log(f"downloading {event['file']}")

    command = ["cppn-video", "batch", str(ctx.preset.path), "--only", job.name]
    result = train(cfg, resume=resume, progress=on_event, stop_flag=ctx.stop, command=command, device=device)
    return result, resume


def local_work(job: Job, device: str, ctx: _Context, log: JobLog, forced: bool, status: JobStatus) -> bool:
    """Do one job's work on this machine (train, or render on `device`); returns whether a train job resumed.

    Raises JobStopped when stopped, or the job's error. The batch's other engine (pipeline.farm) passes
    its own function of this signature to run_batch, and shares everything else.
    """
    if job.kind == "train":
        result, resumed = _run_train(job, device, ctx, log, forced, status.code)
        if result.interrupted:
            raise JobStopped
        return resumed
    _run_render(job, device, ctx, log)
    return False


Work = Callable[[Job, str, _Context, JobLog, bool, JobStatus], bool]


def _execute(job: Job, device: str, inputs: dict, status: JobStatus, forced: bool, ctx: _Context,
             work: Work = local_work) -> tuple:
    """Run one job in a worker thread -> (JobOutcome, manifest entry). Never raises (except JobStopped's kin)."""
    out_dir = ctx.preset.out_dir
    log_path = out_dir / LOGS_DIR / f"{job.name}.log"
    log = JobLog(log_path)
    started, t0 = _now(), time.perf_counter()
    resumed, error, state = False, None, "done"
    try:
        log(f"=== job {job.name} ({job.kind}) on {device}; cppn-video {__version__}; preset {ctx.preset.path}")
        log(f"why: {status.reason}")
        log("settings: " + json.dumps(job.fingerprint(out_dir), sort_keys=True))
        for key, entries in inputs.items():
            for e in entries:
                log(f"input {key}: {e['path']} sha256 {e['sha256']}")
        leftovers = clear_leftovers(job)
        if leftovers:
            log(f"removed temp files of a killed earlier run: {', '.join(leftovers)}")
        resumed = work(job, device, ctx, log, forced, status)
        outputs = output_hashes(job, out_dir, HashCache())
        missing = [k for k, v in outputs.items() if v is None]
        if missing:
            raise RuntimeError(f"the job finished without writing {', '.join(missing)}")
        for k, v in outputs.items():
            log(f"output {k}: sha256 {v}")
    except JobStopped:
        state, error, outputs = "interrupted", "stopped before it finished (rerun to continue)", {}
        log("stopped: " + ("state.pt saved; a rerun resumes it" if job.kind == "train" else "no output written"))
    except Exception as e:  # one job's failure must not stop the others: report it, log the traceback
        outputs = {}
        if ctx.stop.is_set():  # e.g. ffmpeg or a segment worker killed by the same Ctrl-C
            state, error = "interrupted", "stopped before it finished (rerun to continue)"
        else:
            state = "failed"
            text = str(e).strip() if isinstance(e, UserError) else f"{type(e).__name__}: {str(e).strip()}"
            error = (text.splitlines() or [type(e).__name__])[0]
        log(f"{state}: {error}")
        log(traceback.format_exc())
    finally:
        seconds = time.perf_counter() - t0
        log(f"=== {state} after {seconds:.1f} s")
        log.close()
    entry = {
        "kind": job.kind, "status": state, "settings": job.fingerprint(out_dir),
        "runtime": {**job.runtime(), "device": device}, "inputs": inputs, "outputs": outputs,
        "started": started, "finished": _now(), "seconds": round(seconds, 3), "version": __version__,
        "log": rel(log_path, out_dir), "error": error, "resumed": resumed,
    }
    reason = error if error else ("resumed an interrupted run" if resumed else status.reason)
    outcome = JobOutcome(job.name, job.kind, state, reason, seconds, log_path, device, resumed)
    return outcome, entry


# ----------------------------------------------------------------------------- the batch

def write_resolved(preset: Preset) -> Path:
    """preset.resolved.json in out_dir: every job's resolved settings, inputs and outputs."""
    preset.out_dir.mkdir(parents=True, exist_ok=True)
    path = preset.out_dir / RESOLVED_NAME
    data = {**preset.resolved(), "version": __version__, "written": _now()}
    atomic.write_text(path, json.dumps(data, indent=2, default=str) + "\n")
    return path


def _check_preset_kept(preset: Preset) -> None:
    """The files the batch writes for itself (manifest, resolved preset, job logs, lock) never replace the preset
    (its jobs' outputs are checked when it is loaded)."""
    from pipeline.lock import LOCK_NAME
    from pipeline.provenance import check_not_input

    out = preset.out_dir
    for target in [out / MANIFEST_NAME, out / RESOLVED_NAME,
                   out / LOCK_NAME, *(out / LOGS_DIR / f"{name}.log" for name in preset.jobs)]:
        check_not_input(target, [preset.path])


def run_batch(preset: Preset, only=None, force: bool = False, devices: list[str] | None = None,
              progress: Event | None = None, stop_flag: threading.Event | None = None,
              work: Work = local_work) -> BatchResult:
    """Run the selected jobs of a validated preset; returns every job's outcome (see the module doc).

    only: job names; they and everything they need are selected (default: all jobs). force: rerun the
    `only` jobs (or all) even when up to date. devices: e.g. ["cpu"] or ["cuda:0", "cuda:1"] (default:
    parse_devices("auto")); one job runs per device at a time. progress(event) gets dicts with "event":
    "job_start" (job, kind, device, reason), "job_total" (job, total, unit), "job_advance" (job, n,
    info) and "job_end" (job, status, reason, seconds, log); it is called from worker threads too.
    stop_flag: a threading.Event; when set, no new job starts and running ones stop at their next batch.
    work: what does one job (local_work: on this machine; pipeline.farm passes one that runs it on a Ray
    cluster, with one slot per job it may have in flight).
    """
    devices = list(devices) if devices else parse_devices("auto")
    emit = progress or (lambda event: None)
    stop = stop_flag if stop_flag is not None else threading.Event()
    names = select(preset, only)
    forced = forced_jobs(names, only, force)
    _check_preset_kept(preset)
    with folder_lock(preset.out_dir, "--out"):  # a second batch on this folder refuses: one manifest writer
        return _run_locked(preset, names, forced, devices, emit, stop, work)


def _run_locked(preset: Preset, names: list[str], forced: set[str], devices: list[str], emit: Event,
                stop: threading.Event, work: Work = local_work) -> BatchResult:
    out_dir = preset.out_dir
    manifest = Manifest.load(out_dir)  # a damaged manifest stops us before anything runs
    write_resolved(preset)
    (out_dir / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    manifest.data["preset"] = str(preset.path)
    result = BatchResult(preset=preset.path, out_dir=out_dir, manifest=manifest.path)
    ctx = _Context(preset=preset, stop=stop, emit=emit)
    hashes = HashCache()
    outcomes: dict[str, JobOutcome] = {}
    decisions: dict[str, tuple[JobStatus, dict]] = {}
    pending = list(names)
    free = list(devices)
    running: dict = {}

    def finish(outcome: JobOutcome) -> None:
        outcomes[outcome.name] = outcome
        result.outcomes.append(outcome)
        emit({"event": "job_end", "job": outcome.name, "kind": outcome.kind, "status": outcome.status,
              "reason": outcome.reason, "seconds": outcome.seconds,
              "log": None if outcome.log is None else str(outcome.log)})

    def launch_ready(pool) -> None:
        for name in list(pending):
            job = preset.jobs[name]
            if any(d not in outcomes for d in job.deps):
                continue
            bad = [d for d in job.deps if outcomes[d].status not in OK_STATUSES]
            if bad:
                pending.remove(name)
                finish(JobOutcome(name, job.kind, "blocked", f"dependency {bad[0]} {outcomes[bad[0]].status}"))
                continue
            if name not in decisions:
                inputs = input_hashes(job, hashes)
                status = (JobStatus(False, "forced (--force)", "forced") if name in forced
                          else check_job(job, manifest.jobs.get(name), out_dir, hashes, inputs))
                decisions[name] = (status, inputs)
                if status.up_to_date:
                    pending.remove(name)
                    finish(JobOutcome(name, job.kind, "skipped", status.reason))
                    continue
            if not free:
                continue  # later jobs may still be skippable
            device = free.pop(0)
            pending.remove(name)
            status, inputs = decisions[name]
            emit({"event": "job_start", "job": name, "kind": job.kind, "device": device, "reason": status.reason})
            future = pool.submit(_execute, job, device, inputs, status, name in forced, ctx, work)
            running[future] = (name, device)

    def collect(timeout: float | None) -> None:
        done, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            name, device = running.pop(future)
            free.append(device)
            try:
                outcome, entry = future.result()
            except BaseException as e:  # _execute catches everything a job raises; this is a bug guard
                job = preset.jobs[name]
                outcome, entry = JobOutcome(name, job.kind, "failed", f"{type(e).__name__}: {e}"), None
            if entry is not None:
                manifest.jobs[name] = entry
                manifest.data["updated"] = _now()
                manifest.save()  # after every job: a crash loses at most the jobs still running
            finish(outcome)

    with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="cppn-batch") as pool:
        try:
            while pending or running:
                if stop.is_set():
                    for name in pending:
                        finish(JobOutcome(name, preset.jobs[name].kind, "cancelled", "not started: the batch was stopped"))
                    pending.clear()
                else:
                    launch_ready(pool)
                if running:
                    collect(_POLL_S)
                elif pending and not stop.is_set():
                    # Nothing runs and nothing could launch: only possible if the graph were inconsistent.
                    raise RuntimeError(f"jobs {', '.join(pending)} can never start")
        except KeyboardInterrupt:
            # Ctrl-C without a handler (library use), or a second one: stop, let running jobs unwind
            # (they stop at their next batch), record them, then pass the interrupt on.
            stop.set()
            while running:
                collect(None)
            for name in pending:
                finish(JobOutcome(name, preset.jobs[name].kind, "cancelled", "not started: the batch was stopped"))
            raise
    return result
