"""Provenance: every output's JSON sidecar (`<output>.json`: checkpoint hash, settings, latents), published
together with the output, and the rule that an output never replaces one of its inputs."""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from pipeline.atomic import check_replaceable, remove, temp_sibling
from pipeline.errors import UserError


def check_not_input(out, inputs) -> None:
    """Raise UserError (one line) if the output or its sidecar would replace one of the input files.

    inputs: paths (None entries are skipped). Existing files are compared with os.path.samefile (links
    and other spellings of one file), others by their resolved path.
    """
    targets = [Path(out), sidecar_path(out)]
    for src in inputs:
        if src is None:
            continue
        src = Path(src)
        for target in targets:
            same = (os.path.samefile(src, target) if src.exists() and target.exists()
                    else src.resolve() == target.resolve())
            if same:
                raise UserError(f"the output {target} is the input {src}; writing it would destroy the input; "
                                f"choose another output path")


def sidecar_path(video_path) -> Path:
    """Where the sidecar of a video goes: the full name plus .json (walk.mp4 -> walk.mp4.json).

    Appending rather than replacing the suffix keeps walk.mp4 and walk.gif from
    sharing one sidecar, and works for PNG directories (frames -> frames.json).
    """
    p = Path(video_path)
    return p.with_name(p.name + ".json")


def _plain(obj):
    """`obj` as JSON types: arrays and tensors as lists, paths as strings, NaN and infinities as null."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors (without importing torch here)
        return _plain(obj.tolist())
    raise TypeError(f"cannot store a {type(obj).__name__} in a JSON sidecar")


def sidecar_text(info: dict) -> str:
    """The sidecar's JSON text: sorted keys, arrays as lists, non-finite numbers as null (JSON has no NaN)."""
    return json.dumps(_plain(info), sort_keys=True, indent=2, allow_nan=False) + "\n"


def _move_into_place(tmp: Path, path: Path) -> None:
    if not (tmp.is_dir() and path.exists()):
        os.replace(tmp, path)
        return
    # A directory cannot be renamed over a non-empty one: swap the earlier one out, the new one in, then
    # delete the old (the caller has checked that the old one may go: see VideoWriter.close).
    old = temp_sibling(path)
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def publish(tmp, path, sidecar: dict | None = None) -> Path:
    """Move a finished output from its temp name `tmp` to `path`, with `sidecar` written to `<path>.json`.

    Everything that can fail (serialising the sidecar, writing it on a full disk) happens before the
    first rename; on failure `tmp` is removed and the earlier output and sidecar, if any, stay as they
    were. Then the old sidecar is removed, the output and the new sidecar are renamed into place: only
    renames, so a crash in between (SIGKILL, power loss) can leave a new output without a sidecar, but
    never an output beside a sidecar that describes another one.
    """
    tmp, path = Path(tmp), Path(path)
    side_tmp = None
    try:
        # checked when the job started (video.check_writable); again here, as a rename would replace a device,
        # FIFO or socket that appeared meanwhile
        check_replaceable(path, folder_ok=tmp.is_dir())
        check_replaceable(sidecar_path(path))
        if sidecar is not None:
            text = sidecar_text(sidecar)
            side_tmp = temp_sibling(sidecar_path(path))
            with open(side_tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        sidecar_path(path).unlink(missing_ok=True)
        _move_into_place(tmp, path)
        if side_tmp is not None:
            os.replace(side_tmp, sidecar_path(path))
    except BaseException:
        for p in (tmp, side_tmp):
            if p is not None:
                remove(p)
        raise
    return path
