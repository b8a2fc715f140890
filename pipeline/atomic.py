"""Atomic outputs: write beside the target, rename on success, remove on failure (no half-written files)."""
from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temp_sibling(path: Path) -> Path:
    """A fresh hidden name beside `path` keeping its suffix (ffmpeg and imageio pick formats by it)."""
    return path.parent / f".{path.name}.{secrets.token_hex(4)}.partial{path.suffix}"


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
