"""End to end: checkpoint -> latent path -> render engine -> MP4/GIF/PNG + sidecar, and every bad input."""
import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.jobs import StillSettings, WalkSettings, render_still, render_walk
from pipeline.render import Renderer
from video_helpers import read_video
from render_helpers import make_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "e1.pt")


def test_walk_mp4_frames_size_and_sidecar(ckpt, tmp_path):
    out = tmp_path / "walk.mp4"
    s = WalkSettings(frames=9, size=48, keyframes=3, seed=5, batch=4)
    calls = []
    info = render_walk(ckpt, out, s, progress=calls.append)
    video = read_video(out)
    assert video.shape == (9, 48, 48)
    assert len({v.tobytes() for v in video}) > 1  # frames differ
    assert sum(calls) == 9 and calls[0] == 0
    side = json.loads((tmp_path / "walk.mp4.json").read_text())
    assert side["checkpoint"]["sha256"] == info["checkpoint"]["sha256"] and len(side["checkpoint"]["sha256"]) == 64
    assert side["frames"] == 9 and side["width"] == side["height"] == 48
    assert side["settings"]["seed"] == 5 and np.asarray(side["keyframes"]).shape == (3, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.mp4", "walk.mp4.json"]  # no temp files left


def test_walk_reproducible_from_sidecar_exactly(ckpt, tmp_path):
    """Lossless encodes of the same settings decode to the frames the renderer makes: a render is reproducible."""
    s = WalkSettings(frames=6, size=32, keyframes=2, loop=True, lossless=True, ease="ease-out-sine", pace="none")
    render_walk(ckpt, tmp_path / "a.mp4", s)
    side = json.loads((tmp_path / "a.mp4.json").read_text())
    render_walk(ckpt, tmp_path / "b.mp4", WalkSettings(**side["settings"]))
    a, b = read_video(tmp_path / "a.mp4"), read_video(tmp_path / "b.mp4")
    assert np.array_equal(a, b)
    from pipeline.checkpoint import load_checkpoint
    from pipeline.jobs import path_latents

    ck = load_checkpoint(ckpt)
    _, lat = path_latents(s, 32, ck.class_latents)
    assert np.array_equal(a, Renderer(ck.generator, 32, 32).render(lat))


def test_class_transition_and_batch_invariance(ckpt, tmp_path):
    base = WalkSettings(frames=7, size=24, classes="3,1,4", lossless=True)
    render_walk(ckpt, tmp_path / "c1.mp4", base)
    render_walk(ckpt, tmp_path / "c2.mp4", WalkSettings(**{**base.__dict__, "batch": 1}))
    a = read_video(tmp_path / "c1.mp4")
    assert a.shape == (7, 24, 24) and np.array_equal(a, read_video(tmp_path / "c2.mp4"))
    side = json.loads((tmp_path / "c1.mp4.json").read_text())
    assert side["kind"] == "classes" and np.asarray(side["keyframes"]).shape == (3, 32)


def test_gif_and_png_outputs(ckpt, tmp_path):
    render_walk(ckpt, tmp_path / "w.gif", WalkSettings(frames=4, size=21, keyframes=2))
    assert read_video(tmp_path / "w.gif").shape == (4, 21, 21)
    render_walk(ckpt, tmp_path / "frames", WalkSettings(frames=3, size=20, keyframes=2, fmt="png", invert=True))
    files = sorted((tmp_path / "frames").iterdir())
    assert len(files) == 3 and iio.imread(files[0]).shape == (20, 20)


def test_interrupted_render_leaves_nothing(ckpt, tmp_path):
    def stop_after_first_batch(n):
        if n:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_walk(ckpt, tmp_path / "x.mp4", WalkSettings(frames=8, size=32, batch=2), progress=stop_after_first_batch)
    assert list(tmp_path.iterdir()) == []


def test_still_png(ckpt, tmp_path):
    info = render_still(ckpt, tmp_path / "s.png", StillSettings(size=50, digit=3, invert=True))
    img = iio.imread(tmp_path / "s.png")
    assert img.shape == (50, 50) and img.dtype == np.uint8 and info["render_path"]
    assert json.loads((tmp_path / "s.png.json").read_text())["settings"]["digit"] == 3


from cli_helpers import run_main as _run_main  # noqa: E402 (the real entry point, in-process)


def test_cli_walk_json_quiet(ckpt, tmp_path):
    out = tmp_path / "cli.mp4"
    proc = _run_main(["walk", "--ckpt", str(ckpt), "--frames", "4", "--size", "32", "-o", str(out), "--json",
                      "--loop", "--ease", "smoothstep"])
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["frames"] == 4 and read_video(out).shape == (4, 32, 32)


@pytest.mark.parametrize("args,message", [
    (["--ckpt", "missing.pt"], "checkpoint missing.pt not found"),
    (["--size", "33"], "must be even"),
    (["-o", "no/such/dir/w.mp4"], "does not exist"),
    (["-o", "w.avi"], "cannot tell the video format"),
    (["--classes", "3,12"], "out of range"),
    (["--frames", "0"], "--frames"),
    (["--preset", "warp9"], "ffmpeg cannot encode"),
])
def test_cli_walk_bad_input_one_line(ckpt, tmp_path, args, message):
    argv = ["walk", "--frames", "3", "--size", "32", "--quiet", "-o", str(tmp_path / "w.mp4")]
    if "--ckpt" not in args:
        argv += ["--ckpt", str(ckpt)]
    proc = _run_main(argv + args)
    assert proc.returncode in (1, 2)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    if proc.returncode == 1 and message != "ffmpeg cannot encode":  # ffmpeg's own last lines follow that one
        assert len(lines) == 1 and lines[0].startswith("error: ")
    if proc.returncode == 2:  # click's usage error: usage, hint, then one error line
        assert lines[0].startswith("Usage:") and lines[-1].startswith("Error:")
    assert not (tmp_path / "w.mp4").exists()


def test_corrupt_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    proc = _run_main(["walk", "--ckpt", str(bad), "--frames", "2", "--size", "16", "-o", str(tmp_path / "w.mp4")])
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert "bad.pt" in proc.stderr


def test_settings_validation():
    with pytest.raises(UserError, match="--keyframes-file"):
        WalkSettings(classes="0-9", keyframes_file="k.npy").validate()


def test_an_output_never_replaces_an_input(tmp_path):
    """walk/still/compare refuse an output (or its sidecar) that is one of their inputs; the input survives."""
    from pipeline.checkpoint import resolve_checkpoint
    from pipeline.jobs.compare import CompareSettings, render_compare

    ck = tmp_path / "mine.pt"
    ck.write_bytes(resolve_checkpoint("e24").read_bytes())
    before = ck.read_bytes()
    cases = [
        lambda: render_walk(ck, ck, WalkSettings(frames=2, size=16, fmt="mp4")),
        lambda: render_compare([ck, "e6"], ck, CompareSettings(frames=2, panel_size=16, fmt="mp4")),
    ]
    for run in cases:
        with pytest.raises(UserError, match="is the input"):
            run()
    # a checkpoint named like a PNG, and a link to it: the same file under other names
    png = tmp_path / "mine.png"
    png.write_bytes(before)
    link = tmp_path / "link.png"
    link.symlink_to(png)
    with pytest.raises(UserError, match="is the input"):
        render_still(png, link, StillSettings(size=16))
    # the keyframes file, and a sidecar that would land on an input
    keys = tmp_path / "k.npy"
    np.save(keys, np.zeros((2, 32), np.float32))
    with pytest.raises(UserError, match="is the input"):
        render_walk("e24", tmp_path / "k.npy", WalkSettings(frames=2, size=16, fmt="mp4", keyframes_file=str(keys)))
    side = tmp_path / "w.mp4.json"
    side.write_bytes(before)
    with pytest.raises(UserError, match="is the input"):
        render_walk(side, tmp_path / "w.mp4", WalkSettings(frames=2, size=16))
    assert ck.read_bytes() == before and png.read_bytes() == before and side.read_bytes() == before


def test_impossible_frame_counts_are_refused_up_front(tmp_path):
    with pytest.raises(UserError, match="more than the 1,000,000 a video may have"):
        render_walk("e24", tmp_path / "w.mp4", WalkSettings(frames=1_000_000_000, size=16))
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line(capsys):
    """Any command that hits ENOSPC (or a quota) ends with one line and exit 1, not a traceback."""
    import errno

    import click

    from pipeline.cli.common import run_cli

    @click.group()
    def group():
        pass

    @group.command()
    def fill():
        raise OSError(errno.ENOSPC, "No space left on device", "/out/.w.mp4.0123abcd.partial.mp4")

    with pytest.raises(SystemExit) as exit_info:
        import sys

        argv, sys.argv = sys.argv, ["cppn-video", "fill"]
        try:
            run_cli(group)
        finally:
            sys.argv = argv
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == ("error: No space left on device writing /out/.w.mp4.0123abcd.partial.mp4; free some space or "
                   "choose another output path (nothing was written)\n")


def test_the_cli_parses_and_helps_without_importing_torch():
    """--help and argument errors must answer at once: importing torch alone takes seconds."""
    code = ("import sys; from click.testing import CliRunner; from pipeline.cli import cli; "
            "r = CliRunner(); "
            "outs = [r.invoke(cli, [c, '--help']).exit_code for c in "
            "('walk', 'still', 'compare', 'train', 'batch', 'info', 'eval', 'bench')]; "
            "bad = r.invoke(cli, ['walk', '--frames', 'x']).exit_code; "
            "print(outs, bad, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split("] ")[-1].strip() == "2 False", proc.stdout + proc.stderr
    assert proc.stdout.startswith("[0, 0, 0, 0, 0, 0, 0, 0]")


def test_progress_advances_per_frame_and_fits_80_columns(ckpt, tmp_path):
    """On the CPU a frame of 256x256 or more renders alone, so the bar moves every frame; the bar with
    counts, frames/s and ETA fits an 80-column terminal without eliding anything."""
    import io

    from rich.console import Console

    from pipeline.cli.common import progress_bar

    calls = []
    render_walk(ckpt, tmp_path / "w.mp4", WalkSettings(frames=5, size=256, keyframes=2, device="cpu",
                                                        preset="ultrafast"), progress=calls.append)
    assert calls == [0, 1, 1, 1, 1, 1]

    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    with progress_bar("rendering e24-walk.mp4", 600, unit="frames", console=console) as advance:
        for _ in range(3):
            advance(1)
    text = buf.getvalue().replace("\x1b[2K", "").replace("\r", "\n")
    last = [ln for ln in text.splitlines() if "frames/s" in ln][-1]
    assert "3/600" in last and "ETA" in last and "…" not in last and len(last.rstrip()) <= 80
