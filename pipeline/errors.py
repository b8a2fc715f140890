"""The one exception type the CLI turns into a one-line message (no traceback)."""
from __future__ import annotations

from contextlib import contextmanager


class UserError(Exception):
    """Bad input or environment: the message names the problem and the fix.

    key: the setting it is about, when there is one ("frames", "digits"), so a preset can point at its line
    without reading the message.
    """

    def __init__(self, message: str = "", *, key: str | None = None):
        super().__init__(message)
        self.key = key


@contextmanager
def about(key: str):
    """A UserError raised inside (by a parser, a helper) that names no setting is about `key`."""
    try:
        yield
    except UserError as e:
        if e.key is None:
            e.key = key
        raise


_ALLOCATION_WORDS = ("can't allocate memory", "cannot allocate memory", "out of memory", "unable to allocate")


def allocation_failure(exc: BaseException) -> str | None:
    """What ran out, when `exc` is an allocation failure (MemoryError; torch's "DefaultCPUAllocator: can't
    allocate memory: you tried to allocate N bytes" RuntimeError; CUDA out of memory), else None; the preflight
    refuses what it can foresee, this names what it could not."""
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(
            w in str(exc).lower() for w in _ALLOCATION_WORDS)):
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        return first[:200]
    return None
