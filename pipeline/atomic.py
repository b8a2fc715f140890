"""Atomic outputs: write beside the target, rename on success, remove on failure (no half-written files)."""
from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.errors import UserError


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.(partial(\.[^.]*)?|segments|concat\.txt|writetest)$")


def temp_sibling(path: Path, kind: str | None = None) -> Path:
    """A fresh hidden name beside `path`: `.<name>.<8 hex>.partial<suffix>` (ffmpeg and imageio pick formats by
    the suffix), or `.<name>.<8 hex>.<kind>` for kind "segments", "concat.txt" or "writetest".

    The process takes a shared lock on the folder first, the first time clearing what killed runs left of
    `path` (see clear_stale), so a temp it makes is never taken for a dead run's leftover while it lives."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.{kind or 'partial' + path.suffix}"
    clear_stale(path)
    folder = os.path.abspath(tmp.parent)
    _OURS.setdefault(folder, set()).add(tmp.name)
    _LAST_USE[folder] = time.monotonic()
    return tmp


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


# ---------------------------------------------------------------- leftovers of killed runs beside an output
#
# Every process that makes a temp name in a folder holds a shared flock on that folder (an open descriptor of
# the folder itself; the kernel drops the lock however the process ends, SIGKILL included). The first time a
# process is about to make a temp for `w.mp4` in a folder, it tries to take that lock exclusively: when it
# gets it, no other live process has a temp there, so any `.w.mp4.<hex>.*` (or `.w.mp4.json.<hex>.*`) is a
# killed run's leftover, and goes; then it keeps the lock shared. When another process holds the folder,
# nothing is removed (a later run will). Age or pids are not used: both mistake a slow or containerised
# live run for a dead one.

_FOLDERS: dict[str, tuple[int, int]] = {}  # folder (absolute) -> (pid, descriptor its shared lock is on)
_OURS: dict[str, set[str]] = {}            # folder -> temp names this process made there
_LAST_USE: dict[str, float] = {}           # folder -> when this process last made a temp name there
# Above this many locked folders, those that hold none of our temps and had no new temp name for a while are
# let go (a long-lived process writing into many folders stays within its descriptors); "a while" covers a
# name given out but not yet created.
_KEEP_FOLDERS = 64
_IDLE_S = 60.0


def _owners(name: str) -> set[str]:
    return {name, name + ".json"}


def _release_idle() -> None:
    for key, (pid, fd) in list(_FOLDERS.items()):
        if (pid == os.getpid() and time.monotonic() - _LAST_USE.get(key, 0.0) > _IDLE_S
                and not any(os.path.lexists(os.path.join(key, n)) for n in _OURS.get(key, ()))):
            os.close(fd)  # drops the lock
            del _FOLDERS[key]
            _OURS.pop(key, None)


def _clear(folder: str, owners: set[str]) -> list[str]:
    prefixes = tuple(f".{o}." for o in owners)
    mine = _OURS.get(folder, set())
    try:
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if e.name.startswith(prefixes))
    except OSError:
        return []
    removed = []
    for name in names:
        if name not in mine and temp_owner(name) in owners:
            remove(Path(folder) / name)
            removed.append(name)
    return removed


def _working_in(folder: Path, owners: set[str]) -> list[str]:
    """Hold this process's shared lock on `folder`; the first time, clear the leftovers of `owners` if no
    other process holds it. Returns the names removed."""
    key = os.path.abspath(folder)
    pid, _ = _FOLDERS.get(key, (None, None))
    if pid == os.getpid():
        return []
    # New here, or a forked child (sharing its parent's descriptor, and so its lock): a descriptor of our own.
    if len(_FOLDERS) >= _KEEP_FOLDERS:
        _release_idle()
    try:
        fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return []  # not there (yet) or unreadable: the caller's own error says so
    removed = []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another live process writes here: its temps may be these
        else:
            removed = _clear(key, owners)
        fcntl.flock(fd, fcntl.LOCK_SH)  # from exclusive: a downgrade, never a gap
    except OSError:
        os.close(fd)
        return removed
    _FOLDERS[key] = (os.getpid(), fd)
    return removed


def clear_stale(path) -> list[str]:
    """Remove what killed runs left beside the output `path` (its temps and its sidecar's), unless this process
    already works in that folder or another live process does; returns the names removed. temp_sibling does
    this before the first temp name it gives out in a folder."""
    path = Path(path)
    return _working_in(path.absolute().parent, _owners(path.name))


# ---------------------------------------------------------------- what may be replaced


def check_replaceable(path, folder_ok: bool = False) -> None:
    """Raise UserError unless `path` is absent, a regular file (or a link to one) or, with folder_ok, a folder:
    a device (/dev/full), a FIFO or a socket at an output's name is never replaced by the rename that publishes
    it (run as root, that rename would turn /dev/full into an MP4)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return  # nothing there, or a dangling link (the rename replaces the link, never its target)
    except OSError as e:
        raise UserError(f"cannot use {path} as an output ({e.strerror or e}); choose another output path") from None
    if stat.S_ISREG(st.st_mode) or (folder_ok and stat.S_ISDIR(st.st_mode)):
        return
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
            or stat.S_ISBLK(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
    raise UserError(f"{path} exists and is {kind}; an output only ever replaces a regular file; choose another "
                    f"output path")


def open_own(path, flags: int) -> int:
    """Open, creating it, a file the package writes in place (a lock, a log, metrics) -> its descriptor; never what
    a link or special file planted at the name points to.

    O_NOFOLLOW refuses a symbolic link at the name (the kernel's ELOOP), O_NONBLOCK keeps a FIFO planted there
    from blocking the open, and the file must be a regular file with no other name (a hard link to another
    file of the user's would be written into). Any of these -> UserError; nothing was written.
    """
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError(f"{path} is a symbolic link, not a file cppn-video made; remove it (nothing it points "
                            f"to was touched)") from None
        if e.errno == errno.ENXIO:  # a FIFO with no reader, a socket
            raise UserError(f"{path} is not a regular file; remove it") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        why = "is not a regular file" if not stat.S_ISREG(st.st_mode) else "has another name (a hard link)"
        raise UserError(f"{path} {why}, so it is not a file cppn-video made; remove it (it was not written to)")
    os.set_blocking(fd, True)
    return fd


def open_append(path, encoding: str = "utf-8"):
    """A text file opened to append to (see open_own)."""
    return os.fdopen(open_own(path, os.O_WRONLY | os.O_APPEND), "a", encoding=encoding)


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
    check_replaceable(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        check_replaceable(path)  # again: it may have changed meanwhile
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
