"""The EXAMPLES at the end of `walk --help` and `compare --help` are exact commands that work: each is parsed by
the CLI itself and its settings validated (rendering them is the README's and examples/'s business)."""
import shlex

import pytest

import pipeline.jobs
import pipeline.jobs.kinds
from cli_helpers import run_main
from pipeline.checkpoint import list_bundled
from pipeline.cli import examples


def _help_commands(command: str) -> list[list[str]]:
    res = run_main([command, "--help"])
    assert res.returncode == 0
    block = res.stdout[res.stdout.index("Examples:"):]
    return [shlex.split(line.strip()) for line in block.splitlines() if line.strip().startswith("cppn-video ")]


@pytest.mark.parametrize("command, recipes", [("walk", examples.WALK), ("compare", examples.COMPARE)])
def test_help_examples_parse_and_validate(command, recipes, monkeypatch, tmp_path):
    lines = _help_commands(command)
    assert lines == [shlex.split(c) for _, c in recipes] and len(lines) == 3  # shown whole, unwrapped
    seen = []

    def fake_walk(ckpt, out, settings, progress=None, **_):
        settings.validate()
        seen.append(([ckpt], settings))
        return {}

    def fake_compare(ckpts, out, settings, progress=None, panel_times=None):
        settings.walk().validate()
        seen.append((ckpts, settings))
        return {}

    monkeypatch.setattr(pipeline.jobs.kinds, "run_walk", fake_walk)
    monkeypatch.setattr(pipeline.jobs, "render_compare", fake_compare)
    monkeypatch.chdir(tmp_path)
    for argv in lines:
        res = run_main(argv[1:] + ["--quiet"])
        assert res.returncode == 0, (argv, res.stderr)
    assert len(seen) == 3
    for ckpts, _ in seen:
        assert set(ckpts) <= set(list_bundled())
    if command == "walk":
        assert seen[1][1].digits == "8,6,4,2,0,1,3,5,7" and seen[1][1].resolved().frames == 241
        assert seen[2][1].resolved().frames == 300 and seen[2][1].canvas() == (1920, 1080)
    else:
        assert seen[1][1].labels == ("previous", "6 epochs", "24 epochs", "width 4")
