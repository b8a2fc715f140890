"""The records a validated preset is made of: jobs, their inputs, the preset (no validation here: see
pipeline.batch.preset, which builds them)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Settings that choose how a job runs, not what it makes (the frames are the same bytes on every device,
# render path and batch size): they are recorded but never make a completed job rerun.
RUNTIME_FIELDS = ("device", "path", "batch", "workers")


@dataclass(frozen=True)
class InputRef:
    """One input file (or data folder) of a job."""
    key: str                  # the option that names it: ckpt, ckpts, keyframes_file, data_dir
    text: str                 # as written in the preset
    path: Path | None         # absolute; None for a train job's data from the cache
    job: str | None = None    # the job whose output this is ("@job/..." references), else None


@dataclass(frozen=True)
class Job:
    """One validated job: resolved settings, inputs, outputs and dependencies."""
    name: str
    kind: str                     # train, walk, still or compare
    settings: object              # TrainConfig (resolved) / WalkSettings / StillSettings / CompareSettings
    inputs: tuple[InputRef, ...]  # in option order; ckpts keeps its order
    output: Path                  # absolute: a train job's run directory, else the video/image it writes
    outputs: tuple[Path, ...]     # absolute: the files whose hashes say the job is done
    after: tuple[str, ...] = ()   # explicit extra dependencies
    options: dict = field(default_factory=dict)  # the options as written (defaults merged), for display

    @property
    def workers(self) -> int:
        """A walk's frame segments in parallel processes (WalkSettings.workers); 1 for every other kind."""
        return getattr(self.settings, "workers", 1)

    @property
    def deps(self) -> tuple[str, ...]:
        """Jobs that must finish first: referenced producers, then `after`, each once."""
        seen: dict[str, None] = {}
        for ref in self.inputs:
            if ref.job is not None:
                seen.setdefault(ref.job, None)
        for name in self.after:
            seen.setdefault(name, None)
        return tuple(seen)

    def main_output(self) -> Path:
        """What `@job` refers to: a train job's last checkpoint, else its output."""
        return self.outputs[-1] if self.kind == "train" else self.output

    def fingerprint(self, out_dir: Path) -> dict:
        """The settings that decide this job's outputs, as plain values; a change means rerun.

        Runtime-only fields are left out, and paths are written relative to out_dir (outputs) or as
        the preset wrote them (inputs), so moving the whole output folder does not invalidate it.
        Input contents are compared by hash separately.
        """
        if self.kind == "train":
            values = self.settings.to_dict()
            values["out_dir"] = rel(self.output, out_dir)
            values["data_dir"] = self.options.get("data_dir")
        else:
            values = {k: v for k, v in asdict(self.settings).items() if k not in RUNTIME_FIELDS}
            if "labels" in values and values["labels"] is not None:
                values["labels"] = list(values["labels"])
            if values.get("keyframes_file") is not None:
                values["keyframes_file"] = self.options.get("keyframes_file")
            if values.get("audio") is not None:
                values["audio"] = self.options.get("audio")
            values["output"] = rel(self.output, out_dir)
        return json.loads(json.dumps(values))  # as it reads back from manifest.json (tuples -> lists)

    def runtime(self) -> dict:
        """The recorded-but-not-compared settings (see RUNTIME_FIELDS)."""
        if self.kind == "train":
            return {}
        return {k: getattr(self.settings, k) for k in RUNTIME_FIELDS if hasattr(self.settings, k)}


@dataclass(frozen=True)
class Preset:
    """A validated preset: where it came from, where it writes, and its jobs in file order."""
    path: Path                    # the preset file (absolute)
    out_dir: Path                 # absolute
    jobs: dict                    # name -> Job, in file order

    @property
    def name(self) -> str:
        return self.path.name

    def resolved(self) -> dict:
        """Everything the preset resolved to, as plain values (preset.resolved.json)."""
        jobs = {}
        for job in self.jobs.values():
            settings = job.settings.to_dict() if job.kind == "train" else _plain(asdict(job.settings))
            jobs[job.name] = {
                "kind": job.kind, "deps": list(job.deps),
                "inputs": [{"key": r.key, "text": r.text, "path": None if r.path is None else str(r.path),
                            "job": r.job} for r in job.inputs],
                "output": str(job.output), "outputs": [str(p) for p in job.outputs],
                "workers": job.workers, "settings": settings, "options": _plain(job.options),
            }
        return {"preset": str(self.path), "out_dir": str(self.out_dir), "jobs": jobs}


def rel(path: Path, base: Path) -> str:
    """path relative to base when inside it, else absolute (as text, with / separators)."""
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
