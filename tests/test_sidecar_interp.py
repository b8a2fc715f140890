"""A sidecar says what was rendered: class transitions are straight lines whatever --interp says."""
import json

import pytest

from pipeline.checkpoint import list_bundled
from pipeline.jobs.render import render_walk
from pipeline.jobs.settings import CompareSettings, WalkSettings
from pipeline.jobs.sidecar import header

pytestmark = pytest.mark.skipif("e24" not in list_bundled(), reason="the bundled e24 checkpoint is not here")


def test_class_transition_sidecar_records_lerp(tmp_path):
    info = render_walk("e24", tmp_path / "c", WalkSettings(frames=3, size=16, classes="3,1", fmt="png"))
    assert info["settings"]["interp"] == "lerp" and info["kind"] == "classes"
    assert json.loads((tmp_path / "c.json").read_text())["settings"]["interp"] == "lerp"
    # other paths keep the interpolation they rendered with; a comparison of classes is recorded as lerp too
    assert header("walk", "w.mp4", 8, 8, WalkSettings(interp="cubic"))["settings"]["interp"] == "cubic"
    assert header("compare", "c.mp4", 8, 8, CompareSettings(classes="0-9"))["settings"]["interp"] == "lerp"
