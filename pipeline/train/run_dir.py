"""A training run directory: the names of its files, which of them are there, and whether a run can go on
in it. The one place that knows the layout (the training loop, presets and the batch runner ask here)."""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import UserError

STATE_NAME = "state.pt"         # the exact position: weights, optimisers, RNGs, batch order
METRICS_NAME = "metrics.jsonl"  # one JSON row per batch
CONFIG_NAME = "config.json"     # the resolved settings and the command that starts the run
_CHECKPOINT = re.compile(r"^e(\d+)\.pt$")


def checkpoint_name(epoch: int) -> str:
    """The render checkpoint written after `epoch`: e6.pt."""
    return f"e{int(epoch)}.pt"


def checkpoint_epoch(path) -> int | None:
    """6 for .../e6.pt; None for any other name."""
    m = _CHECKPOINT.match(Path(path).name)
    return int(m.group(1)) if m else None


def checkpoint_epochs(cfg) -> list[int]:
    """The epochs after which a run of `cfg` writes a checkpoint: each of save_at, and the last."""
    return sorted(set(cfg.save_at) | {cfg.epochs})


def checkpoint_paths(out, cfg) -> list[Path]:
    return [Path(out) / checkpoint_name(e) for e in checkpoint_epochs(cfg)]


def run_files(out) -> list[Path]:
    """The files of a run in `out` (state.pt, metrics.jsonl, config.json, e<N>.pt); nothing else in it."""
    out = Path(out)
    if not out.is_dir():
        return []
    names = (STATE_NAME, METRICS_NAME, CONFIG_NAME)
    return [p for p in sorted(out.iterdir()) if p.is_file() and (p.name in names or checkpoint_epoch(p) is not None)]


def holds_run(out) -> bool:
    """A state.pt or a checkpoint is there: starting afresh would overwrite a run."""
    return any(p.name == STATE_NAME or checkpoint_epoch(p) is not None for p in run_files(out))


def clear_run(out) -> list[str]:
    """Delete the run's files (only those; see run_files); returns their names."""
    removed = []
    for p in run_files(out):
        p.unlink()
        removed.append(p.name)
    return removed


def can_continue(out, cfg) -> tuple[bool, str, dict]:
    """Whether `out` holds an interrupted run that `cfg` continues exactly, why, and the data files (name ->
    sha256) that run read. Same rules as `train --resume`: settings beyond RESUMABLE_CHANGES equal, not past
    cfg.epochs, and every checkpoint it should have written so far loads."""
    from pipeline.checkpoint import read_checkpoint_dict
    from pipeline.train.config import TrainConfig, mismatches

    state = Path(out) / STATE_NAME
    if not state.is_file():
        return False, "no earlier run to resume", {}
    try:
        data, _ = read_checkpoint_dict(state)
        saved = TrainConfig.from_dict(data["train_config"])
        position = data["position"]
        files = data["meta"].get("dataset", {}).get("files", {})
    except (UserError, KeyError, TypeError, ValueError) as e:
        return False, f"{STATE_NAME} cannot be resumed ({e})", {}
    diffs = mismatches(saved, cfg.resolved())
    if diffs:
        return False, f"{STATE_NAME} is from other settings ({'; '.join(diffs)})", files
    done = position["epoch"]
    if done > cfg.epochs:
        return False, f"{STATE_NAME} is at epoch {done}, past epochs = {cfg.epochs}", files
    for path in checkpoint_paths(out, cfg):
        if checkpoint_epoch(path) <= done:
            try:
                read_checkpoint_dict(path)
            except UserError as e:
                return False, f"{path.name} should exist after epoch {done} but does not load ({e})", files
    return True, f"resuming the run in {STATE_NAME} at epoch {done + 1} batch {position['batch'] + 1}", files
