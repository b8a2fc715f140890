"""`cppn-video walk` and `cppn-video still`: thin adapters over pipeline.jobs."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import examples
from pipeline.cli.common import echo_json, progress_bar
from pipeline.cli.music import audio_options, echo_audio
from pipeline.jobs.settings import DEFAULT_CHECKPOINT, StillSettings, WalkSettings
from pipeline.latents import DEFAULT_EASE, EASINGS, INTERPOLATIONS
from pipeline.render.paths import PATHS

CKPT_HELP = f"Checkpoint file, or the name of a bundled one (prev, e6, e24, w4). Default: bundled {DEFAULT_CHECKPOINT}."
FRAMES_HELP = ("Number of frames in the video. Keyframes are evenly spaced in time: with K keyframes and M frames "
               "per transition, --frames M*(K-1)+1 (or M*K with --loop) puts keyframe i exactly at frame M*i, "
               "each keyframe shown once. The article's videos used 30 per transition: 9 digits -> 241 frames "
               "(its sampler also repeated each keyframe frame; here every frame is a distinct step).")
DIGITS_HELP = ("Keyframes are the checkpoint's stored encodings of single real digits, in this order, e.g. "
               "8,6,4,2,0,1,3,5,7 (the article's 24-epoch video) or 0-9; a repeated digit shows its next stored "
               "example. Needs a checkpoint trained by this version (older ones: use --classes).")


def interp_choice(interp: str | None, cubic: bool) -> str:
    """--interp, with --cubic as an alias of --interp cubic; default slerp."""
    if cubic and interp not in (None, "cubic"):
        raise click.UsageError(f"--cubic and --interp {interp} disagree; give only --interp {interp}")
    return "cubic" if cubic else (interp or "slerp")


def frames_choice(frames: int | None, per_transition: int | None) -> int | None:
    """--frames (None when not given: the settings take it from --duration, --times or their default), never
    with --frames-per-transition."""
    if frames is not None and per_transition is not None:
        raise click.UsageError("--frames and --frames-per-transition both set the video's length; give one")
    return frames


def canvas_arg(ctx, param, value):
    """--size / --panel-size: a square size stays a whole number (1080), any other shape "WxH"."""
    from pipeline.errors import UserError
    from pipeline.scene.canvas import canvas_text, parse_canvas

    if value is None:
        return None
    try:
        width, height = parse_canvas(value, "--" + param.name.replace("_", "-"))
    except UserError as e:
        raise click.BadParameter(str(e)) from None
    return width if width == height else canvas_text(width, height)


TIME_HELP = "a bare number is frames (Deforum's schedules), 2s or 0.5s seconds, 1:30 minutes"


def colour_options(f):
    """--palette and --colors (walk, still, compare)."""
    return _stack(f, [
        click.option("--palette", default=None, metavar="NAME",
                     help="Colour the grey levels with a perceptual colour map: viridis, magma, inferno, plasma, "
                          "cividis, turbo, twilight, ... (applied after --invert)."),
        click.option("--colors", default=None, metavar="HEX,HEX,...",
                     help="Colour with a gradient of your own through two or more colours, e.g. "
                          "\"#0b1d3a,#f5e6c8\" (instead of --palette)."),
    ])


def scene_options(f):
    """The scene's time and colour (walk and compare): length in seconds, keyframe times and holds, pacing."""
    return _stack(f, [
        click.option("--duration", default=None, metavar="TIME",
                     help=f"The video's length: 12s, 1:30 or frames (instead of --frames; {TIME_HELP})."),
        click.option("--times", default=None, metavar="LIST",
                     help=f"Each keyframe's time, e.g. 0,2s,5s,8s (the first 0; {TIME_HELP}); without --duration "
                          "the video ends on the last keyframe."),
        click.option("--hold", default=None, metavar="TIME[,TIME...]",
                     help="How long every keyframe dwells, e.g. 0.5s, or one value per keyframe (1s,0,0.5s); "
                          "held frames are exactly the keyframe."),
        click.option("--pace", type=click.Choice(["uniform", "none"]), default="uniform", show_default=True,
                     help="uniform: re-time each transition so the picture changes by the same amount every frame "
                          "(measured on a 48 px proxy render; keyframes stay on their times; --ease then shapes "
                          "it); none: equal steps along the path."),
        colour_options,
        audio_options,
    ])


def _stack(f, decorators):
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def path_options(classes_help: str):
    """Options choosing the latent path (shared by walk and compare)."""
    return lambda f: _stack(f, [
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the default keyframes: which stored digits, in which order (or which random "
                          "latents with --random-keyframes)."),
        click.option("--keyframes", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Number of keyframes the walk visits when no --digits/--classes/--seeds/--keyframes-file "
                          "is given: the checkpoint's stored encodings of real digits, varied classes in a seeded "
                          "order."),
        click.option("--random-keyframes", is_flag=True,
                     help="Make those keyframes random latents N(0, I) instead (a digit far less often: "
                          "`cppn-video eval`)."),
        click.option("--seeds", default=None, metavar="LIST",
                     help="Keyframes by seed, one per seed, e.g. 3,17,42 or 0-31,40 (stylegan3's convention); "
                          "`still --seed 17` shows exactly keyframe 17."),
        click.option("--frames-per-transition", "--w-frames", "frames_per_transition", type=click.IntRange(min=1),
                     default=None,
                     help="Length per transition instead of in total: frames = N x transitions (+1 without "
                          "--loop/--repeat-keyframes, so the last keyframe is shown)."),
        click.option("--keyframes-file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="A .npy file of keyframe latents [K, z_dim] instead of random ones."),
        click.option("--loop", is_flag=True, help="Return to the first keyframe for a seamless loop."),
        click.option("--ease", type=click.Choice(EASINGS), default=DEFAULT_EASE, show_default=True,
                     help="Speed within each transition: ease-in-out-sine slows into and out of every keyframe "
                          "(no jump in speed); linear is constant; ease-out-sine is the article's sin(t*pi/2) "
                          "(stops at each keyframe, restarts at full speed); smoothstep is 3t^2-2t^3."),
        click.option("--interp", type=click.Choice(sorted(INTERPOLATIONS, key=("slerp", "lerp", "cubic").index)),
                     default=None,
                     help="Path between keyframes: slerp (great circles), lerp (straight lines at constant speed, "
                          "the article's videos, with --ease linear) or cubic (a smooth spline through them). "
                          "Class transitions are always straight lines.  [default: slerp]"),
        click.option("--cubic", is_flag=True, help="Same as --interp cubic."),
        click.option("--repeat-keyframes", is_flag=True,
                     help="Time the walk as the article's sampler did: each transition renders both its ends, "
                          "so each keyframe shows on two frames in a row (9 digits at 30 per transition: "
                          "--frames 240)."),
        click.option("--classes", default=None, help=classes_help),
        click.option("--digits", default=None, help=DIGITS_HELP),
        click.option("--images", default=None, metavar="A.png,B.png,...",
                     help="Keyframes from your own pictures of digits (PNG/JPEG, any size or polarity), each "
                          "projected into the checkpoint as `cppn-video project` does (a comparison: into each "
                          "panel's own); the sidecar keeps their SHA-256 and latents, so replay needs neither."),
    ])


def encoding_options(f):
    """Options of the video file, its encoders and render batching (shared by walk, its --grid, and compare)."""
    return _stack(f, [
        click.option("--fps", default="30", show_default=True,
                     help="Frames per second: 24, 29.97, or an exact ratio such as 30000/1001."),
        click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
                     help="H.264 quality: lower is better (0 is lossless, which Safari/QuickTime cannot play)."),
        click.option("--preset", default="medium", show_default=True, help="x264 preset (ultrafast ... veryslow)."),
        click.option("--format", "fmt", type=click.Choice(["mp4", "gif", "png"]), default=None,
                     help="Output format.  [default: from the output's suffix]"),
        click.option("--batch", type=click.IntRange(min=1), default=None,
                     help="Frames per render batch (speed only)."),
        click.option("--encoders", default="auto", show_default=True, metavar="N|auto",
                     callback=lambda ctx, param, v: int(v) if v.strip().isdigit() else v,  # recorded as a number
                     help="x264 encoders each renderer feeds (contiguous parts joined without re-encoding, each "
                          "held to its share of the cores); auto: cores/4 on a GPU, 1 on the CPU."),
    ])


def render_options(f):
    """Options shared by walk, still and compare: scale, invert, device, path."""
    return _stack(f, [
        click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Coordinate range [-scale, scale]; larger zooms out (training used 8).  [default: walk and "
                          "still: the smallest scale from 8 up that keeps every keyframe's digit off the frame's "
                          "outer 2% (measured on a small render; recorded in the sidecar); compare and --grid: one "
                          "such scale for every panel or cell; a camera: 8]"),
        click.option("--invert", is_flag=True, help="Dark strokes on white (the article's 'normal' renders)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N]."),
        click.option("--path", "render_path", type=click.Choice(PATHS), default="auto", show_default=True,
                     help="Render path; auto picks the fastest available (triton on CUDA, cpu-fused on CPU)."),
        camera_options,
    ])


CAMERA_HELP = ("a constant, a ramp over the whole video (start:end, optionally eased: \"1:64 smoothstep\") or "
               "keyframes in the time syntax of --times, e.g. \"0s=1, 4s=16, 6s=2\" (an easing after a value "
               "shapes the segment leaving it; default linear)")


def camera_options(f):
    """--zoom, --pan, --rotate (walk, still, compare, grid): the camera, rendered exactly at every zoom."""
    return _stack(f, [
        click.option("--zoom", default=None, metavar="SCHEDULE",
                     help=f"Zoom into the plane: 2 shows exactly what --scale halved shows; ramps and keyframes move "
                          f"geometrically (constant zoom speed). The CPPN is re-evaluated at every zoom, so detail "
                          f"stays sharp: {CAMERA_HELP}."),
        click.option("--pan", default=None, metavar="SCHEDULE",
                     help=f"The point x,y (plane units) at the frame's centre, about which it zooms and turns: "
                          f"0.5,-1, 0,0:2,1 or \"0s=(0,0), 4s=(1.5,-2)\"; {CAMERA_HELP}."),
        click.option("--rotate", default=None, metavar="SCHEDULE",
                     help=f"Turn the picture counterclockwise by this many degrees about the centre: {CAMERA_HELP}."),
    ])


@click.command(epilog=examples.epilog(examples.WALK))
@click.option("--ckpt", default=None, help=CKPT_HELP)
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=True),
              help="Output .mp4, .gif, or a directory for PNG frames.  [default: <ckpt>-walk.mp4]")
@click.option("--frames", type=click.IntRange(min=1), default=None, help=FRAMES_HELP + "  [default: 600]")
@click.option("--size", default="1080", show_default=True, callback=canvas_arg,
              help="Frame size in pixels: 1080 (square) or WxH such as 1920x1080 or 1080x1920 (even for MP4). "
                   "The shorter side spans [-scale, scale]; a wider frame shows more of the plane, unstretched.")
@path_options("Digit-class transitions in this order through the class means, e.g. 0-9 or 0-9,0 "
              "(--digits uses real digits instead).")
@scene_options
@encoding_options
@click.option("--grid", default=None, metavar="CxR",
              help="Several walks side by side, C columns by R rows, sharing out --seeds in order (stylegan3's "
                   "gen_video): --grid 4x2 --seeds 0-31 gives each cell 4 keyframes.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Render MP4 frame segments in this many processes and join them without re-encoding.")
@render_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (the sidecar's contents) as JSON.")
def walk(ckpt, output, frames, size, fps, seed, keyframes, seeds, frames_per_transition, keyframes_file, loop, ease,
         interp, cubic, repeat_keyframes, classes, digits, crf, preset, fmt, batch, grid, workers, scale, invert,
         device, render_path, quiet, as_json, **scene):
    """Render a latent walk as a video: by default through the checkpoint's stored encodings of real digits
    of varied classes (--seed picks them; --random-keyframes: random latents), through the digits you name
    (--digits, the article's videos: --interp lerp), or digit-class transitions (--classes).

    The article's videos: --digits 8,6,4,2,0,1,3,5,7 --interp lerp --ease linear --frames 240
    --repeat-keyframes (30 frames per transition at constant speed, both ends rendered, as its sampler did);
    --frames 241 without --repeat-keyframes shows each keyframe once.
    """
    settings = WalkSettings(frames=frames_choice(frames, frames_per_transition), size=size, fps=fps, seed=seed,
                            keyframes=keyframes, seeds=seeds, frames_per_transition=frames_per_transition,
                            loop=loop, ease=ease,
                            interp=interp_choice(interp, cubic), repeat_keyframes=repeat_keyframes, scale=scale,
                            invert=invert, classes=classes, keyframes_file=keyframes_file, digits=digits, crf=crf,
                            preset=preset, fmt=fmt,
                            device=device, path=render_path, batch=batch, workers=workers, **scene)
    ckpt_name = ckpt or DEFAULT_CHECKPOINT
    if output is None:
        suffix = {"gif": ".gif", "png": ""}.get(fmt, ".mp4")
        kind = ("classes" if classes is not None else "digits" if digits is not None else "grid" if grid
                else "images" if scene.get("images") else "walk")
        output = f"{Path(ckpt_name).stem}-{kind}{suffix}"
    if grid is not None and workers > 1:
        raise click.UsageError("--grid renders in one process; leave out --workers")
    # bad settings are refused here, before torch and the render modules load (1-2 s)
    if grid is not None:
        from pipeline.jobs.layout import grid_geometry
        from pipeline.video import output_format

        total = grid_geometry(settings, grid, output_format(output, fmt))[1][0].frames
    else:
        settings.validate()
        total = settings.resolved().frames
    from pipeline.jobs import render_walk_grid
    from pipeline.jobs.kinds import run_walk

    project_pictures([ckpt_name], settings.images, settings.projection_steps, quiet or as_json, output)
    with progress_bar(f"rendering {Path(output).name}", total, unit="frames", quiet=quiet or as_json) as advance:
        if grid is not None:
            info = render_walk_grid(ckpt_name, output, settings, grid, progress=advance)
        else:
            info = run_walk(ckpt_name, output, settings, progress=advance)
    if as_json:
        echo_json(info)
    elif not quiet:
        click.echo(f"wrote {info['output']} ({info['frames']} frames, {info['width']}x{info['height']}, "
                   f"{info['frames_per_second']:.2f} frames/s on {info['render_path']}) and {info['output']}.json")
        echo_audio(info)
        if scale is None:
            echo_framing(info, "every keyframe's digit" if grid is None else "every cell's keyframes")


def project_pictures(ckpts, images, steps, quiet: bool, out=None) -> None:
    """--images / --image: every picture read (a bad one is its one-line error), then projected into each
    checkpoint under a progress bar; the render that follows finds the projection made (jobs.projected keeps
    it by checkpoint and picture SHA-256) and does not fit again."""
    if images is None:
        return
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs.projected import image_paths, project_keyframes, read_images
    from pipeline.project.fit import STEPS
    from pipeline.provenance import check_not_input

    n = len(read_images(images))
    if out is not None:  # an output that would replace a picture fails before the fit, as in the render
        check_not_input(Path(out), [Path(p) for p in image_paths(images)])
    total = STEPS if steps is None else steps
    for name in ckpts:
        ck = load_checkpoint(name)
        done = {"n": 0}
        with progress_bar(f"projecting {n} picture{'s' if n != 1 else ''} into {ck.name}", total, unit="steps",
                          quiet=quiet) as advance:
            def progress(step: int, _total: int) -> None:
                advance(step - done["n"])
                done["n"] = step

            project_keyframes(images, ck, steps, progress)


def echo_framing(info: dict, what: str) -> None:
    """The one line that says which scale the automatic framing chose (jobs.framing)."""
    chosen = info["settings"]["scale"]
    if info["settings"].get("zoom") is not None or info["settings"].get("pan") is not None \
            or info["settings"].get("rotate") is not None:
        return
    why = (f"{what} fits the training framing" if chosen == 8
           else f"{what} kept off the frame's outer 2%; --scale 8 frames it as trained")
    click.echo(f"scale {chosen:g} (automatic: {why})")


@click.command()
@click.option("--ckpt", default=None, help=CKPT_HELP)
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Output PNG.  [default: <ckpt>-still.png]")
@click.option("--size", default="3240", show_default=True, callback=canvas_arg,
              help="Image size in pixels: 3240 (square) or WxH such as 3840x2160.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random latent.")
@click.option("--seeds", default=None, metavar="LIST",
              help="Many stills in one run, one per seed (e.g. 0-31,40), written to --outdir as seed0017.png ... "
                   "each with its sidecar; seed N is keyframe N of `walk --seeds`.")
@click.option("--outdir", default=None, type=click.Path(file_okay=False),
              help="Folder for the --seeds stills (created if needed).  [default: stills]")
@click.option("--grid", default=None, metavar="CxR",
              help="With --seeds: also a contact sheet grid.png of C columns by R rows in --outdir.")
@click.option("--digit", type=click.IntRange(0, 9), default=None,
              help="Render this digit instead of a random latent: a stored encoding of a single real digit "
                   "(the article's way), or the class mean when the checkpoint stores none.")
@click.option("--sample", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --digit: which stored example of the digit (wraps around the ones stored).")
@click.option("--class-means", is_flag=True, help="With --digit: render the class mean, not a real digit's encoding.")
@click.option("--image", default=None, metavar="FILE",
              help="Render your own picture of a digit: its projection into the checkpoint (as `cppn-video project`).")
@colour_options
@render_options
@click.option("--quiet", is_flag=True, help="No progress bar and no summary line (errors are still printed).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def still(ckpt, output, size, seed, seeds, outdir, grid, digit, sample, class_means, image, scale, invert, device,
          render_path, quiet, as_json, **colour):
    """Render one high-resolution still image (PNG), or one per seed with --seeds (and a --grid contact sheet)."""
    ckpt_name = ckpt or DEFAULT_CHECKPOINT
    if seeds is None and (outdir is not None or grid is not None):
        raise click.UsageError("--outdir and --grid go with --seeds; for one image give -o FILE.png")
    if seeds is not None:
        if output is not None:
            raise click.UsageError("--seeds writes one file per seed into --outdir; leave out -o")
        if image is not None:
            raise click.UsageError("--image renders one still; leave out --seeds")
        return _stills(ckpt_name, seeds, outdir or "stills", grid, StillSettings(
            size=size, seed=seed, digit=digit, scale=scale, invert=invert, device=device, path=render_path, **colour),
            quiet, as_json)
    output = output or f"{Path(ckpt_name).stem}-still.png"
    settings = StillSettings(size=size, seed=seed, digit=digit, sample=sample, class_means=class_means, image=image,
                             scale=scale, invert=invert, device=device, path=render_path, **colour)
    settings.validate()  # as walk: refused before the render modules load
    from pipeline.jobs import render_still

    project_pictures([ckpt_name], image, None, quiet or as_json, output)
    info = render_still(ckpt_name, output, settings)
    if as_json:
        echo_json(info)
    elif not quiet:
        click.echo(f"wrote {info['output']} ({info['width']}x{info['height']}, {info['seconds']:.2f} s on "
                   f"{info['render_path']})")
        if scale is None:
            echo_framing(info, "the digit")


def _stills(ckpt_name, seeds, outdir, grid, settings, quiet, as_json) -> None:
    from pipeline.latents import parse_seeds

    settings.validate()  # as walk: refused before the render modules load
    n = len(parse_seeds(seeds))
    from pipeline.jobs import render_stills

    with progress_bar(f"rendering {n} stills into {outdir}", n, unit="stills", quiet=quiet or as_json) as advance:
        infos = render_stills(ckpt_name, outdir, seeds, settings, grid=grid, progress=advance)
    if as_json:
        echo_json(infos)
    elif not quiet:
        sheet = f" and the {grid} contact sheet {infos[-1]['output']}" if grid else ""
        width, height = settings.canvas()
        click.echo(f"wrote {n} stills ({width}x{height}) to {outdir}{sheet}, each with its sidecar")


def register(cli: click.Group) -> None:
    cli.add_command(walk)
    cli.add_command(still)
