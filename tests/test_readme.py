"""The README's Python example runs as written (with the bundled checkpoint)."""
import re
from pathlib import Path

import pytest

from pipeline.checkpoint import list_bundled
from video_helpers import read_video

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.skipif("e24" not in list_bundled(), reason="the bundled e24 checkpoint is not in this checkout")
def test_readme_python_example(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["frames"].shape == (4, 256, 256)
    assert read_video(tmp_path / "walk-small.mp4").shape == (24, 128, 128)
    assert (tmp_path / "walk-small.mp4.json").is_file()


def test_readme_quick_start_commands_are_the_ci_commands():
    """The README's test command is what .ci/run runs; its install line installs CPU torch first."""
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python -m pytest -q" in text and "python -m pytest -q" in ci
    assert "pip install torch==2.13.0" in text and "torch==2.13.0" in ci


def test_readme_preset_example_loads_as_described(tmp_path):
    """The README's preset block: a 16:9 coloured walk whose keyframes sit at 0, 4 and 8 s with their holds."""
    from pipeline.batch import load_preset

    block = re.search(r"```toml\n(\[jobs\.intro\].*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "p.toml").write_text(block)
    s = load_preset(tmp_path / "p.toml").jobs["intro"].settings
    timeline = s.resolved().timeline(3)
    assert s.canvas() == (1920, 1080) and s.palette == "magma"
    assert timeline.arrive == (0, 120, 240) and timeline.hold == (30, 1, 60)  # at 30 fps
