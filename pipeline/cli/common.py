"""Shared CLI plumbing: one-line errors, progress bars, JSON output."""
from __future__ import annotations

import errno
import json
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator

import click

from pipeline import stops
from pipeline.errors import UserError, allocation_failure
from pipeline.text import close_matches, printable

DESCRIPTION_WIDTH = 24  # with the bar, counts, rate and ETA: within 80 columns up to 100,000 frames


# A full disk or quota is the user's to fix, not a bug: one line. Outputs are written to temp files and
# renamed only when complete, so "nothing was written" holds wherever such an error can surface.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def run_cli(group: click.Group) -> None:
    """Run the click group; a UserError becomes `error: ...` on one line and exit code 1.

    SIGTERM and SIGHUP are handled like Ctrl-C (pipeline.stops): they raise KeyboardInterrupt in the main
    thread, so every command unwinds through the same cleanup (temporary outputs removed, ffmpeg and
    workers stopped) and exits 130. Commands that stop gracefully (train, batch) install their own handler
    for all three.
    """
    warnings.formatwarning = _one_line_warning
    try:
        stops.install(stops.raise_keyboard_interrupt)
    except ValueError:  # not the main thread: leave the signals alone
        pass
    try:
        code = group.main(standalone_mode=False)
    except click.exceptions.Abort:  # click turns Ctrl-C (KeyboardInterrupt) into Abort
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if isinstance(exc, (click.NoSuchOption, click.exceptions.NoSuchCommand)) and exc.possibilities:
            name = exc.option_name if isinstance(exc, click.NoSuchOption) else exc.command_name
            exc.possibilities = close_matches(name, exc.possibilities)  # click's own are any 0.6 alike
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"error: {printable(exc, keep_newlines=True)}", err=True)  # it may quote a file's text
        sys.exit(1)
    except RecursionError:  # a file or request nested thousands deep, reaching code that walks it
        click.echo("error: the input is nested too deep to read (thousands of levels of lists or tables); no "
                   "file cppn-video writes is: give one it wrote (nothing was written)", err=True)
        sys.exit(1)
    except (MemoryError, RuntimeError) as exc:
        what = allocation_failure(exc)
        if what is None:
            raise
        detail = f" ({printable(what)})" if what else ""
        click.echo(f"error: out of memory{detail}; give a smaller --size, --batch or --frames (or --keyframes), "
                   f"or free memory (nothing was written)", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        click.echo(f"error: {exc.strerror or exc}{where}; free some space or choose another output path "
                   f"(nothing was written)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


@contextmanager
def stop_on_interrupt(event, message: str):
    """Graceful stops for long commands (train, batch): the first stop signal (Ctrl-C, SIGTERM, SIGHUP) sets
    `event` and prints "<Ctrl-C|SIGTERM|SIGHUP>: <message>"; the work stops at its next step and saves or
    records what it has; a second signal raises KeyboardInterrupt (abort). Outside the main thread the
    signals are left alone."""
    def handler(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        try:
            click.echo(f"\n{stops.stop_name(signum)}: {message}", err=True)
        except OSError:  # SIGHUP: the terminal this would print to may be gone
            pass

    with stops.handled(handler):
        yield


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


ESTIMATE_ABOVE_S = 60.0  # a render projected to take longer says so once its warm-up is behind it
PLAIN_EVERY_S = 10.0     # not on a terminal (nohup, ssh, batch logs): a plain progress line at least this often
_SINGULAR = {"frames": "frame", "batches": "batch", "stills": "still"}


class _Pace:
    """Rate and ETA of work done in steps, measured after its first step: the first batch carries the warm-up
    (kernel compilation, first allocations, ffmpeg starting), which made estimates 3-8x too long. Until a
    second step is done the rate is the first step's and no estimate is made."""

    def __init__(self, total: int | None, clock):
        self.total, self.clock = total, clock
        self.start = clock()
        self.done = 0
        self.first: tuple[float, int] | None = None  # (time, units) when the first step finished

    def advance(self, n: int) -> None:
        self.done += n
        if n and self.first is None:
            self.first = (self.clock(), self.done)

    def warm(self) -> bool:
        return self.first is not None and self.done > self.first[1]

    def per_s(self) -> float | None:
        """Units per second after warm-up (the first step's own rate until then); None before any."""
        now = self.clock()
        if self.warm():
            t, d = self.first
            return (self.done - d) / max(now - t, 1e-9)
        if self.first is not None:
            return self.done / max(self.first[0] - self.start, 1e-9)
        return None

    def eta(self) -> float | None:
        rate = self.per_s()
        if rate is None or not self.total:
            return None
        return max(self.total - self.done, 0) / max(rate, 1e-12)

    def rate_text(self, unit: str) -> str:
        rate = self.per_s()
        if rate is None:
            return ""
        return f"{rate:.2f} {unit}/s" if rate < 100 else f"{rate:.0f} {unit}/s"

    def eta_text(self) -> str:
        eta = self.eta()
        return "-:--:--" if eta is None else _clock(eta)


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = "it", quiet: bool = False,
                 console=None, clock=None) -> Iterator:
    """A rich progress bar with rate and ETA; yields `advance(n=1, info="")`. Silent when quiet.

    The bar appears at the first call (library code calls `progress(0)` once its checks have passed), so
    a bad input prints its one-line error without a half-drawn bar above it. It fits 80 columns: the
    description is cut to DESCRIPTION_WIDTH characters (keeping its end, usually a file name). Rate and ETA
    are measured after the first step (_Pace), the ETA from that same rate. When the second step is done and
    the whole is projected to take over ESTIMATE_ABOVE_S, a line says how long. When the console is not a
    terminal, where rich draws nothing until the end, a plain line with the count, rate and ETA is printed at
    least every PLAIN_EVERY_S seconds. clock: the time source (tests pass a fake one).
    """
    if quiet:
        yield lambda n=1, **kw: None
        return
    import threading
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn

    from rich.text import Text

    clock = clock or time.perf_counter

    class _WithStatus(Progress):
        """The bar on one line and the latest `info` on its own line below, so neither is cut at 80 columns."""

        def get_renderables(self):
            yield self.make_tasks_table(self.tasks)
            info = self.tasks[0].fields.get("info", "") if self.tasks else ""
            if info:
                text = Text.from_markup(info, overflow="ellipsis")
                text.no_wrap = True
                yield text

    full_description = description
    if len(description) > DESCRIPTION_WIDTH:
        description = "…" + description[-(DESCRIPTION_WIDTH - 1):]
    columns = [
        TextColumn("[bold]{task.description}"), BarColumn(bar_width=8), MofNCompleteColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"), TextColumn("ETA {task.fields[eta]}"),
    ]
    progress = _WithStatus(*columns, console=console or _stderr_console(), transient=False)
    plain = not progress.console.is_terminal
    state = {"task": None, "pace": None, "estimated": False, "printed": 0.0}
    lock = threading.Lock()
    stop = threading.Event()

    def plain_line() -> None:
        pace = state["pace"]
        count = f"{pace.done}/{pace.total}" if pace.total else f"{pace.done}"
        share = f" ({100 * pace.done / pace.total:.0f}%)" if pace.total else ""
        rate = pace.rate_text(unit) or "measuring"
        eta = pace.eta()
        progress.console.print(f"{full_description}: {count} {unit}{share}, {rate}"
                               f"{'' if eta is None else ', ETA ' + _duration(eta)}", highlight=False)
        state["printed"] = clock()

    def ticker() -> None:  # a batch can take longer than PLAIN_EVERY_S: the line must not wait for it
        while not stop.wait(0.5):
            with lock:
                if clock() - state["printed"] >= PLAIN_EVERY_S - 1:  # polled twice a second: never over 10 s
                    plain_line()

    def advance(n: int = 1, info: str = "", **_):
        with lock:
            if state["task"] is None:
                progress.start()
                state["pace"] = _Pace(total, clock)
                state["task"] = progress.add_task(description, total=total, rate="", eta="-:--:--", info="")
                state["printed"] = clock()
                if plain:
                    threading.Thread(target=ticker, daemon=True).start()
            pace = state["pace"]
            pace.advance(n)
            if n and pace.warm() and not state["estimated"] and total:
                state["estimated"] = True
                projected = (clock() - pace.start) + pace.eta()
                if projected > ESTIMATE_ABOVE_S:
                    progress.console.print(f"estimate: {_duration(projected)} for {total} {unit} "
                                           f"({1 / pace.per_s():.2f} s per {_SINGULAR.get(unit, unit)} after "
                                           f"warm-up)", highlight=False)
            progress.update(state["task"], advance=n, rate=pace.rate_text(unit), eta=pace.eta_text(), info=info)
            if plain and clock() - state["printed"] >= PLAIN_EVERY_S - 1:
                plain_line()

    try:
        yield advance
    finally:
        stop.set()
        if state["task"] is not None:
            progress.stop()


def _clock(seconds: float) -> str:
    """3725 -> '1:02:05', as rich's TimeRemainingColumn shows it."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _duration(seconds: float) -> str:
    """3725 -> '1 h 2 min', 95 -> '1 min 35 s'."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
