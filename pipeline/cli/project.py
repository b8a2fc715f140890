"""`cppn-video project IMAGE... --ckpt NAME -o keyframes.npy`: your own digits as latents."""
from __future__ import annotations

import click

from pipeline.cli.common import echo_json, progress_bar


@click.command("project")
@click.argument("images", metavar="IMAGE...", nargs=-1, required=True)
@click.option("--ckpt", default="e24", help="Checkpoint: a .pt file or a bundled name (prev, e6, e24, w4).")
@click.option("-o", "--output", default=None, help="Keyframes file to write (.npy, for walk --keyframes-file).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def project_command(images: tuple[str, ...], ckpt: str, output: str | None, as_json: bool, quiet: bool) -> None:
    """Find the latent whose render matches each picture of a digit (PNG, JPEG, ...; any size; dark on
    light or light on dark), all images in one batch, and write them as a keyframes file.

    Each picture is read as MNIST's digits were made (bounding box to 20x20, centred by mass in 28x28, the
    26x26 training crop), then fitted: pixel error plus the distance in a digit classifier's features,
    with a prior that keeps the latent where the model renders well. The table says how close each render
    came and what the evaluation classifier (a different network) reads in it.

    \b
    cppn-video project my3.png my7.jpg --ckpt e24 -o mine.npy
    cppn-video walk --ckpt e24 --keyframes-file mine.npy --interp lerp -o mine.mp4
    """
    from pipeline.digit_classifier import classify
    from pipeline.evaluate import load_digit_cnn
    from pipeline.project.fit import STEPS
    from pipeline.project.job import project_files

    judge = load_digit_cnn().model
    with progress_bar("projecting", STEPS, unit="steps", quiet=quiet or as_json) as advance:
        done = {"n": 0}

        def progress(step: int, total: int) -> None:
            advance(step - done["n"])
            done["n"] = step

        info = project_files(ckpt, list(images), output, judge=lambda r: classify(judge, r).numpy(),
                             progress=progress)
    if as_json:
        echo_json({k: v for k, v in info.items() if k != "latents"} | {"latents": info["latents"].tolist()})
        return
    for row in info["images"]:
        read = f"reads as {row['read']} ({row['confidence']:.0%})"
        note = f"  warning: {row['warning']}" if row["warning"] else ""
        click.echo(f"{row['path']}: rmse {row['pixel_rmse']:.3f}, {read}{note}")
    if output:
        click.echo(f"wrote {output} ({len(info['images'])} keyframes from {info['checkpoint']['name']})")


def register(group: click.Group) -> None:
    group.add_command(project_command)
