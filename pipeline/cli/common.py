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
from pipeline.text import printable

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


ESTIMATE_ABOVE_S = 60.0  # a render projected to take longer says so once its first frame is done
_SINGULAR = {"frames": "frame", "batches": "batch", "stills": "still"}


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = "it", quiet: bool = False,
                 console=None) -> Iterator:
    """A rich progress bar with rate and ETA; yields `advance(n=1, info="")`. Silent when quiet.

    The bar appears at the first call (library code calls `progress(0)` once its checks have passed), so
    a bad input prints its one-line error without a half-drawn bar above it. It fits 80 columns: the
    description is cut to DESCRIPTION_WIDTH characters (keeping its end, usually a file name). When the
    first unit is done and the whole is projected to take over ESTIMATE_ABOVE_S, a line says how long.
    """
    if quiet:
        yield lambda n=1, **kw: None
        return
    import time

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeRemainingColumn)

    from rich.text import Text

    class _WithStatus(Progress):
        """The bar on one line and the latest `info` on its own line below, so neither is cut at 80 columns."""

        def get_renderables(self):
            yield self.make_tasks_table(self.tasks)
            info = self.tasks[0].fields.get("info", "") if self.tasks else ""
            if info:
                text = Text.from_markup(info, overflow="ellipsis")
                text.no_wrap = True
                yield text

    if len(description) > DESCRIPTION_WIDTH:
        description = "…" + description[-(DESCRIPTION_WIDTH - 1):]
    columns = [
        TextColumn("[bold]{task.description}"), BarColumn(bar_width=8), MofNCompleteColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
    ]
    progress = _WithStatus(*columns, console=console or _stderr_console(), transient=False)
    state = {"task": None, "done": 0, "start": 0.0}

    def advance(n: int = 1, info: str = "", **_):
        if state["task"] is None:
            progress.start()
            state["task"] = progress.add_task(description, total=total, rate="", info="")
            state["start"] = time.perf_counter()
        state["done"] += n
        elapsed = max(time.perf_counter() - state["start"], 1e-9)
        if n and not state.get("estimated") and total:
            state["estimated"] = True
            projected = elapsed / state["done"] * total
            if projected > ESTIMATE_ABOVE_S:
                progress.console.print(f"estimate: {_duration(projected)} for {total} {unit} "
                                       f"({elapsed / state['done']:.2f} s per {_SINGULAR.get(unit, unit)})")
        per_s = state["done"] / elapsed
        rate = "" if not state["done"] else f"{per_s:.2f} {unit}/s" if per_s < 100 else f"{per_s:.0f} {unit}/s"
        progress.update(state["task"], advance=n, rate=rate, info=info)

    try:
        yield advance
    finally:
        if state["task"] is not None:
            progress.stop()


def _duration(seconds: float) -> str:
    """3725 -> '1 h 2 min', 95 -> '1 min 35 s'."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
