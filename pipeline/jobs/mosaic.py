"""Composed frames of several panels (compare, --grid), made where the panels are rendered.

`Mosaic` holds one batch of canvases: the background and captions (a template) drawn once, each batch only
overwriting the panels. The canvas lives on the panels' device: on a GPU the panels are copied into it there, and
the whole composed batch goes to the host once, through the pinned slots of render.host_ring (issue 26); on the
CPU it is the same array the panels were written into before.

`PanelClock` measures each panel's render time per frame. On the CPU a render call returns when its frames are
done, so the host clock measures it. On a GPU the call only queues work, so CUDA events bracket it on the stream;
they are read once done (never waited for while rendering), and `per_frame(wait=True)` waits for the last ones.
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np
import torch


class Mosaic:
    """Canvases [batch, H, W] uint8 holding `template` (the frame without its panels); `place` writes one panel's
    frames [b, h, w] at (x, y) of the first b canvases, and `frames(b)` is those b composed frames. The canvas is
    made on the device of the first panel placed and reused for every batch (on a GPU, work on one stream is
    ordered, so a batch's panels are written only after the copy of the batch before has been made)."""

    def __init__(self, template: np.ndarray, batch: int):
        self.template = np.asarray(template, dtype=np.uint8)  # [H, W]
        self.batch = int(batch)
        self._canvas: torch.Tensor | None = None

    def place(self, frames: torch.Tensor, x: int, y: int) -> None:
        b, h, w = frames.shape
        if self._canvas is None:
            template = torch.from_numpy(np.ascontiguousarray(self.template)).to(frames.device)
            self._canvas = template.expand(self.batch, *template.shape).contiguous()
        self._canvas[:b, y:y + h, x:x + w] = frames

    def frames(self, b: int) -> torch.Tensor:
        """The first b composed frames [b, H, W]: a view of the reused canvas (copy or pipe it before the next
        batch)."""
        return self._canvas[:b]


def timing_event():
    """A CUDA event that records time (PanelClock's default)."""
    return torch.cuda.Event(enable_timing=True)


class PanelClock:
    """Seconds per frame of each of `panels` panels, over the calls timed with `timed` (the caller leaves out the
    first batch, which carries each renderer's warm-up). device: where the panels render; event: what makes a
    timing event on a GPU (tests pass a fake)."""

    def __init__(self, panels: int, device: torch.device, event=None):
        self.gpu = torch.device(device).type == "cuda"
        self._event = event if event is not None else timing_event
        self.spent = [0.0] * panels
        self.frames = [0] * panels
        self._pending: deque = deque()  # (panel, frames, start event, end event), oldest first

    def timed(self, panel: int, frames: int, render):
        """render() timed as `frames` frames of `panel` -> what it returned."""
        if not self.gpu:
            t0 = time.perf_counter()
            out = render()
            self.spent[panel] += time.perf_counter() - t0
            self.frames[panel] += frames
            return out
        start = self._event()
        start.record()
        out = render()
        end = self._event()
        end.record()
        self._pending.append((panel, frames, start, end))
        return out

    def per_frame(self, wait: bool = False) -> list:
        """Each panel's seconds per frame so far (None for a panel with no timed frame yet). On a GPU only calls
        whose events are done count, unless wait (then every timed call is waited for)."""
        while self._pending:
            panel, frames, start, end = self._pending[0]
            if wait:
                end.synchronize()
            elif not end.query():
                break
            self._pending.popleft()
            self.spent[panel] += start.elapsed_time(end) / 1000.0  # ms -> s
            self.frames[panel] += frames
        return [s / f if f else None for s, f in zip(self.spent, self.frames)]
