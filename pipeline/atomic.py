"""Atomic outputs: write beside the target, rename on success, remove on failure (no half-written files)."""
from __future__ import annotations

import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.(partial(\.[^.]*)?|segments|concat\.txt|writetest)$")


def temp_sibling(path: Path, kind: str | None = None) -> Path:
    """A fresh hidden name beside `path`: `.<name>.<8 hex>.partial<suffix>` (ffmpeg and imageio pick formats by
    the suffix), or `.<name>.<8 hex>.<kind>` for kind "segments", "concat.txt" or "writetest"."""
    return Path(path).parent / f".{Path(path).name}.{secrets.token_hex(4)}.{kind or 'partial' + Path(path).suffix}"


def temp_owner(name: str) -> str | None:
    """The output a temp name made by this package belongs to (".w.mp4.1a2b3c4d.partial.mp4" -> "w.mp4"), else None.

    Every temp file or folder the package writes beside an output is named `.<output name>.<8 hex>.<kind>`
    (see temp_sibling); only such names are ever cleaned up, so nothing a user put there is touched.
    """
    m = _TEMP_NAME.match(name)
    return m.group("name") if m else None


def clear_temps(folder: Path, owners=None) -> list[str]:
    """Remove the temp files a killed run left in `folder` (those of the outputs named in `owners`, or all);
    returns their names.

    A run that ends normally, by an error or by a signal removes its own; only SIGKILL or a power cut
    leaves them, and they are never outputs.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in sorted(folder.iterdir()):
        found = temp_owner(p.name)
        if found is not None and (owners is None or found in owners):
            remove(p)
            removed.append(p.name)
    return removed


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, on any exception remove it.

    with atomic_path("a.png") as tmp: imageio.v3.imwrite(tmp, image)
    """
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def write_bytes(path, data: bytes) -> Path:
    """Write bytes atomically (creating the parent directory); files get the usual umask-based mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return path


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
