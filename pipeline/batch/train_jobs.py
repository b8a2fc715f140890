"""What the batch decides about a train job before running it: can it continue the run in its folder, and
would starting afresh delete an earlier run (which only --force may do)."""
from __future__ import annotations

from pipeline.batch.manifest import HashCache, data_files
from pipeline.batch.records import Job
from pipeline.train.run_dir import run_files


def train_conflict(job: Job, forced: bool, status_code: str = "") -> tuple[bool, str, str | None]:
    """For a train job about to run: (resume, why, conflict). conflict is a one-line refusal when the run
    directory holds an earlier run that would have to be deleted without --force, else None."""
    if forced:
        return False, "forced (--force): starting over", None
    if status_code == "output-changed":
        resume, why = False, "a checkpoint changed since this batch wrote it"
    else:
        resume, why = can_resume(job)
    if resume or not run_files(job.output):
        return resume, why, None
    return resume, why, (f"{job.output} holds an earlier training run that this job cannot continue ({why}); "
                         f"it was left untouched: rerun with --force --only {job.name} to replace it, "
                         f"or move it away")


def can_resume(job: Job) -> tuple[bool, str]:
    """Whether the train job's run directory holds an interrupted run this job can continue, and why: the
    run directory's own rules (pipeline.train.run_dir.can_continue), and the same data files by hash."""
    from pipeline.train.run_dir import can_continue

    ok, why, files = can_continue(job.output, job.settings)
    if ok and job.settings.data_dir is not None:
        ours = {p.name: HashCache().file(p) for p in data_files(job)}
        if any(ours.get(name) != digest for name, digest in files.items()):
            return False, "the data files differ from those of the run in state.pt"
    return ok, why
