"""benchmarks/renderbox_check: the GPU window's script, dry-run at toy size on the CPU (RENDERBOX_DRY_RUN=1),
in-process. The steps that need minutes even at toy size on 2 cores (GPU tests, compare, train) are dry-run
by hand (docs/PERFORMANCE.md); here the plan, the render and the walk matrix, and the one-line wheel error."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import renderbox_check  # noqa: E402


def test_dry_run_writes_every_walk_row(tmp_path, monkeypatch):
    monkeypatch.setenv("RENDERBOX_DRY_RUN", "1")
    assert renderbox_check.main(["--out", str(tmp_path), "--steps", "render,host_ring,walks"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "renderbox.jsonl").read_text().splitlines()]
    plan = rows[0]
    assert plan["step"] == "plan" and plan["dry_run"] and plan["device"] == "cpu"
    walks = [r for r in rows if r["step"] == "walks" and "preset" in r]
    assert {(r["preset"], r["encoders"]) for r in walks} == {(p, n) for p in plan["presets"] for n in plan["encoders"]}
    assert all(r["mp4_fps"] > 0 and r["frames"] == plan["walk_frames"] and 0 < r["e2e_vs_render"] for r in walks)
    render = next(r for r in rows if r["step"] == "render" and "render_fps" in r)
    assert render["render_fps"] > 0 and render["size"] == plan["render_size"]
    ring = next(r for r in rows if r["step"] == "host_ring" and "ring_fps" in r)
    assert ring["equal_to_sync"] and ring["ring_fps"] > 0 and ring["sync_fps"] > 0 and ring["frames"] == 8
    assert rows[-1] == {"step": "done", "failed_steps": 0}
    # the real plan is what the issue asks for: 600-frame 1080 walks, two presets, 1/4/8 encoders
    real = renderbox_check.plan(False)
    assert (real["walk_frames"], real["walk_size"], real["encoders"]) == (600, 1080, [1, 4, 8])


def test_a_failing_step_is_one_row_and_the_rest_go_on(tmp_path):
    rec = renderbox_check.Recorder(tmp_path)

    def broken():
        yield {"x": 1}
        raise ValueError("boom")

    rec.step("broken", broken)
    rec.step("fine", lambda: iter([{"y": 2}]))
    rows = [json.loads(line) for line in (tmp_path / "renderbox.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == ["broken", "broken", "fine", "fine"]
    assert rows[1]["ok"] is False and "ValueError: boom" in rows[1]["error"] and rows[3]["ok"] is True
    assert rec.failed == 1


def test_script_without_the_wheel_says_so_in_one_line(tmp_path):
    """No imageio-ffmpeg and no carried wheel: one line naming the pip download, before any Python step."""
    fake = tmp_path / "bin"
    fake.mkdir()
    # a python that has torch but fails the imageio_ffmpeg check, without starting torch (fast)
    (fake / "python").write_text('#!/bin/sh\ncase "$*" in *imageio_ffmpeg*) exit 1;; *) exit 0;; esac\n')
    (fake / "python").chmod(0o755)
    wheels = ROOT / "benchmarks" / "wheels"
    if wheels.is_dir() and any(wheels.glob("imageio_ffmpeg-0.6.0-*.whl")):
        pytest.skip("a carried wheel would be installed; the missing-wheel line is not reachable")
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "renderbox_check.sh")], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "OUT": str(tmp_path / "o")})
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip download imageio-ffmpeg==0.6.0 --no-deps -d benchmarks/wheels" in lines[0]
