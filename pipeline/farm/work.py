"""The driver's side of one job on the cluster: send its inputs, submit its tasks, wait, publish the outputs.

FarmWork is the `work` function pipeline.batch.run_batch calls for each job (in one of its threads), so
skipping, the manifest, logs, blocked and cancelled jobs are the local batch's own. It submits a train
job as one task, a render as one task, a walk with `workers = N` as N segment tasks spread over the
nodes (joined here losslessly by the local segmented render's own code); inputs cross once per SHA-256
through the object store; outputs come back as bytes and are published atomically into out_dir.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError, TaskCancelledError

from pipeline import atomic
from pipeline.batch.manifest import HashCache, data_files
from pipeline.batch.runner import JobStopped
from pipeline.errors import UserError
from pipeline.farm.tasks import InputFile, RenderSpec, SegmentSpec, TrainSpec, render_task, segment_task, train_task
from pipeline.provenance import publish

MAX_RETRIES = 2        # a task whose worker or node dies is run again at most this many times
_WAIT_S = 0.2          # how often a job's thread looks at the stop flag while its tasks run
_CANCEL_GRACE_S = 5.0  # after a stop, how long cancelled tasks get to clean up before they are killed
KILL_ENV = "CPPN_FARM_TEST_KILL"  # fault tests: "JOB:TIMES:FOLDER" makes JOB's first task die TIMES times


class Store:
    """Input files in the object store, one object per SHA-256: a checkpoint several jobs read crosses once."""

    def __init__(self):
        self.hashes = HashCache()
        self._refs: dict[str, ray.ObjectRef] = {}
        self._lock = threading.Lock()

    def put(self, path: Path) -> tuple[InputFile, ray.ObjectRef]:
        path = Path(path)
        digest = self.hashes.file(path)
        if digest is None:
            raise UserError(f"input {path} is missing; run the job that writes it, or fix the preset")
        with self._lock:
            if digest not in self._refs:
                self._refs[digest] = ray.put(path.read_bytes())
            return InputFile(str(path), digest), self._refs[digest]


def _kill_hook(job: str) -> tuple | None:
    spec = os.environ.get(KILL_ENV, "")
    parts = spec.split(":", 2)
    if len(parts) == 3 and parts[0] == job:
        return parts[2], int(parts[1])
    return None


def _task_error(e: BaseException) -> BaseException:
    """A task's failure as the one-line error the batch reports (the job's own error where it raised one)."""
    if isinstance(e, RayTaskError):
        cause = e.cause if isinstance(e.cause, BaseException) else None
        if isinstance(cause, UserError):
            return UserError(str(cause))
        if cause is not None:
            return RuntimeError(f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}")
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return RuntimeError(f"{type(e).__name__} after {MAX_RETRIES} retries: {first}")


class FarmWork:
    """run_batch's `work` for a Ray cluster (see the module doc). Resources: with GPUs in the cluster a render
    or train task asks for one GPU, else for `cpus` CPUs (a train task for one)."""

    def __init__(self, box, cpus: int = 1, gpus: bool | None = None):
        self.box = box
        self.cpus = max(1, int(cpus))
        self.gpus = ray.cluster_resources().get("GPU", 0) >= 1 if gpus is None else gpus
        self.store = Store()

    # --------------------------------------------------------------------- common

    def _options(self, cpus: int | None = None, spread: bool = False) -> dict:
        opts = {"max_retries": MAX_RETRIES, "retry_exceptions": False}
        if self.gpus:
            opts.update(num_gpus=1, num_cpus=1)
        else:
            opts.update(num_cpus=cpus or self.cpus)
        if spread:
            opts["scheduling_strategy"] = "SPREAD"
        return opts

    def _wait(self, refs: list, ctx) -> list:
        """Every task's result, in order; stops (cancelling them all) when the batch is asked to stop, and
        on the first failure cancels the others and raises it."""
        results: dict = {}
        pending = list(refs)
        try:
            while pending:
                if ctx.stop.is_set():
                    raise JobStopped
                done, pending = ray.wait(pending, num_returns=1, timeout=_WAIT_S)
                for ref in done:
                    try:
                        results[ref] = ray.get(ref)
                    except TaskCancelledError:
                        raise JobStopped from None
                    except RayError as e:
                        raise _task_error(e) from None
        except BaseException:
            cancel(pending)
            raise
        return [results[r] for r in refs]

    def __call__(self, job, slot, ctx, log, forced, status) -> bool:
        if job.kind == "train":
            return self._train(job, ctx, log, forced, status)
        if job.kind == "walk" and job.workers > 1:
            self._segmented(job, ctx, log)
        else:
            self._render(job, ctx, log)
        return False

    # --------------------------------------------------------------------- renders

    def _render(self, job, ctx, log) -> None:
        inputs, refs = [], []
        for r in job.inputs:
            f, ref = self.store.put(r.path)
            inputs.append((r.key, f))
            refs.append(ref)
        spec = RenderSpec(job.name, job.kind, job.settings, tuple(inputs), str(job.output), _kill_hook(job.name))
        opts = self._options()
        log(f"submitting one {job.kind} task ({_resources(opts)}); inputs cross as {len(refs)} object(s)")
        (result,) = self._wait([render_task.options(**opts).remote(spec, self.box, *refs)], ctx)
        _publish(result["files"], job.output, result["sidecar"])
        log(f"published {job.output.name} and its sidecar")

    def _segmented(self, job, ctx, log) -> None:
        from pipeline.jobs.render import prepare_walk
        from pipeline.jobs.segments import publish_segments, segment_bounds
        from pipeline.video import output_format, probe

        (ref_in,) = [r for r in job.inputs if r.key == "ckpt"]
        s = job.settings
        if output_format(job.output, s.fmt) != "mp4":
            raise UserError(f"segmented rendering joins MP4 files only, but {job.output.name} is not; "
                            f"name the output .mp4 or render with one worker")
        job.output.parent.mkdir(parents=True, exist_ok=True)
        w = prepare_walk(ref_in.path, job.output, s)  # the checks and the whole path, once, here
        s = w.settings
        from pipeline.scene.palette import palette_of

        probe(w.fmt, s.canvas(), fps=s.fps, crf=s.crf, preset=s.preset, lossless=s.lossless,
              palette=palette_of(s))
        bounds = segment_bounds(s.frames, job.workers)
        f, ckpt_ref = self.store.put(w.ck.path)
        latents = ray.put(w.latents)
        opts = self._options(spread=True)
        log(f"submitting {len(bounds)} segment tasks ({_resources(opts)} each), joined here without re-encoding")
        ctx.emit({"event": "job_total", "job": job.name, "total": s.frames, "unit": "frames"})
        kill = _kill_hook(job.name)
        t0 = time.perf_counter()
        refs = [segment_task.options(**opts).remote(
                    SegmentSpec(job.name, i, a, b, s, f, kill if i == 0 else None), self.box, ckpt_ref, latents)
                for i, (a, b) in enumerate(bounds)]
        results = self._wait(refs, ctx)
        tmpdir = atomic.temp_sibling(job.output, "segments")
        try:
            tmpdir.mkdir()
            parts = []
            for i, (data, _) in enumerate(results):
                parts.append(tmpdir / f"segment_{i:03d}.mp4")
                parts[-1].write_bytes(data)
            publish_segments(w, parts, {i: info for i, (_, info) in enumerate(results)}, bounds, t0, tmpdir)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        log(f"joined {len(bounds)} segments into {job.output.name}")

    # --------------------------------------------------------------------- training

    def _train(self, job, ctx, log, forced, status) -> bool:
        from pipeline.batch.train_jobs import train_conflict
        from pipeline.train.run_dir import clear_run, run_files

        cfg = job.settings
        out = Path(cfg.out_dir)
        resume, why, conflict = train_conflict(job, forced, status.code)
        if conflict:
            raise UserError(conflict)
        log(why)
        if not resume:
            removed = clear_run(out)
            if removed:
                log(f"removed the earlier run's {', '.join(removed)} from {out} (--force)")
        data = [self.store.put(p) for p in (data_files(job) if cfg.data_dir is not None else [])]
        run = [self.store.put(p) for p in (run_files(out) if resume else [])]
        if cfg.data_dir is None:
            log("no data_dir: the worker reads its own data cache (downloading MNIST there if needed)")
        command = ("cppn-video", "batch", str(ctx.preset.path), "--only", job.name)
        spec = TrainSpec(job.name, cfg, tuple(f for f, _ in data), tuple(f for f, _ in run), resume, command)
        opts = self._options(cpus=1)
        log(f"submitting one train task ({_resources(opts)}){'; resuming state.pt' if resume else ''}")
        refs = [r for _, r in data] + [r for _, r in run]
        (files,) = self._wait([train_task.options(**opts).remote(spec, self.box, *refs)], ctx)
        out.mkdir(parents=True, exist_ok=True)
        state = [n for n in files if n == "state.pt"]
        for name in [n for n in files if n not in state] + state:  # state.pt last: it says what else is there
            atomic.write_bytes(out / name, files[name])
        log(f"wrote {', '.join(sorted(files))} into {out}")
        return resume


def _resources(opts: dict) -> str:
    return ", ".join(f"{opts[k]:g} {k[4:].upper()}" for k in ("num_gpus", "num_cpus") if k in opts)


def _publish(files: dict, out: Path, sidecar: dict) -> None:
    """Write a task's output (a file, or a folder's files) beside `out` under a temp name, then publish it with
    its sidecar (pipeline.provenance.publish: renames only)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_sibling(out)
    try:
        if set(files) == {""}:
            with open(tmp, "wb") as fh:
                fh.write(files[""])
                fh.flush()
                os.fsync(fh.fileno())
        else:
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
        publish(tmp, out, sidecar)
    except BaseException:
        atomic.remove(tmp)
        raise


def cancel(refs: list) -> None:
    """Cancel tasks: first as KeyboardInterrupt (their scratch folders and ffmpeg are cleaned up), then, for
    those still running after a grace period, by killing their workers."""
    refs = list(refs)
    if not refs:
        return
    for ref in refs:
        ray.cancel(ref, force=False)
    deadline = time.monotonic() + _CANCEL_GRACE_S
    pending = refs
    while pending and time.monotonic() < deadline:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=_WAIT_S)
    for ref in pending:
        try:
            ray.cancel(ref, force=True)
        except (RayError, GetTimeoutError, ValueError):
            pass
