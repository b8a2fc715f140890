"""The training loop: epochs of balanced batches, metrics.jsonl, e{epoch}.pt, resumable state.pt."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

import pipeline
from pipeline import atomic
from pipeline.lock import folder_lock
from pipeline.native.heap import keep_freed_memory
from pipeline.checkpoint import atomic_torch_save, read_checkpoint_dict, save_render_checkpoint
from pipeline.coords import grid
from pipeline.devices import describe_device, to_device
from pipeline.data import CROP_SIZE, epoch_batches, load_dataset, random_crops
from pipeline.errors import UserError
from pipeline.train.config import TrainConfig, mismatches
from pipeline.train.health import CollapseMonitor
from pipeline.train.latents import BANK_PER_CLASS, compute_class_latents, compute_digit_bank
from pipeline.train.schedules import SCHEDULE_FUNCTIONS, NonFinite
from pipeline.train.run_dir import (CONFIG_NAME, METRICS_NAME, STATE_NAME, checkpoint_name, checkpoint_paths,
                                    holds_run)
from pipeline.train.state import TrainState, new_state, payload, restore

COORD_SCALE = 8.0  # the article trains with coordinates (and z) scaled by 8
SAVE_EVERY = 600.0  # seconds between periodic state.pt writes (besides every epoch and every stop)

Progress = Callable[[dict], None]


@dataclass
class TrainResult:
    """What a call to `train` did."""
    out_dir: Path
    epoch: int                    # epochs completed
    batches: int                  # batches completed in the whole run
    interrupted: bool             # stopped by stop_flag; state.pt holds the exact position
    checkpoints: list = field(default_factory=list)  # e*.pt written by this call
    state_path: Path | None = None
    metrics_path: Path | None = None
    last: dict = field(default_factory=dict)         # the last metrics row of this call
    note: str = ""                # the data layer's note (e.g. only the test files were found)

    def resume_command(self) -> str:
        return f"cppn-video train --out {self.out_dir} --resume"


def load_train_config(out_dir: str | os.PathLike) -> TrainConfig:
    """The resolved config of the run in out_dir (from its state.pt), e.g. to resume it."""
    data = _read_state(Path(out_dir) / STATE_NAME)
    return TrainConfig.from_dict(data["train_config"])


def _read_state(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"no training state at {path}: nothing to resume; run without --resume to start, "
                        f"or pass the --out of an earlier run")
    data, _ = read_checkpoint_dict(path)
    if data["kind"] != "train" or "train_config" not in data:
        raise UserError(f"{path} is a render checkpoint, not a training state; it cannot be resumed")
    return data


def _stop_checker(stop_flag) -> Callable[[], bool]:
    if stop_flag is None:
        return lambda: False
    if hasattr(stop_flag, "is_set"):  # threading.Event
        return stop_flag.is_set
    if callable(stop_flag):
        return lambda: bool(stop_flag())
    raise TypeError("stop_flag must be a callable or a threading.Event")


def _check_fresh(out: Path) -> None:
    if holds_run(out):
        raise UserError(f"{out} already holds a training run; pass --resume to continue it, "
                        f"or choose another --out")


def _check_resume(data: dict, cfg: TrainConfig, path: Path) -> None:
    saved = TrainConfig.from_dict(data["train_config"])
    diffs = mismatches(saved, cfg)
    if diffs:
        raise UserError(f"cannot resume {path} with different settings ({'; '.join(diffs)}); "
                        f"resume with the run's own settings (cppn-video train --out DIR --resume)")
    done = data["position"]["epoch"]
    if done > cfg.epochs:
        raise UserError(f"{path} is already at epoch {done}, past --epochs {cfg.epochs}; pass --epochs {done} or more")
    early = [e for e in cfg.save_at if e <= done and not (path.parent / checkpoint_name(e)).exists()]
    if early:
        raise UserError(f"--save-at {','.join(map(str, early))}: the run in {path.parent} is already past "
                        f"epoch {done}, so those checkpoints cannot be written now")


def _check_same_data(data: dict, dataset, path: Path) -> None:
    saved = data["meta"].get("dataset", {})
    if saved.get("files") != dataset.files or saved.get("n_images") != len(dataset):
        raise UserError(f"the data differs from the run in {path.parent} (files or image count changed); "
                        f"resume with the same --data, --dataset and --limit")


def _bank_source(cfg: TrainConfig, dataset):
    """Images and labels for the digit bank: the test split when there is one (held out for prev), else the data."""
    try:
        test = load_dataset(cfg.dataset, cfg.data_dir, split="test", download=False)
        return test.images, test.labels, f"first {BANK_PER_CLASS} test digits of each class"
    except UserError:
        return dataset.images, dataset.labels, f"first {BANK_PER_CLASS} training digits of each class (no test split)"


def _meta(st: TrainState, dataset, command: list, missing: list) -> dict:
    cfg = st.cfg
    return {
        "family": cfg.model,
        "hyperparameters": {
            "train": {k: _portable(v) for k, v in cfg.to_dict().items()},
            "encoder": asdict(st.encoder.cfg),
            "classifier": {**asdict(st.classifier.cfg), "channels": list(st.classifier.cfg.channels)},
            "coord_scale": COORD_SCALE,
            "image_size": CROP_SIZE,
        },
        "epoch": st.epoch,
        "batch_in_epoch": st.batch,
        "batches": st.batches,
        "steps": dict(st.steps),
        "images_seen": st.images_seen,
        "dataset": {"name": dataset.name, "split": cfg.split, "files": dict(dataset.files),
                    "n_images": len(dataset), "note": dataset.note},
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "limit": cfg.limit,
        "version": pipeline.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": list(command),
        "train_seconds": round(st.train_seconds, 3),
        "device": describe_device(st.device),  # where this file was written (a resumed run may have moved)
        "class_latents": {"missing_classes": list(missing),
                          "method": "mean encoder mu (eval mode) over center 26x26 crops of each class's images"},
    }


def _portable(text):
    """An absolute path shortened to its last two parts, so no machine's folders are recorded; else as is."""
    if isinstance(text, str) and os.path.isabs(text):
        parts = Path(text).parts
        return str(Path(*parts[-2:])) if len(parts) > 2 else Path(text).name
    return text


def _portable_command(command: list) -> list:
    return [_portable(str(arg)) for arg in command]


def _truncate_metrics(path: Path, keep: int) -> None:
    """Drop metric lines written after the state being resumed (e.g. after a hard abort)."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    if len(lines) != keep:
        atomic.write_text(path, "".join(lines[:keep]))


def train(cfg: TrainConfig, resume: bool = False, progress: Progress | None = None, stop_flag=None,
          command: list | None = None, save_every: float | None = SAVE_EVERY,
          clock: Callable[[], float] = time.monotonic, device: torch.device | str = "cpu",
          cuda_graphs: bool = False) -> TrainResult:
    """Train one model as the article describes; see TrainConfig for every setting.

    Writes into cfg.out_dir: config.json (resolved settings), metrics.jsonl (one line per
    batch), e{epoch}.pt at each save_at epoch and the last, and state.pt at the end of
    every epoch and when stopped. resume: continue from state.pt at the exact batch
    (bit-identical to an uninterrupted run). progress(event dict) is called with
    event "start", "batch", "epoch" and "download". stop_flag (callable or
    threading.Event) is checked between batches; when set, state.pt is written and
    the result has interrupted=True. command: the CLI arguments to record in meta.
    save_every: also write state.pt when this many seconds of `clock` have passed since the
    last write (None: only at epochs and stops), so a hard kill loses at most that much.
    Each batch row carries "collapse" when training shows signs of saturating (see health.py),
    and a "collapse" progress event is emitted.
    Raises UserError for bad settings, bad data and a NaN/inf loss.
    Makes the process keep freed memory for reuse (pipeline.native.heap: ~1.6x faster steps for prev).
    device: where the models train ("cpu", "cuda", "cuda:N"); the data, its order and the z noise stay on
    the CPU, so a run's batches do not depend on it, and state.pt holds CPU tensors only, so a run saved on
    one device resumes on any other (with that device's arithmetic from then on).
    cuda_graphs: replay each kind of step as a CUDA graph (train.graphs; CUDA only, checked against the plain
    step at its first capture, which it falls back to with a warning).
    """
    cfg = cfg.resolved()
    device = torch.device(device)
    if cuda_graphs:
        from pipeline.train.graphs import require_cuda

        require_cuda(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions
    keep_freed_memory()
    out = Path(cfg.out_dir)
    state_path, metrics_path = out / STATE_NAME, out / METRICS_NAME
    # The command that reproduces the run from scratch (a resume continues it exactly, so it is the same).
    command = _portable_command(command if command else cfg.command_line())
    saved = None
    if resume:
        saved = _read_state(state_path)
        _check_resume(saved, cfg, state_path)
    elif out.exists():
        _check_fresh(out)
    emit = progress or (lambda event: None)
    should_stop = _stop_checker(stop_flag)

    def on_download(name, done, total):
        emit({"event": "download", "file": name, "done": done, "total": total})

    dataset = load_dataset(cfg.dataset, cfg.data_dir, split=cfg.split, limit=cfg.limit, progress=on_download)
    if saved is not None:
        _check_same_data(saved, dataset, state_path)
    n, bs = len(dataset), cfg.batch_size
    if n < bs:
        raise UserError(f"batch size {bs} is larger than the {n:,} training images; pass --batch-size {n} or less")
    n_batches = n // bs  # the original's int(n / batch_size): every batch full, the remainder skipped
    coords = grid(CROP_SIZE, CROP_SIZE, COORD_SCALE).to(device)  # [676, 3]
    bank_images, bank_labels, bank_source = _bank_source(cfg, dataset)
    step_fn = SCHEDULE_FUNCTIONS[cfg.model]

    # One process per run directory: a second train (or batch job) on it refuses instead of interleaving.
    with folder_lock(out, "--out", "the run directory"):
        atomic.clear_temps(out)  # what a killed earlier run could not remove
        for target in (*checkpoint_paths(out, cfg), state_path, metrics_path, out / CONFIG_NAME):
            atomic.check_replaceable(target)  # a FIFO or device planted there: refused now, not after an epoch
        atomic.write_text(out / CONFIG_NAME, json.dumps(
            {"config": cfg.to_dict(), "command": command, "version": pipeline.__version__, "resumed": resume},
            indent=2) + "\n")

        # The run seeds and uses the global RNG (init, dropout); fork it so the caller's stream is untouched.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            st = restore(cfg, saved, device) if saved is not None else new_state(cfg, device)
            if cuda_graphs:
                from pipeline.train.graphs import StepGraphs

                st.graphs = StepGraphs()
            saved = None  # free the loaded tensors
            _truncate_metrics(metrics_path, st.metrics_lines)
            result = TrainResult(out_dir=out, epoch=st.epoch, batches=st.batches, interrupted=False,
                                 state_path=state_path, metrics_path=metrics_path, note=dataset.note)
            emit({"event": "start", "epochs": cfg.epochs, "batches_per_epoch": n_batches, "n_images": n,
                  "done": st.epoch * n_batches + st.batch, "total": cfg.epochs * n_batches,
                  "epoch": st.epoch, "batch": st.batch, "resumed": resume, "note": dataset.note, "config": cfg})

            def snapshot():
                """(class latents, digit bank, meta) of the current weights."""
                latents, missing = compute_class_latents(st.encoder, dataset.images, dataset.labels)
                meta = _meta(st, dataset, command, missing)
                meta["digit_bank"] = {"source": bank_source, "per_class": BANK_PER_CLASS}
                return latents, compute_digit_bank(st.encoder, bank_images, bank_labels), meta

            last_save = [clock()]

            def save_state(snap=None) -> None:
                latents, bank, meta = snap or snapshot()
                atomic_torch_save(payload(st, latents, meta, bank), state_path)
                last_save[0] = clock()

            monitor = CollapseMonitor(n_batches)

            with atomic.open_append(metrics_path) as metrics_file:  # never through a planted link
                while st.epoch < cfg.epochs:
                    if st.order is None:
                        st.order = torch.stack(epoch_batches(n, bs, st.data_rng)[:n_batches])  # [n_batches, bs]
                        st.batch = 0
                    while st.batch < n_batches:
                        if should_stop():
                            save_state()
                            result.interrupted = True
                            result.epoch, result.batches = st.epoch, st.batches
                            return result
                        idx = st.order[st.batch]  # [bs]
                        real = to_device(random_crops(dataset.images[idx], st.data_rng), device)  # [bs, 26, 26]
                        labels = to_device(dataset.labels[idx], device)  # [bs]
                        t0 = time.perf_counter()
                        try:
                            m = step_fn(st, real, labels, coords)
                        except NonFinite as e:
                            raise UserError(_nan_message(e.what, st, state_path)) from None
                        dt = time.perf_counter() - t0
                        st.batch += 1
                        st.batches += 1
                        st.images_seen += bs
                        st.train_seconds += dt
                        for k, v in m["steps"].items():
                            st.steps[k] = st.steps.get(k, 0) + v
                        row = {"epoch": st.epoch + 1, "batch": st.batch, "batches": st.batches, **m,
                               "time": round(dt, 4)}
                        warning = monitor.check(row)
                        if warning:
                            row["collapse"] = warning
                        metrics_file.write(json.dumps(row) + "\n")
                        metrics_file.flush()
                        st.metrics_lines += 1
                        result.last = row
                        emit({"event": "batch", "epoch": st.epoch + 1, "batch": st.batch,
                              "batches_per_epoch": n_batches, "metrics": row})
                        if warning:
                            emit({"event": "collapse", "message": warning, "epoch": st.epoch + 1, "batch": st.batch})
                        if save_every is not None and clock() - last_save[0] >= save_every and st.batch < n_batches:
                            save_state()
                            emit({"event": "saved", "state": state_path, "epoch": st.epoch + 1, "batch": st.batch})
                    st.epoch += 1
                    st.order, st.batch = None, 0
                    snap = snapshot()
                    written = []
                    if st.epoch in cfg.save_at or st.epoch == cfg.epochs:
                        path = out / checkpoint_name(st.epoch)
                        save_render_checkpoint(path, st.generator, snap[0], snap[2], snap[1])
                        written.append(path)
                        result.checkpoints.append(path)
                    save_state(snap)
                    emit({"event": "epoch", "epoch": st.epoch, "saved": written, "state": state_path})
            result.epoch, result.batches = st.epoch, st.batches
            return result


def _nan_message(what: str, st: TrainState, state_path: Path) -> str:
    where = f"epoch {st.epoch + 1} batch {st.batch + 1}"
    if state_path.exists():
        try:
            pos = read_checkpoint_dict(state_path)[0]["position"]
            last = f"last good checkpoint: {state_path} (after epoch {pos['epoch']}, batch {pos['batch']})"
        except UserError:
            last = f"last good checkpoint: {state_path}"
    else:
        last = "no checkpoint was written yet (state.pt is written at the end of each epoch)"
    return (f"{what} became NaN or infinite at {where}; training stopped without saving these weights; "
            f"{last}; resuming would repeat the same steps, so try another --seed")
