"""Replay a render from its sidecar: the same checkpoint (checked by SHA-256), keyframes and settings."""
from __future__ import annotations

import json
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from pipeline.checkpoint import Checkpoint, load_checkpoint
from pipeline.errors import UserError
from pipeline.jobs.settings import CompareSettings, Progress, StillSettings, WalkSettings

WALK_KINDS = ("walk", "classes", "digits")


def read_sidecar(path) -> dict:
    path = Path(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"sidecar {path} does not exist; give the .json written beside a video or still") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable JSON sidecar ({e})") from None
    if not isinstance(info, dict) or "kind" not in info or "settings" not in info:
        raise UserError(f"{path} is not a cppn-video sidecar (no kind and settings); give the .json written "
                        f"beside a render")
    return info


def _settings(cls, recorded: dict, **overrides):
    """A settings record from a sidecar's settings (unknown keys from other versions are ignored)."""
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in recorded.items() if k in names}
    if "pace" in names and "pace" not in recorded:
        values["pace"] = "none"  # recorded before even pacing existed (and became the default): equal steps
    for key in ("labels",):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def _checkpoint(entry: dict, given=None) -> Checkpoint:
    """The recorded checkpoint (or `given`, for one that moved), refused unless its SHA-256 matches."""
    want = entry.get("sha256")
    candidates = [given] if given is not None else [entry.get("path"), entry.get("name")]
    tried = []
    for c in candidates:
        if not c:
            continue
        try:
            ck = load_checkpoint(c)
        except UserError as e:
            tried.append(f"{c}: {e}")
            continue
        if ck.sha256 == want:
            return ck
        tried.append(f"{c}: another file (sha256 {ck.sha256[:12]}..., the render used {str(want)[:12]}...)")
    raise UserError(f"the checkpoint this render used ({entry.get('name')}, sha256 {str(want)[:12]}...) is not "
                    f"found ({'; '.join(tried) or 'nothing recorded'}); give it with --ckpt")


def default_output(sidecar: Path, info: dict) -> Path:
    """Beside the original: walk.mp4.json -> walk-replay.mp4."""
    original = Path(info.get("output") or sidecar.with_suffix(""))
    name = original.name
    stem, suffix = (name[: -len(original.suffix)], original.suffix) if original.suffix else (name, "")
    return sidecar.parent / f"{stem}-replay{suffix}"


def replay(sidecar, out=None, ckpt=None, path: str | None = None, device: str | None = None,
           progress: Progress | None = None) -> dict:
    """Render again what `sidecar` describes, into `out` (default: <name>-replay<suffix> beside it).

    The frames are identical to the original's when rendered with the same path on the same kind of
    device (an exact-bytes check needs a lossless original); path/device override the recorded ones.
    Returns the new sidecar.
    """
    from pipeline.jobs import render_compare, render_still, render_stills, render_walk_grid
    from pipeline.jobs.kinds import run_walk

    sidecar = Path(sidecar)
    info = read_sidecar(sidecar)
    kind = info["kind"]
    out = Path(out) if out is not None else default_output(sidecar, info)
    if out.resolve() == Path(info.get("output", "")).resolve():
        raise UserError(f"{out} is the original render; give another -o")
    rec = info["settings"]
    with tempfile.TemporaryDirectory(prefix="cppn-video-replay-") as tmp:
        if kind in WALK_KINDS or kind == "walk grid":
            s = _settings(WalkSettings, rec, path=path, device=device)
            if s.keyframes_file is not None and kind != "walk grid":
                # The file may have moved or changed: the recorded keyframes are the ones rendered.
                keys = Path(tmp) / "keyframes.npy"
                np.save(keys, np.asarray(info["keyframes"], dtype=np.float32))
                s = _settings(WalkSettings, {**rec, "keyframes_file": str(keys)}, path=path, device=device)
            ck = _checkpoint(info["checkpoint"], ckpt)
            if kind == "walk grid":
                grid = f"{info['grid']['columns']}x{info['grid']['rows']}"
                return render_walk_grid(ck, out, s, grid, progress=progress)
            return run_walk(ck, out, s, progress=progress)  # in segments, as the original, when it had workers
        if kind == "compare":
            s = _settings(CompareSettings, rec, path=path, device=device)
            if s.keyframes_file is not None:
                raise UserError("replaying a comparison that read --keyframes-file is not supported; rerun "
                                "compare with the file")
            if ckpt is not None:
                raise UserError("a comparison has several checkpoints; they are found where the sidecar says")
            cks = [_checkpoint(entry) for entry in info["checkpoints"]]
            return render_compare(cks, out, s, progress=progress)
        if kind == "still":
            s = _settings(StillSettings, rec, path=path, device=device)
            return render_still(_checkpoint(info["checkpoint"], ckpt), out, s)
        if kind == "still grid":
            s = _settings(StillSettings, rec, path=path, device=device)
            grid = f"{info['columns']}x{info['rows']}"
            if out.suffix:
                raise UserError(f"a contact sheet is replayed with all its stills; give a folder as -o, not {out}")
            infos = render_stills(_checkpoint(info["checkpoint"], ckpt), out, info["seeds"], s, grid=grid,
                                  progress=progress)
            return infos[-1]
    raise UserError(f"{sidecar} describes a {kind!r} render, which this version cannot replay")
