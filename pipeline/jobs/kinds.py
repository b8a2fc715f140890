"""The registry of render job kinds: for each kind the settings record it is asked with, how its inputs are
named, and the one function that runs it. The batch runner, presets and replay dispatch through it, so a new
job kind (or a control every kind shares) is added here once, not in each of them.

walk: one process, or --workers frame segments joined losslessly (jobs.segments) when its settings ask for
them; still; compare. Train jobs are not renders and live in pipeline.train.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pipeline.jobs.settings import CompareSettings, Progress, StillSettings, WalkSettings


def run_walk(ckpt, out, settings: WalkSettings, progress: Progress | None = None, devices=None, rows=None) -> dict:
    """A walk video as its settings ask: `workers` > 1 renders frame segments in parallel processes (on
    `devices`, one per worker in turn) and joins them without re-encoding; otherwise one render_walk. rows: the
    default keyframes' rows in the checkpoint's digit bank, when already chosen (a replay's recorded ones)."""
    if settings.workers > 1:
        from pipeline.jobs.segments import render_walk_segmented

        return render_walk_segmented(ckpt, out, settings, devices=devices, progress=progress, rows=rows)
    from pipeline.jobs.render import render_walk

    return render_walk(ckpt, out, settings, progress=progress, rows=rows)


def run_still(ckpt, out, settings: StillSettings, progress: Progress | None = None, devices=None) -> dict:
    from pipeline.jobs.render import render_still

    return render_still(ckpt, out, settings)


def run_compare(ckpts, out, settings: CompareSettings, progress: Progress | None = None, devices=None) -> dict:
    from pipeline.jobs.compare import render_compare

    return render_compare(list(ckpts), out, settings, progress=progress)


@dataclass(frozen=True)
class JobKind:
    name: str
    settings: type
    input_key: str                  # the preset key naming its checkpoint(s): ckpt or ckpts
    run: Callable                   # run(ckpt or ckpts, out, settings, progress=None, devices=None) -> sidecar
    sidecar_kinds: tuple[str, ...]  # the `kind` its sidecars record

    def render(self, inputs: list, out, settings, progress: Progress | None = None, devices=None) -> dict:
        """Run a job of this kind on its input checkpoint paths (one for ckpt, all for ckpts)."""
        return self.run(list(inputs) if self.input_key == "ckpts" else inputs[0], out, settings, progress=progress,
                        devices=devices)

    def frames(self, settings) -> int:
        """How many frames a job of this kind renders (1 for a still), for progress."""
        if isinstance(settings, CompareSettings):
            return settings.walk().resolved().frames
        return settings.resolved().frames if hasattr(settings, "resolved") else 1


RENDER_KINDS = {
    "walk": JobKind("walk", WalkSettings, "ckpt", run_walk, ("walk", "classes", "digits", "images")),
    "still": JobKind("still", StillSettings, "ckpt", run_still, ("still",)),
    "compare": JobKind("compare", CompareSettings, "ckpts", run_compare, ("compare",)),
}


def render_kind(name: str) -> JobKind:
    return RENDER_KINDS[name]


def kind_of_sidecar(kind: str) -> JobKind | None:
    """The job kind whose sidecars record `kind` (walk, classes, digits -> walk), or None."""
    return next((k for k in RENDER_KINDS.values() if kind in k.sidecar_kinds), None)
