"""`cppn-video compare`: a thin adapter over pipeline.jobs.render_compare."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import examples
from pipeline.cli.common import echo_json, progress_bar
from pipeline.cli.render import (FRAMES_HELP, canvas_arg, encoding_options, frames_choice, interp_choice, path_options,
                                 render_options, scene_options)
from pipeline.jobs.settings import CompareSettings


@click.command(epilog=examples.epilog(examples.COMPARE))
@click.argument("checkpoints", nargs=-1, required=True, metavar="CKPT...")
@click.option("-o", "--output", default="compare.mp4", show_default=True, type=click.Path(dir_okay=True),
              help="Output .mp4, .gif, or a directory for PNG frames.")
@click.option("--frames", type=click.IntRange(min=1), default=None, help=FRAMES_HELP + "  [default: 300]")
@click.option("--panel-size", default=None, callback=canvas_arg,
              help="Each checkpoint's panel in pixels: 1080 (square, the article's look) or WxH such as 1080x1350 "
                   "(even for MP4).  [default: as large as fits 1920 wide, at most 1080: 960 for two panels in a "
                   "row, 640 for three, 480 for four]")
@click.option("--labels", default=None,
              help="Comma-separated captions, one per checkpoint.  [default: '<family> e<epoch>' from each "
                   "checkpoint's metadata, or its file name]")
@click.option("--layout", default=None, metavar="CxR",
              help="Panels as C columns by R rows, filled row by row.  [default: all in one row]")
@path_options("Digit-class transitions in this order through the class means, e.g. 0-9; each panel uses its "
              "own checkpoint's class latents (as with --digits its own digit encodings).")
@scene_options
@encoding_options
@render_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (the sidecar's contents) as JSON.")
def compare(checkpoints, output, frames, panel_size, labels, layout, fps, seed, keyframes, seeds,
            frames_per_transition, keyframes_file, loop, ease, interp, cubic, repeat_keyframes, classes, digits, crf, preset, fmt, batch, scale, invert, device, render_path, quiet,
            as_json, **scene):
    """Render checkpoints side by side on the same latent path, one captioned panel each.

    CKPT is a checkpoint file or a bundled name (prev, e6, e24, w4). Each panel is PANEL_SIZE square with a
    caption strip below it (about 7.5% of the panel, even, at least 12 px: 80 px at 1080); the video is
    C x PANEL_SIZE wide and R x (PANEL_SIZE + strip) high: 1920x688 for three panels in a row by default,
    3240x1160 with --panel-size 1080.
    """
    settings = CompareSettings(
        frames=frames_choice(frames, frames_per_transition), panel_size=panel_size, labels=tuple(labels.split(",")) if labels is not None else None,
        layout=layout, fps=fps, seed=seed, keyframes=keyframes, seeds=seeds,
        frames_per_transition=frames_per_transition, loop=loop, ease=ease,
        interp=interp_choice(interp, cubic), repeat_keyframes=repeat_keyframes, scale=scale, invert=invert,
        classes=classes,
        keyframes_file=keyframes_file, digits=digits, crf=crf, preset=preset, fmt=fmt, device=device, path=render_path,
        batch=batch, **scene)
    from pipeline.video import output_format

    settings.check(len(checkpoints), output_format(output, fmt))  # as walk: refused before torch loads
    from pipeline.jobs import render_compare

    total = settings.walk().resolved().frames
    names = [Path(c).stem for c in checkpoints]
    said = []

    def panel_times(per_frame: list[float]) -> None:
        """Once, after warm-up: each panel's share of the time and what the whole will take (the slow one named)."""
        if said or quiet or as_json:
            return
        said.append(True)
        spent = sum(per_frame) or 1e-9
        slow = max(range(len(per_frame)), key=per_frame.__getitem__)
        parts = ", ".join(f"{n} {t:.2f} s ({100 * t / spent:.0f}%)" for n, t in zip(names, per_frame))
        click.echo(f"per panel, a frame after warm-up: {parts}; {names[slow]} is the slow one "
                   f"(about {per_frame[slow] * total / 60:.1f} min of the {total} frames)", err=True)

    from pipeline.cli.render import project_pictures

    project_pictures(list(checkpoints), settings.images, settings.projection_steps, quiet or as_json, output)
    with progress_bar(f"rendering {Path(output).name}", total, unit="frames", quiet=quiet or as_json) as advance:
        info = render_compare(list(checkpoints), output, settings, progress=advance, panel_times=panel_times)
    if as_json:
        echo_json(info)
    elif not quiet:
        click.echo(f"wrote {info['output']} ({info['frames']} frames, {info['width']}x{info['height']}, "
                   f"{len(checkpoints)} panels, {info['frames_per_second']:.2f} frames/s on {info['render_path']}) "
                   f"and {info['output']}.json")
        from pipeline.cli.music import echo_audio
        from pipeline.cli.render import echo_framing

        echo_audio(info)
        if scale is None:
            echo_framing(info, "every panel's keyframes")


def register(cli: click.Group) -> None:
    cli.add_command(compare)
