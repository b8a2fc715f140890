"""Typo suggestions name only close flags, commands and preset keys (pipeline.text.close_matches)."""
from cli_helpers import run_main
from pipeline.jobs.typecheck import suggest
from pipeline.text import close_matches


def test_far_flags_are_not_suggested():
    assert close_matches("--zoom", ["--loop", "--seeds"]) == []  # click's own 0.6 would say --loop
    assert close_matches("--lop", ["--loop", "--zoom"]) == ["--loop"]
    res = run_main(["walk", "--lossless"])  # click alone: "Did you mean '--classes'?"
    assert res.returncode == 2 and "No such option '--lossless'" in res.stderr and "mean" not in res.stderr
    res = run_main(["walk", "--seedz", "3"])
    assert "'--seed', '--seeds'" in res.stderr
    res = run_main(["wlak"])
    assert "Did you mean 'walk'?" in res.stderr
    assert suggest("fram", ["frames", "fps"]) == "; did you mean 'frames'?" and suggest("zoom", ["loop"]) == ""
