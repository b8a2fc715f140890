"""manifest.json: what each job last did (settings, input and output SHA-256, time) and whether it is up to date.

Layout (written atomically, temp file + rename, after every job that ran):

    {"format_version": 1, "preset": "/abs/presets/quick.toml", "updated": "2024-...Z",
     "jobs": {"walk_e2": {
         "kind": "walk", "status": "done",               # done | failed | interrupted
         "settings": {...},                              # Job.fingerprint(): compared on every run
         "runtime": {"device": "cpu", ...},              # recorded, never compared
         "inputs": {"ckpt": [{"path": "...", "sha256": "..."}]},
         "outputs": {"walk_e2.mp4": "<sha256>"},         # relative to the manifest's folder
         "started": "...", "seconds": 12.3, "version": "0.1.0", "log": "logs/walk_e2.log",
         "error": null, "resumed": false}}}

A job is up to date when its entry says done, its settings and input hashes equal the current ones,
and every output exists with the recorded SHA-256 (a truncated or edited output -> rerun).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline import atomic
from pipeline.errors import UserError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


class HashCache:
    """SHA-256 of files, remembered per (path, size, mtime) so one run hashes each file once."""

    def __init__(self):
        self._cache: dict[tuple, str] = {}

    def file(self, path: Path) -> str | None:
        """Hex digest of the file's bytes, or None if it is missing."""
        path = Path(path)
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._cache:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    h.update(chunk)
            self._cache[key] = h.hexdigest()
        return self._cache[key]

    def path(self, path: Path) -> str | None:
        """A file's digest; a folder (PNG frames) -> digest over its files' names and digests."""
        path = Path(path)
        if path.is_dir():
            h = hashlib.sha256()
            for p in sorted(q for q in path.rglob("*") if q.is_file()):
                h.update(p.relative_to(path).as_posix().encode() + b"\0" + self.file(p).encode() + b"\n")
            return h.hexdigest()
        return self.file(path)


def data_files(job) -> list[Path]:
    """The IDX files a train job with a data_dir reads (both pairs for split "all"; gz or uncompressed)."""
    from pipeline.data import SPLIT_FILES, find_file

    directory = Path(job.settings.data_dir)
    split = job.settings.resolved().split
    splits = ("train", "test") if split == "all" else (split,)
    found = [find_file(directory, name) for s in splits for name in SPLIT_FILES[s]]
    return [p for p in found if p is not None]


def input_hashes(job, hashes: HashCache) -> dict:
    """key -> [{"path", "sha256"}] for every input file that exists now (sha256 None when missing)."""
    result: dict[str, list] = {}
    for ref in job.inputs:
        if ref.key == "data_dir":
            entries = [{"path": str(p), "sha256": hashes.file(p)} for p in data_files(job)]
        elif ref.path is None:
            entries = [{"path": None, "sha256": None}]
        else:
            entries = [{"path": str(ref.path), "sha256": hashes.path(ref.path)}]
        result.setdefault(ref.key, []).extend(entries)
    return result


def _digests(inputs: dict) -> dict:
    return {k: [e["sha256"] for e in v] for k, v in inputs.items()}


def verified_files(job) -> list[Path]:
    """What the manifest records and checks for a job: its outputs and, for renders, their JSON sidecars
    (a sidecar emptied or edited makes the job out of date like a changed video)."""
    from pipeline.provenance import sidecar_path

    if job.kind == "train":
        return list(job.outputs)
    return [f for p in job.outputs for f in (p, sidecar_path(p))]


def output_hashes(job, out_dir: Path, hashes: HashCache) -> dict:
    """relative path -> sha256 (None when missing) of each output and sidecar."""
    from pipeline.batch.records import rel

    return {rel(p, out_dir): hashes.path(p) for p in verified_files(job)}


@dataclass
class JobStatus:
    up_to_date: bool
    reason: str                  # one line
    code: str                    # never-run | last-failed | settings | inputs | output-missing | output-changed | ok


def _changed_keys(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new), key=lambda k: (k not in new, k))
    diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    text = ", ".join(diffs[:3]) + (f" and {len(diffs) - 3} more" if len(diffs) > 3 else "")
    return text


def check_job(job, entry: dict | None, out_dir: Path, hashes: HashCache, inputs: dict | None = None) -> JobStatus:
    """Is `job` up to date according to its manifest entry? (inputs: precomputed input_hashes.)"""
    from pipeline.batch.records import rel

    if entry is None:
        return JobStatus(False, "never run (no manifest entry)", "never-run")
    if entry.get("status") != "done":
        return JobStatus(False, f"last run {entry.get('status', 'unknown')}", "last-failed")
    settings = job.fingerprint(out_dir)
    if entry.get("settings") != settings:
        return JobStatus(False, f"settings changed: {_changed_keys(entry.get('settings') or {}, settings)}",
                         "settings")
    inputs = input_hashes(job, hashes) if inputs is None else inputs
    old, new = _digests(entry.get("inputs") or {}), _digests(inputs)
    if old != new:
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        missing = [e["path"] for k in changed for e in inputs.get(k, []) if e["sha256"] is None]
        what = f"input {', '.join(changed)} " + ("missing" if missing else "changed")
        return JobStatus(False, what, "inputs")
    recorded = entry.get("outputs") or {}
    for p in verified_files(job):
        key = rel(p, out_dir)
        digest = hashes.path(p) if p.exists() else None
        if digest is None:
            return JobStatus(False, f"output {key} missing", "output-missing")
        if recorded.get(key) != digest:
            return JobStatus(False, f"output {key} changed or truncated (SHA-256 differs from the manifest)",
                             "output-changed")
    when = entry.get("finished") or entry.get("started") or "earlier"
    return JobStatus(True, f"up to date (done {when})", "ok")


class Manifest:
    """The manifest of one output folder; only the runner's main thread writes it."""

    def __init__(self, out_dir: Path, data: dict | None = None):
        self.out_dir = Path(out_dir)
        self.data = data or {"format_version": FORMAT_VERSION, "jobs": {}}

    @property
    def path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    @property
    def jobs(self) -> dict:
        return self.data.setdefault("jobs", {})

    @classmethod
    def load(cls, out_dir) -> "Manifest":
        path = Path(out_dir) / MANIFEST_NAME
        if not path.exists():
            return cls(out_dir)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"{path} cannot be read ({e}); move it away to start the record afresh "
                            f"(every job then reruns)") from None
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
            raise UserError(f"{path} is not a cppn-video batch manifest; move it away or choose another out_dir")
        if data.get("format_version") != FORMAT_VERSION:
            raise UserError(f"{path} has manifest format {data.get('format_version')!r}, this cppn-video "
                            f"writes {FORMAT_VERSION}; move it away (every job then reruns)")
        return cls(out_dir, data)

    def save(self) -> Path:
        """Write atomically: a crash leaves the previous manifest or this one, never half a file."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.data, indent=2, sort_keys=False, allow_nan=False, default=str) + "\n"
        atomic.write_text(self.path, text)
        return self.path


