"""`cppn-video train`: options -> TrainConfig -> pipeline.train.train, with a progress bar and Ctrl-C handling."""
from __future__ import annotations

import sys
import threading
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import click
from click.core import ParameterSource

from pipeline.cli.common import progress_bar, stop_on_interrupt
from pipeline.train.config import DATASETS, DEFAULT_BATCH, DEFAULT_WIDTH, FAMILIES, PRECISIONS, TrainConfig

# CLI option name -> TrainConfig field, for the options a resumed run may take from its state.pt.
_FIELDS = {"model": "model", "width": "width", "epochs": "epochs", "save_at": "save_at", "data_dir": "data_dir",
           "dataset": "dataset", "batch_size": "batch_size", "limit": "limit", "seed": "seed", "precision": "precision"}


def _parse_save_at(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if value.strip() == "":
        return ()
    try:
        return tuple(sorted({int(part) for part in value.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated epoch numbers such as 6,24, got {value!r}",
                                 param_hint="'--save-at'") from None


STOP_MESSAGE = "stopping after this batch to save the state (Ctrl-C again to abort without saving)"


def _batch_info(row: dict, epochs: int, n_batches: int) -> str:
    """Compact, most important first (a narrow terminal cuts the end): epoch, losses, accuracies."""
    if "kl" in row:  # resnet
        losses = f"G {row.get('g_loss', 0):.2f} KL {row.get('kl', 0):.3f} D {row.get('d_loss', 0):.2f}"
    else:
        losses = f"G {row.get('g_loss', 0):.2f} VAE {row.get('vae_loss', 0):.2f} D {row.get('d_loss', 0):.2f}"
    return (f"e{row['epoch']}/{epochs} {losses} acc g {row.get('g_acc', 0):.2f} "
            f"r {row.get('eval_real_acc', 0):.2f} f {row.get('eval_fake_acc', 0):.2f}")


def _finish(seconds_left: float, now: datetime | None = None) -> str:
    """The projected finish as a clock time ('ends 14:05', with the weekday when not today)."""
    now = now or datetime.now()
    end = now + timedelta(seconds=seconds_left)
    return f"ends {end:%H:%M}" if end.date() == now.date() else f"ends {end:%a %H:%M}"


class _Reporter:
    """Turns the library's progress events into a rich progress bar and a few lines of text."""

    def __init__(self, stack: ExitStack, quiet: bool):
        self.stack, self.quiet = stack, quiet
        self.advance = None
        self.epochs = self.n_batches = 0
        self.downloading = set()
        self.times: list[float] = []
        self.total = self.done = 0
        self.collapse = ""

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "download":
            if event["file"] not in self.downloading:
                self.downloading.add(event["file"])
                click.echo(f"downloading {event['file']}", err=True)
        elif kind == "start":
            cfg = event["config"]
            self.epochs, self.n_batches = event["epochs"], event["batches_per_epoch"]
            if event["note"]:
                click.echo(f"note: {event['note']}", err=True)
            if not self.quiet:
                arch = (f"width {cfg.width}, {cfg.depth} blocks" if cfg.model == "resnet"
                        else f"width {cfg.width}, {cfg.depth} tanh layers")
                where = f" from epoch {event['epoch'] + 1} batch {event['batch'] + 1}" if event["resumed"] else ""
                click.echo(f"{'resuming' if event['resumed'] else 'training'} {cfg.model} ({arch}) on "
                           f"{event['n_images']:,} {cfg.dataset} images, {cfg.epochs} epoch(s) of {self.n_batches} "
                           f"batches of {cfg.batch_size}{where} -> {cfg.out_dir}", err=True)
            remaining = event["total"] - event["done"]
            self.total, self.done = event["total"], event["done"]
            self.advance = self.stack.enter_context(progress_bar("train", remaining, "batch", self.quiet))
        elif kind == "batch":
            row = event["metrics"]
            self.times.append(row["time"])
            recent = self.times[-20:]  # projected finish from the recent batches' pace
            left = self.total - (self.done + 1)
            info = f"{_finish(left * sum(recent) / len(recent))} {_batch_info(row, self.epochs, self.n_batches)}"
            if self.collapse:
                info = f"[bold red]COLLAPSE?[/] {info}"
            self.done += 1
            self.advance(1, info=info)
        elif kind == "collapse":
            if not self.collapse:
                click.echo(f"warning: {event['message']} (epoch {event['epoch']} batch {event['batch']}); "
                           f"see metrics.jsonl", err=True)
            self.collapse = event["message"]
        elif kind == "epoch" and not self.quiet:
            for path in event["saved"]:
                click.echo(f"epoch {event['epoch']}: wrote {path}", err=True)


@click.command("train")
@click.option("--model", type=click.Choice(FAMILIES), default=None,
              help="Generator family: resnet (part two: deep, thin, residual) or prev (part one: 4 layers "
                   "of 128). Required unless --resume.")
@click.option("--width", type=click.IntRange(1, 4096), default=None,
              help=f"Generator width [default: {DEFAULT_WIDTH['resnet']} for resnet, {DEFAULT_WIDTH['prev']} "
                   f"for prev]; the article also tries 4.")
@click.option("--epochs", type=click.IntRange(1, 100_000), default=None,
              help="Passes over the data. Required unless --resume.")
@click.option("--save-at", "save_at", type=str, default=None, metavar="N,N,...",
              help="Also write OUT/e{N}.pt after these epochs, e.g. 6,24 (the last epoch is always written).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run directory: e*.pt, state.pt, metrics.jsonl, config.json.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder with the MNIST-format IDX files [default: the cache, downloading MNIST if needed].")
@click.option("--dataset", type=click.Choice(DATASETS), default="mnist", show_default=True,
              help="Which dataset's files to look for.")
@click.option("--batch-size", "batch_size", type=click.IntRange(1, 1_000_000), default=None,
              help=f"Images per batch [default: {DEFAULT_BATCH['resnet']} for resnet, {DEFAULT_BATCH['prev']} "
                   f"for prev, as the original scripts].")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Train on the first N images only (quick runs) [default: all].")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seeds the weights, data order, crops, z noise and dropout.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True,
              help="bf16: run the classifier under bfloat16 autocast (2-3x faster on CPUs with native bf16; "
                   "float32 weights and losses). May change on --resume.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its state.pt at the exact batch; options not given are "
                   "taken from the run.")
@click.option("--save-every", "save_every", type=click.FloatRange(0.1), default=10.0, show_default=True,
              metavar="MIN", help="Also write state.pt every MIN minutes, so a hard kill loses at most that much.")
@click.option("--device", default="auto", show_default=True,
              help="auto (cuda:0 if available, else cpu), cpu, cuda or cuda:N. A run may resume on another "
                   "device: same weights and position, that device's arithmetic from then on.")
@click.option("--cuda-graphs", "cuda_graphs", is_flag=True,
              help="On CUDA, replay each kind of optimiser step as a captured CUDA graph (fewer kernel launches "
                   "from Python). Each is checked against the plain step first; not yet measured on a GPU, so off "
                   "by default (docs/PERFORMANCE.md).")
@click.option("--quiet", is_flag=True, help="No progress bar or summary (notes and errors still print).")
@click.pass_context
def train_command(ctx: click.Context, model, width, epochs, save_at, out_dir, data_dir, dataset, batch_size,
                  limit, seed, precision, resume, save_every, device, cuda_graphs, quiet) -> None:
    """Train a generator as the article does, writing OUT/e{epoch}.pt checkpoints.

    Ctrl-C, SIGTERM or SIGHUP stops after the current batch and writes OUT/state.pt (as do every epoch
    and every --save-every minutes); --resume continues it and ends with the same weights as an
    uninterrupted run.
    """
    from pipeline.devices import resolve_device
    from pipeline.train import load_train_config, train

    dev = resolve_device(device)  # train() refuses --cuda-graphs off CUDA before it writes anything

    given = {"model": model, "width": width, "epochs": epochs, "save_at": _parse_save_at(save_at),
             "data_dir": None if data_dir is None else str(data_dir), "dataset": dataset,
             "batch_size": batch_size, "limit": limit, "seed": seed, "precision": precision}
    if resume:
        cfg = load_train_config(out_dir)
        explicit = {k: v for k, v in given.items() if ctx.get_parameter_source(k) != ParameterSource.DEFAULT}
        if "model" in explicit and explicit["model"] != cfg.model:
            raise click.BadParameter(f"the run in {out_dir} trains {cfg.model!r}", param_hint="'--model'")
        if "epochs" in explicit and "save_at" not in explicit:  # keep the run's save points that still fit
            explicit["save_at"] = tuple(e for e in cfg.save_at if e <= explicit["epochs"])
        cfg = replace(cfg, out_dir=str(out_dir), **{_FIELDS[k]: v for k, v in explicit.items()})
    else:
        if model is None:
            raise click.MissingParameter(ctx=ctx, param_hint="'--model'", param_type="option")
        if epochs is None:
            raise click.MissingParameter(ctx=ctx, param_hint="'--epochs'", param_type="option")
        values = {k: v for k, v in given.items() if v is not None}
        cfg = TrainConfig(out_dir=str(out_dir), **values)
    bad = [e for e in cfg.save_at if not 1 <= e <= cfg.epochs]
    if bad:
        raise click.BadParameter(f"values must be within 1..{cfg.epochs} (--epochs), got "
                                 f"{','.join(map(str, bad))}", param_hint="'--save-at'")

    stop = threading.Event()
    with ExitStack() as stack:
        reporter = _Reporter(stack, quiet)
        stack.enter_context(stop_on_interrupt(stop, STOP_MESSAGE))
        # meta records the canonical command that reproduces the run (cfg.command_line()).
        result = train(cfg, resume=resume, progress=reporter, stop_flag=stop, save_every=save_every * 60.0,
                       device=dev, cuda_graphs=cuda_graphs)
    if result.interrupted:
        click.echo(f"interrupted at epoch {result.epoch + 1}; state saved to {result.state_path}", err=True)
        click.echo(f"resume with: {result.resume_command()}", err=True)
        sys.exit(130)  # SystemExit: click's standalone_mode=False would turn ctx.exit(130) into a return value
    if not quiet:
        written = ", ".join(str(p) for p in result.checkpoints) or "nothing new (the run was already complete)"
        click.echo(f"done: {result.epoch} epochs, {result.batches} batches; wrote {written}", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(train_command)
