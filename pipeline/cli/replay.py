"""`cppn-video replay X.mp4.json`: render again exactly what a sidecar describes (a thin adapter)."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.common import echo_json, progress_bar
from pipeline.render.paths import PATHS
from pipeline.text import printable


@click.command()
@click.argument("sidecar", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", default=None, type=click.Path(path_type=Path),
              help="Where to write the replay.  [default: <name>-replay<suffix> beside the original]")
@click.option("--ckpt", default=None,
              help="The checkpoint, if it moved since the render (it must have the recorded SHA-256).")
@click.option("--path", "render_path", type=click.Choice(PATHS), default=None,
              help="Render path instead of the recorded one (other paths can differ in the last bit).")
@click.option("--device", default=None, help="Device instead of the recorded one.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the replay's sidecar as JSON.")
def replay(sidecar, output, ckpt, render_path, device, quiet, as_json):
    """Render SIDECAR's video or still again: the same checkpoint (checked by its SHA-256), keyframes and
    settings, so the frames are the original's (byte for byte with the same render path, when the
    original was lossless)."""
    from pipeline.jobs.replay import default_output, read_sidecar, replay as run

    info = read_sidecar(sidecar)
    target = output or default_output(sidecar, info)
    total = info.get("frames") or len(info.get("seeds", [])) or 1
    with progress_bar(f"replaying {target.name}", total, unit="frames", quiet=quiet or as_json) as advance:
        result = run(sidecar, target, ckpt=ckpt, path=render_path, device=device, progress=advance)
    if as_json:
        echo_json(result)
    elif not quiet:
        click.echo(f"wrote {printable(result['output'])} (replay of {sidecar}) and its sidecar")  # named by it
        images = result.get("images") or next((p["images"] for p in result.get("checkpoints", []) if "images" in p),
                                              None)
        if images is None and (result.get("latent_source") or {}).get("kind") == "projected image":
            images = [result["latent_source"]]
        if images:
            click.echo(f"keyframes: the recorded projections of {len(images)} picture(s) (not read, not projected "
                       f"again)")


def register(cli: click.Group) -> None:
    cli.add_command(replay)
