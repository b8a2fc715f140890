"""`cppn-video batch PRESET --ray [ADDRESS]`: the local batch's planning, skipping and manifest, with each
job's work done on a Ray cluster (pipeline.farm.work.FarmWork)."""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

import ray

from pipeline import stops
from pipeline.batch.runner import BatchResult, run_batch
from pipeline.errors import UserError
from pipeline.farm.tasks import ProgressBox
from pipeline.farm.work import FarmWork

LOCAL = "local"           # --ray without an address: start a Ray instance on this machine for this run
MAX_IN_FLIGHT = 64        # jobs the driver has submitted at once (Ray queues their tasks on its resources)
_DRAIN_S = 0.2


@contextmanager
def connected(address: str | None) -> Iterator[bool]:
    """Connect to the cluster at `address` (LOCAL or None: start one here, shut down afterwards); a driver
    already connected (ray.init called by the caller, as the tests do) is used as it is. Yields whether
    this call started or joined the connection."""
    if ray.is_initialized():
        yield False
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        with _own_signal_handlers():
            if address in (None, LOCAL):
                # "local", not None: ray.init() without an address joins any Ray instance already running
                # on this machine (RAY_ADDRESS, /tmp/ray/ray_current_cluster) and dies with it
                ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
    except ConnectionError as e:
        raise UserError(f"--ray {address}: cannot connect to a Ray cluster there ({str(e).splitlines()[0]}); "
                        f"start one with `ray start --head` or check the address") from None
    try:
        yield True
    finally:
        ray.shutdown()


@contextmanager
def _own_signal_handlers() -> Iterator[None]:
    """ray.init replaces the driver's SIGTERM handler with one that aborts the process (no cleanup: tasks keep
    running, the local cluster's processes are orphaned). Put back the handlers the CLI set (a SIGTERM stops
    like Ctrl-C) once it returns."""
    try:
        saved = {sig: signal.getsignal(sig) for sig in stops.STOP_SIGNALS}
    except ValueError:  # not the main thread: nothing of ours to keep
        yield
        return
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def _pump(box, emit, stop: threading.Event) -> None:
    """Forward the tasks' progress events from the ProgressBox to the batch's progress callback."""
    while True:
        done = stop.wait(_DRAIN_S)
        try:
            for event in ray.get(box.drain.remote()):
                emit(event)
        except Exception:  # the cluster going away ends the display, not the batch
            return
        if done:
            return


def run_farm(preset, only=None, force: bool = False, address: str | None = LOCAL, cpus: int = 1,
             progress=None, stop_flag: threading.Event | None = None) -> BatchResult:
    """Run the selected jobs of a validated preset on a Ray cluster; returns what run_batch returns.

    address: LOCAL (a Ray instance started for this run), "auto" or "HOST:PORT" (a running cluster). cpus:
    CPUs a render task asks for where the cluster has no GPU. progress and stop_flag: as run_batch's; the
    events also come from the tasks (job_total, job_advance). Stopping cancels the running tasks; no job
    output is written unless its task finished (outputs are published on the driver, atomically).
    """
    emit = progress or (lambda event: None)
    with connected(address):
        box = ProgressBox.remote()
        work = FarmWork(box, cpus=cpus)
        pumping = threading.Event()
        pump = threading.Thread(target=_pump, args=(box, emit, pumping), name="cppn-farm-progress", daemon=True)
        pump.start()
        try:
            slots = ["ray"] * min(MAX_IN_FLIGHT, max(1, len(preset.jobs)))
            return run_batch(preset, only=only, force=force, devices=slots, progress=emit, stop_flag=stop_flag,
                             work=work)
        finally:
            pumping.set()
            pump.join()
            ray.kill(box)
