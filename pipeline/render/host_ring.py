"""A small ring of pinned host buffers that a GPU renderer's uint8 batches land in (issue 26).

`.cpu()` on a CUDA tensor waits for the GPU and copies through the driver's staging buffer into pageable memory:
the renderer stalls for every batch and the bytes are copied twice on the host. Here each batch is copied with
`copy_(non_blocking=True)` into a free slot of page-locked memory, a CUDA event is recorded after the copy, and
the renderer goes straight on to the next batch. Whoever pipes the batch (the video writer's thread) waits on
that slot's event, writes the slot's bytes and releases the slot; a slot is reused only after its release, so
with every slot taken the renderer waits (back-pressure, bounded memory). On the CPU nothing passes through here.

HostBatch is the lease a writer gets: `.array` (a numpy view of the slot, valid until release), `.wait()`,
`.release()` (idempotent). HostRing.abort() frees every slot and wakes a renderer waiting for one.
"""
from __future__ import annotations

import threading
from collections import deque

import torch

_WAKE_S = 0.1  # a waiting put() looks at least this often whether the ring was aborted (as video's writer thread)


class RingAborted(RuntimeError):
    """put() on a ring that was aborted (the render is being torn down)."""


def cuda_event(device: torch.device):
    """A CUDA event recorded on `device`'s current stream, after the copy just issued there."""
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    return event


class HostBatch:
    """One batch in one slot of a HostRing: a lease the writer waits on, pipes and releases."""

    __slots__ = ("_ring", "slot", "tensor", "_event", "_released")

    def __init__(self, ring: "HostRing", slot: int, tensor: torch.Tensor, event):
        self._ring, self.slot, self.tensor, self._event, self._released = ring, slot, tensor, event, False

    @property
    def array(self):
        """The frames [B, H, W] uint8 as a numpy view of the slot (no copy); read it only after wait()."""
        return self.tensor.numpy()

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)

    def __len__(self) -> int:
        return int(self.tensor.shape[0])

    def wait(self) -> None:
        """Block until the device-to-host copy into this slot is done."""
        self._event.synchronize()

    def release(self) -> None:
        """Give the slot back for a later batch (idempotent)."""
        if not self._released:
            self._released = True
            self._ring._release(self.slot)


class HostRing:
    """`slots` reusable host buffers, each as large as the largest batch put in it (pinned when the batch comes
    from a GPU and `pin`). event(device) records and returns what HostBatch.wait() synchronises on: a CUDA event
    (None: cuda_event); tests pass a fake to check the ring's logic on the CPU."""

    def __init__(self, slots: int = 3, pin: bool = True, event=None):
        if int(slots) < 1:
            raise ValueError(f"a host ring needs at least one slot, got {slots}")
        self.slots = int(slots)
        self.pin = bool(pin)
        self._event = event if event is not None else cuda_event
        self._buffers: list[torch.Tensor | None] = [None] * self.slots
        self._free = deque(range(self.slots))  # oldest-released first, so the slots take turns
        self._cond = threading.Condition()
        self._aborted = False

    @property
    def free(self) -> int:
        with self._cond:
            return len(self._free)

    def put(self, frames: torch.Tensor) -> HostBatch:
        """Start copying `frames` (uint8, any device) into a free slot and return its lease at once; waits while
        every slot is taken. Raises RingAborted after abort()."""
        slot = self._acquire()
        try:
            n = frames.numel()
            buf = self._buffers[slot]
            if buf is None or buf.numel() < n:
                buf = torch.empty(n, dtype=frames.dtype, pin_memory=self.pin and frames.is_cuda)
                self._buffers[slot] = buf
            host = buf[:n].view(frames.shape)
            host.copy_(frames, non_blocking=True)
            event = self._event(frames.device)
        except BaseException:
            self._release(slot)
            raise
        return HostBatch(self, slot, host, event)

    def _acquire(self) -> int:
        with self._cond:
            while not self._free and not self._aborted:
                self._cond.wait(timeout=_WAKE_S)  # timed: a signal in the middle of notify must not strand us
            if self._aborted:
                raise RingAborted("the host ring was aborted")
            return self._free.popleft()

    def _release(self, slot: int) -> None:
        with self._cond:
            if slot not in self._free:
                self._free.append(slot)
            self._cond.notify()

    def abort(self) -> None:
        """Every slot free, and a put() waiting for one raises RingAborted (idempotent)."""
        with self._cond:
            self._aborted = True
            self._free = deque(range(self.slots))
            self._cond.notify_all()


def ring_slots(encoders: int) -> int:
    """Slots for a renderer feeding `encoders` writers: one batch being piped per encoder, one being copied and
    one spare, so the renderer waits only when every encoder is behind."""
    return max(1, int(encoders)) + 2
