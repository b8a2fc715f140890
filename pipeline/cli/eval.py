"""`cppn-video eval CKPT...`: measure the article's claims for each checkpoint (a table, or JSON)."""
from __future__ import annotations

import click

from pipeline.cli.common import echo_json, progress_bar


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def significant(v: float, digits: int = 2) -> str:
    """A small measure with `digits` significant digits (0.00035, not 0.000), plain below 1e-4 too."""
    if v == 0:
        return "0"
    return f"{v:.{digits}g}" if abs(v) >= 1e-4 else f"{v:.{digits - 1}e}"


def _table(rows: list[dict], accuracy: float, size: int, samples: int, seed: int):
    from rich import box
    from rich.table import Table

    table = Table(caption=f"digit CNN test accuracy {100 * accuracy:.2f}% (MNIST test set); random: {samples} "
                          f"latents, seed {seed}, confidence >= 0.9; near class: class latent + 0.3 N(0, I), 100 "
                          f"per class, read as its class; detail: power above 1/8 Nyquist at "
                          f"{size}x{size}", box=box.SIMPLE_HEAD)
    cells = [[r["name"], r["family"], "-" if r["epoch"] is None else str(r["epoch"]),
              f"{r['class_digits']}/10", _pct(r["bank_digits"]), _pct(r["bank_confident"]),
              _pct(r["random_recognisable"]), f"{r['random_classes_present']}/10", _pct(r["near_class"]),
              significant(r["detail"])] for r in rows]
    for i, (col, justify) in enumerate((("name", "left"), ("family", "left"), ("epoch", "right"),
                                        ("class\ndigits", "right"), ("bank\ndigits", "right"),
                                        ("bank\nconfident", "right"), ("random\nrecognisable", "right"),
                                        ("classes\npresent", "right"), ("near\nclass", "right"),
                                        ("detail", "right"))):
        # every value whole on an 80-column console: the headers fold instead
        table.add_column(col, justify=justify, overflow="fold", min_width=max(len(c[i]) for c in cells))
    for c in cells:
        table.add_row(*c)
    return table


@click.command("eval")
@click.argument("checkpoints", metavar="CKPT...", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per checkpoint.")
@click.option("--size", type=click.IntRange(1, 16384), default=1080,
              help="Side of the large renders the detail measure uses.")
@click.option("--samples", type=click.IntRange(1, 1_000_000), default=1000,
              help="Random latents z ~ N(0, I) rendered at 26x26 for the random-digit measures.")
@click.option("--seed", type=int, default=0, help="Seed of the random latents.")
@click.option("--device", default="auto", help="Render device: auto, cpu or cuda[:N].")
@click.option("--quiet", is_flag=True, help="No progress bar and no classifier note on stderr.")
def eval_command(checkpoints: tuple[str, ...], as_json: bool, size: int, samples: int, seed: int, device: str,
                 quiet: bool) -> None:
    """Measure each checkpoint against the article's claims, with the project's own digit classifier
    (a small CNN trained on the 60,000 MNIST training digits, bundled with cppn-video):

    \b
    class digits   the 10 class latents rendered at 26x26: how many the CNN reads as their class
    bank digits    the same for the stored encodings of single real digits (when the checkpoint has them)
    bank confident those read as their class with confidence >= 0.9
    random         random latents at 26x26: the fraction read with confidence >= 0.9, and how many
                   classes appear among those
    near class     100 latents around each class latent (+ 0.3 N(0, I)): the fraction read as that class
    detail         at 4 random and the 10 class latents, SIZE x SIZE renders: the fraction of spectral
                   power above 1/8 of Nyquist (higher: finer structure)

    CKPT is a .pt file or a bundled name (prev, e6, e24, w4).
    """
    from pipeline.checkpoint import load_checkpoint
    from pipeline.evaluate.metrics import detail_frames, evaluate_checkpoint, load_digit_cnn
    from pipeline.render import resolve_device

    resolve_device(device)  # a bad --device fails before any work
    loaded = [load_checkpoint(c) for c in checkpoints]  # every path checked before the long part
    cnn = load_digit_cnn()
    rows = []
    for ck in loaded:
        with progress_bar(f"eval {ck.name}", detail_frames(samples), unit="frames", quiet=quiet) as advance:
            row = evaluate_checkpoint(ck, cnn, size=size, samples=samples, seed=seed, device=device,
                                      progress=advance)
        rows.append(row.to_dict())
    if as_json:
        if not quiet:
            click.echo(f"digit CNN test accuracy {cnn.test_accuracy:.4f} (MNIST test set)", err=True)
        echo_json(rows)
        return
    from rich.console import Console

    Console().print(_table(rows, cnn.test_accuracy, size, samples, seed))


def register(cli: click.Group) -> None:
    cli.add_command(eval_command)
