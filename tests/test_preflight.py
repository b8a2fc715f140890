"""The shared preflight: every render job refuses an impossible size, length or memory need at once (well under a
second, before a checkpoint is read or ffmpeg runs) with one line naming the limit, and writes nothing."""
from __future__ import annotations

import time

import pytest

from cli_helpers import run_main
from pipeline.batch import load_preset
from pipeline.batch.preset import PresetError
from pipeline.scene import preflight as pf


@pytest.fixture(autouse=True, scope="module")
def _imported():
    """What the CLI imports on its first call (torch with the render modules) is loaded once beforehand: the
    time measured is the refusal's."""
    import pipeline.jobs.compare  # noqa: F401
    import pipeline.jobs.render  # noqa: F401


def refused(args: list[str], *needles: str) -> str:
    t0 = time.perf_counter()
    res = run_main(args)
    seconds = time.perf_counter() - t0
    assert res.returncode != 0, res
    line = res.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, line
    for needle in needles:
        assert needle in line, line
    assert seconds < 0.5, (seconds, line)  # no checkpoint load, no ffmpeg probe
    return line


def test_walk_larger_than_h264_frames_is_refused_at_once(tmp_path):
    out = tmp_path / "w.mp4"
    refused(["walk", "--size", "16000", "--frames", "4", "-o", out], "16000x16000", "8192", "PNG frames")
    refused(["walk", "--size", "9000", "--frames", "4", "-o", out], "8192")
    assert list(tmp_path.iterdir()) == []


def test_compare_frame_larger_than_h264_is_refused_at_once(tmp_path):
    line = refused(["compare", "e6", "e24", "--panel-size", "8000", "--frames", "4", "-o", tmp_path / "c.mp4"],
                   "--panel-size 8000", "16000x", "8192")
    assert "2x1 panels" in line
    assert list(tmp_path.iterdir()) == []


def test_too_many_frames_is_refused_at_once(tmp_path):
    refused(["walk", "--size", "64", "--frames", "2000000", "-o", tmp_path / "w.mp4"], "1,000,000")


def test_a_render_that_needs_more_memory_than_there_is_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pf, "available_memory", lambda: 2**30)  # a 1 GB machine
    refused(["still", "--size", "8000", "-o", tmp_path / "s.png"], "8000x8000", "GB of memory", "1.0 GB is available")
    refused(["walk", "--size", "8000", "--frames", "2", "-o", tmp_path / "f"], "GB of memory")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(pf, "available_memory", lambda: None)  # unknown: no refusal on memory
    pf.check_memory(8000, 8000)


def test_a_still_grid_contact_sheet_past_the_largest_side_is_refused(tmp_path):
    refused(["still", "--seeds", "0-7", "--grid", "8x1", "--size", "4096", "--outdir", tmp_path / "d"],
            "32768x4096", "16384")


def test_presets_are_preflighted_at_load_for_every_job(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[jobs.w]\nkind = "walk"\nckpt = "e24"\nsize = 10000\nframes = 4\n\n'
                      '[jobs.c]\nkind = "compare"\nckpts = ["e6", "e24"]\npanel_size = 6000\nframes = 4\n\n'
                      '[jobs.s]\nkind = "still"\nckpt = "e24"\nsize = 20000\n')
    t0 = time.perf_counter()
    with pytest.raises(PresetError) as err:
        load_preset(preset)
    assert time.perf_counter() - t0 < 1.0
    problems = err.value.problems
    assert len(problems) == 3, problems
    assert "job w, key size" in problems[0] and "8192" in problems[0]
    assert "job c, key panel_size" in problems[1] and "--panel-size 6000" in problems[1]
    assert "job s, key size" in problems[2] and "16384" in problems[2]


def test_serve_render_requests_use_the_same_preflight():
    from pipeline.errors import UserError
    from pipeline.serve import requests

    with pytest.raises(UserError, match="8192"):
        requests.size({"size": 10000}, "size", 512, 2**31, even=True)




# In a fresh interpreter, as a user runs it: the refusal comes before torch and the render modules are imported
# (those take 1-2 s on the project's CPUs), so the whole command answers in a fraction of a second.
_FRESH = r"""
import sys
from pipeline.cli import main
sys.argv = ["cppn-video", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    print("exit", e.code, "torch" in sys.modules)
"""


@pytest.mark.parametrize("args,needle", [
    (["walk", "--size", "20000"], "outside 1..16384 pixels a side"),
    (["walk", "--size", "64", "--frames", "2000000"], "1,000,000"),
    (["walk", "--grid", "2x2", "--seeds", "0-7", "--size", "9000"], "the frame of a --grid 2x2"),
    (["still", "--size", "20000"], "outside 1..16384"),
    (["compare", "e6", "e24", "--panel-size", "9000"], "the frame of 2x1 panels"),
    (["compare", "e6", "e24", "--labels", "a"], "1 labels were given for 2 checkpoints"),
])
def test_a_fresh_cli_refuses_before_torch_loads(tmp_path, args, needle):
    import subprocess
    import sys

    out = tmp_path / "x.mp4"
    res = subprocess.run([sys.executable, "-c", _FRESH, *args, "-o", str(out)], capture_output=True, text=True,
                         timeout=60)
    assert res.stdout.strip() == "exit 1 False", (res.stdout, res.stderr)
    line = res.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and needle in line, line
    assert list(tmp_path.iterdir()) == []
