"""The driver's progress display for a farm run: one rich line per running job, frames per second across the cluster."""
from __future__ import annotations

import threading
import time
from collections import deque

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

_VERB = {"done": "done", "skipped": "skip", "failed": "FAIL", "blocked": "skip", "interrupted": "stop",
         "cancelled": "stop"}
_WINDOW_S = 5.0  # frames per second over the last few seconds


class FarmDisplay:
    """A progress callback for run_farm: job lines (started, finished, why) above a live progress block with a
    line per running job and a "cluster" line with the frames per second of all tasks together."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.lock = threading.Lock()
        self.progress = Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                                 console=self.console, transient=True)
        self.cluster = self.progress.add_task("cluster", total=None, unit="", info="0.0 frames/s")
        self.tasks: dict[str, int] = {}
        self.units: dict[str, str] = {}
        self.recent: deque = deque()  # (time, frames)
        self.frames = 0
        self.t0 = time.monotonic()
        self.progress.start()

    def _fps(self) -> float:
        now = time.monotonic()
        while self.recent and now - self.recent[0][0] > _WINDOW_S:
            self.recent.popleft()
        span = min(_WINDOW_S, now - self.t0)
        return sum(n for _, n in self.recent) / span if span > 0 else 0.0

    def __call__(self, event: dict) -> None:
        with self.lock:
            kind, job = event["event"], event["job"]
            if kind == "job_start":
                self.console.print(f"run  {job} ({event['kind']}) on the cluster: {event['reason']}")
                self.tasks[job] = self.progress.add_task(job, total=None, unit="", info="queued")
            elif kind == "job_total" and job in self.tasks:
                self.units[job] = event["unit"]
                self.progress.update(self.tasks[job], total=event["total"], unit=event["unit"], info="")
            elif kind == "job_advance" and job in self.tasks:
                self.progress.update(self.tasks[job], advance=event["n"], info=event.get("info", ""))
                if self.units.get(job) == "frames":
                    self.frames += event["n"]
                    self.recent.append((time.monotonic(), event["n"]))
            elif kind == "job_end":
                if job in self.tasks:
                    self.progress.remove_task(self.tasks.pop(job))
                status = event["status"]
                tail = (f"in {event['seconds']:.1f} s" if status == "done"
                        else f"{event['reason']}" + (f" (log: {event['log']})" if status in ("failed", "interrupted")
                                                      and event.get("log") else ""))
                self.console.print(f"{_VERB.get(status, status)} {job}{' ' if status == 'done' else ': '}{tail}")
            self.progress.update(self.cluster, completed=self.frames, info=f"{self._fps():.1f} frames/s")

    def close(self) -> None:
        with self.lock:
            self.progress.stop()
        elapsed = time.monotonic() - self.t0
        if self.frames:
            self.console.print(f"cluster: {self.frames} frames in {elapsed:.1f} s "
                               f"({self.frames / elapsed:.1f} frames/s over the run)")
