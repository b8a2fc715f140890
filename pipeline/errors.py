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
