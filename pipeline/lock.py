"""Exclusive locks on output folders, so two runs never write one run directory or batch folder at once."""
from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.atomic import open_own
from pipeline.errors import UserError

LOCK_NAME = ".cppn-video.lock"


def _open_lock_file(path: Path, folder: Path, what: str, option: str) -> int:
    """The lock file itself, never what a planted link or special file points at (atomic.open_own)."""
    try:
        return open_own(path, os.O_RDWR)
    except OSError as e:
        raise UserError(f"cannot write to {what} {folder} ({e.strerror or e}); choose a writable {option}") from None


@contextmanager
def folder_lock(folder, option: str, what: str = "the output folder") -> Iterator[Path]:
    """Hold an exclusive lock on `folder` (creating it) while the block runs; yields the lock file's path.

    Another process holding it -> UserError naming that process and `option` (the setting to change);
    `what` names the folder in errors.
    The lock is an flock on `<folder>/.cppn-video.lock`, which records who holds it. The kernel releases
    it when the process ends in any way, so a killed run never leaves a stale lock (only the small file,
    which the next run reuses); a run that ends normally or by a signal removes the file.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {what} {folder} ({e.strerror or e}); choose a writable {option}") from None
    while True:
        fd = _open_lock_file(path, folder, what, option)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"{folder} is in use by another cppn-video run ({holder}); wait for it to finish "
                            f"or choose another {option}") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break  # locked the file that is there now (not one its last holder removed meanwhile)
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {command}\n".encode(), 0)
        yield path
    finally:
        try:
            os.unlink(path)  # while still holding it: a waiting process then re-checks and locks a new file
        except OSError:
            pass
        os.close(fd)
