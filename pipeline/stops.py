"""The signals that stop a run, in one place: Ctrl-C (SIGINT), SIGTERM (kill, a scheduler) and SIGHUP (the
terminal or ssh session closed) are handled alike by every command, its workers included.

A signal the launcher left ignored stays ignored: `nohup` ignores SIGHUP so that a run outlives its
terminal, and a shell's background job starts with SIGINT ignored; Python itself keeps an inherited
SIGINT ignored, and these helpers do the same for the other two."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def stop_name(signum: int) -> str:
    """How a message names the stop: "Ctrl-C", "SIGTERM" or "SIGHUP"."""
    return _NAMES.get(signum, signal.Signals(signum).name)


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def install(handler: Callable, signals=STOP_SIGNALS) -> dict:
    """Set `handler` for each of `signals` not inherited as ignored; returns {signal: previous handler} for
    restore(). Raises ValueError outside the main thread (as signal.signal does)."""
    previous = {}
    for sig in signals:
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue
        previous[sig] = signal.signal(sig, handler)
    return previous


def restore(previous: dict) -> None:
    for sig, old in previous.items():
        if old is not None:
            signal.signal(sig, old)


@contextmanager
def handled(handler: Callable) -> Iterator[bool]:
    """`handler` for every stop signal inside; yields False (and changes nothing) outside the main thread."""
    try:
        previous = install(handler)
    except ValueError:
        yield False
        return
    try:
        yield True
    finally:
        restore(previous)
