"""Replay a render from its sidecar: the same checkpoint (checked by SHA-256), keyframes and settings."""
from __future__ import annotations

import json
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from pipeline.checkpoint import Checkpoint, load_checkpoint
from pipeline.errors import UserError
from pipeline.jobs.projected import recorded, recorded_images
from pipeline.jobs.settings import CompareSettings, Progress, StillSettings, WalkSettings
from pipeline.jobs.typecheck import checked_fields, show, toml_type
from pipeline.provenance import check_not_input

WALK_KINDS = ("walk", "classes", "digits", "images")


def read_sidecar(path) -> dict:
    path = Path(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"sidecar {path} does not exist; give the .json written beside a video or still") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable JSON sidecar ({e})") from None
    except RecursionError:  # arrays or objects nested thousands deep: no sidecar is
        raise UserError(f"{path} is not a cppn-video sidecar (its JSON is nested too deep); give the .json "
                        f"written beside a render") from None
    if not isinstance(info, dict) or "kind" not in info or "settings" not in info:
        raise UserError(f"{path} is not a cppn-video sidecar (no kind and settings); give the .json written "
                        f"beside a render")
    return info


def _damaged(path, key: str, want: str, value) -> UserError:
    got = "nothing" if value is None else f"{toml_type(value)} {show(value)}"
    return UserError(f"{path}: {key}: expected {want}, got {got}; the sidecar was "
                     f"edited or damaged: render again instead of replaying", key=key)


def _entry(info: dict, key: str, kind, want: str, path):
    """info[key] checked to be a `kind` (a JSON type; a whole number is never a bool)."""
    value = info.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _damaged(path, key, want, value)
    return value


def _keyframes(info: dict, path) -> np.ndarray:
    """The recorded keyframes: a list of rows of finite numbers, all of one length."""
    rows = info.get("keyframes")
    ok = (isinstance(rows, list) and rows and all(isinstance(r, list) and r and len(r) == len(rows[0]) for r in rows)
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for r in rows for v in r))
    if not ok:
        raise _damaged(path, "keyframes", "rows of numbers, one per keyframe", rows)
    keys = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(keys).all():
        raise _damaged(path, "keyframes", "finite numbers", "NaN or infinity")
    return keys


def _settings(cls, recorded: dict, where: str = "settings", **overrides):
    """A settings record from a sidecar's settings, type-checked as a preset's options are (jobs.typecheck;
    unknown keys from other versions are ignored); the render then validates it as it does the CLI's."""
    values = checked_fields(cls, recorded, where)
    if "pace" in {f.name for f in fields(cls)} and "pace" not in recorded:
        values["pace"] = "none"  # recorded before even pacing existed (and became the default): equal steps
    if "random_keyframes" in {f.name for f in fields(cls)} and "random_keyframes" not in recorded:
        values["random_keyframes"] = True  # recorded before stored digits became the default keyframes
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def _checkpoint(entry: dict, given=None) -> Checkpoint:
    """The recorded checkpoint (or `given`, for one that moved), refused unless its SHA-256 matches."""
    want = entry.get("sha256")
    candidates = [given] if given is not None else [entry.get("path"), entry.get("name")]
    tried = []
    for c in candidates:
        if not c or not isinstance(c, (str, Path)):
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


def soundtrack_beside(rec: dict, sidecar: Path) -> dict:
    """The settings with a relative soundtrack found beside the sidecar when it is not where it was given (a
    render made in its own folder, replayed from elsewhere)."""
    audio = rec.get("audio")
    if isinstance(audio, str) and not Path(audio).is_absolute() and not Path(audio).exists():
        beside = sidecar.parent / audio
        if beside.exists():
            return {**rec, "audio": str(beside)}
    return rec


def check_soundtrack_unchanged(info: dict, rec: dict, sidecar) -> None:
    """A render with a soundtrack replays only with the same sound file (its SHA-256 as recorded)."""
    audio = rec.get("audio")
    if audio is None:
        return
    if not isinstance(audio, str):
        raise _damaged(sidecar, "audio", "a path (a string)", audio)
    recorded = info.get("audio") if isinstance(info.get("audio"), dict) else {}
    from pipeline.audio.decode import sha256_of

    try:
        sha = sha256_of(audio)
    except OSError as e:
        raise UserError(f"the soundtrack this render used, {audio}, cannot be read ({e.strerror}); put it back "
                        f"there to replay", key="audio") from None
    if sha != recorded.get("sha256"):
        raise UserError(f"the soundtrack {audio} is another file now (sha256 {sha[:12]}..., the render used "
                        f"{str(recorded.get('sha256'))[:12]}...); put the original back to replay", key="audio")


def _recorded_rows(info: dict, s: WalkSettings, ck: Checkpoint, sidecar) -> list[int]:
    """The default keyframes' rows in the checkpoint's digit bank as the sidecar records them: a replay renders
    those, not what choosing them again would give now (jobs.keyframes may change)."""
    rows = info.get("digit_bank_rows")
    n = 0 if ck.digit_labels is None else int(ck.digit_labels.shape[0])
    if (not isinstance(rows, list) or len(rows) != s.keyframes
            or not all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < n for r in rows)):
        raise _damaged(sidecar, "digit_bank_rows", f"a list of {s.keyframes} rows of the checkpoint's digit bank "
                       f"(0..{n - 1})", rows)
    return rows


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
    kind = _entry(info, "kind", str, "a string", sidecar)
    if "output" in info:
        _entry(info, "output", str, "a path (a string)", sidecar)
    out = Path(out) if out is not None else default_output(sidecar, info)
    if out.resolve() == Path(info.get("output", "")).resolve():
        raise UserError(f"{out} is the original render; give another -o")
    check_not_input(out, [sidecar])  # the sidecar read is an input too (-o walk.mp4.json would replace it)
    rec = _entry(info, "settings", dict, "a table of settings", sidecar)
    where = f"{sidecar}: settings"
    if kind not in (*WALK_KINDS, "walk grid", "compare", "still", "still grid"):
        raise UserError(f"{sidecar} describes a {kind!r} render, which this version cannot replay")
    rec = soundtrack_beside(rec, sidecar)
    check_soundtrack_unchanged(info, rec, sidecar)
    for key in ("checkpoint",) if kind != "compare" else ():
        _entry(info, key, dict, "a table (sha256, path, name)", sidecar)
    with tempfile.TemporaryDirectory(prefix="cppn-video-replay-") as tmp:
        if kind in WALK_KINDS or kind == "walk grid":
            s = _settings(WalkSettings, rec, where, path=path, device=device)
            if s.keyframes_file is not None and kind != "walk grid":
                # The file may have moved or changed: the recorded keyframes are the ones rendered.
                keys = Path(tmp) / "keyframes.npy"
                np.save(keys, _keyframes(info, sidecar))
                s = _settings(WalkSettings, {**rec, "keyframes_file": str(keys)}, where, path=path, device=device)
            ck = _checkpoint(info["checkpoint"], ckpt)
            if kind == "walk grid":
                shape = _entry(info, "grid", dict, "a table (columns, rows)", sidecar)
                grid = f"{_entry(shape, 'columns', int, 'a whole number', sidecar)}x" \
                       f"{_entry(shape, 'rows', int, 'a whole number', sidecar)}"
                return render_walk_grid(ck, out, s, grid, progress=progress)
            from pipeline.jobs.render import stored_keyframes

            rows = None  # the default keyframes of a checkpoint with a digit bank: the rows recorded
            if kind == "digits" and stored_keyframes(s) and ck.digit_labels is not None:
                rows = _recorded_rows(info, s, ck, sidecar)
            if s.images is not None:  # the recorded projection: never projected again, the images not needed
                with recorded({ck.sha256: (_keyframes(info, sidecar), recorded_images(info, sidecar))}):
                    return run_walk(ck, out, s, progress=progress)
            return run_walk(ck, out, s, progress=progress, rows=rows)  # in segments when the original was
        if kind == "compare":
            s = _settings(CompareSettings, rec, where, path=path, device=device)
            if s.keyframes_file is not None:
                raise UserError("replaying a comparison that read --keyframes-file is not supported; rerun "
                                "compare with the file")
            if ckpt is not None:
                raise UserError("a comparison has several checkpoints; they are found where the sidecar says")
            entries = _entry(info, "checkpoints", list, "a list of checkpoint tables", sidecar)
            if not entries or not all(isinstance(e, dict) for e in entries):
                raise _damaged(sidecar, "checkpoints", "a list of checkpoint tables", entries)
            cks = [_checkpoint(entry) for entry in entries]
            if s.images is not None:  # each panel's recorded projection
                with recorded({ck.sha256: (_keyframes(e, sidecar), recorded_images(e, sidecar))
                               for ck, e in zip(cks, entries)}):
                    return render_compare(cks, out, s, progress=progress)
            return render_compare(cks, out, s, progress=progress)
        if kind == "still":
            s = _settings(StillSettings, rec, where, path=path, device=device)
            ck = _checkpoint(info["checkpoint"], ckpt)
            if s.image is not None:  # the recorded projection
                source = _entry(info, "latent_source", dict, "a table (kind, path, sha256)", sidecar)
                latent = _keyframes({"keyframes": [info.get("latent")]}, sidecar)
                with recorded({ck.sha256: (latent, recorded_images({"images": [source]}, sidecar))}):
                    return render_still(ck, out, s)
            return render_still(ck, out, s)
        if kind == "still grid":
            s = _settings(StillSettings, rec, where, path=path, device=device)
            grid = f"{_entry(info, 'columns', int, 'a whole number', sidecar)}x" \
                   f"{_entry(info, 'rows', int, 'a whole number', sidecar)}"
            seeds = _entry(info, "seeds", list, "a list of whole numbers", sidecar)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in seeds):
                raise _damaged(sidecar, "seeds", "a list of whole numbers", seeds)
            if out.suffix:
                raise UserError(f"a contact sheet is replayed with all its stills; give a folder as -o, not {out}")
            infos = render_stills(_checkpoint(info["checkpoint"], ckpt), out, seeds, s, grid=grid,
                                  progress=progress)
            return infos[-1]
    raise UserError(f"{sidecar} describes a {kind!r} render, which this version cannot replay")
