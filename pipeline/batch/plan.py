"""The dry-run plan: which selected jobs would run, and why."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.batch.graph import forced_jobs, select


@dataclass
class PlanStep:
    """What the runner would do with one job, and why."""
    name: str
    kind: str
    deps: list[str]
    inputs: list[str]             # "key=text" as the preset wrote them (references resolved in `paths`)
    outputs: list[str]            # relative to out_dir where inside it
    action: str                   # "run" or "skip"
    reason: str                   # one line: why it runs, or why it is up to date
    forced: bool = False

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "deps": self.deps, "inputs": self.inputs,
                "outputs": self.outputs, "action": self.action, "reason": self.reason, "forced": self.forced}


def _show_inputs(job) -> list[str]:
    """"key=text" per input as the preset wrote it; a list option (ckpts) as one "key=[a, b]"."""
    grouped: dict[str, list[str]] = {}
    for r in job.inputs:
        grouped.setdefault(r.key, []).append(r.text)
    return [f"{k}=[{', '.join(v)}]" if k == "ckpts" else f"{k}={v[0]}" for k, v in grouped.items()]


def make_plan(preset, only=None, force: bool = False) -> list[PlanStep]:
    """Predict, without running anything, which selected jobs would run and why (the dry run).

    A job runs when forced, when its own outputs/settings/inputs do not match the manifest, or when a
    job it needs will run (its inputs will then be new files; at run time the decision is made again
    with their actual hashes).
    """
    from pipeline.batch.manifest import HashCache, Manifest, check_job
    from pipeline.batch.records import rel

    names = select(preset, only)
    forced = forced_jobs(names, only, force)
    manifest = Manifest.load(preset.out_dir)
    hashes = HashCache()
    steps: list[PlanStep] = []
    will_run: set[str] = set()
    for name in names:
        job = preset.jobs[name]
        running = []
        if name in forced:
            action, reason = "run", "forced (--force)"
        else:
            running = [d for d in job.deps if d in will_run]
            if running:
                action, reason = "run", f"needs {', '.join(running)}, which will run first"
            else:
                status = check_job(job, manifest.jobs.get(name), preset.out_dir, hashes)
                action, reason = ("skip" if status.up_to_date else "run"), status.reason
        if action == "run":
            will_run.add(name)
            if job.kind == "train" and name not in forced:
                from pipeline.batch.train_jobs import train_conflict

                conflict = train_conflict(job, False, status.code if not running else "")[2]
                if conflict:
                    reason += f"; WILL FAIL: {conflict}"
        steps.append(PlanStep(
            name=name, kind=job.kind, deps=list(job.deps),
            inputs=_show_inputs(job),
            outputs=[rel(p, preset.out_dir) for p in job.outputs],
            action=action, reason=reason, forced=name in forced))
    return steps
