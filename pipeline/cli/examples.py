"""The recipes at the end of `walk --help` and `compare --help`: the three each that people want first, as
exact commands (tests/test_help_examples.py parses every one through the CLI and validates its settings)."""
from __future__ import annotations

WALK = [
    ("4 seconds through stored real digits of varied classes (the README's quick start)",
     "cppn-video walk --frames 120 -o walk.mp4"),
    ("the article's video: real digits 8,6,4,2,0,1,3,5,7, straight lines, 30 frames each, dark on white",
     "cppn-video walk --ckpt e24 --digits 8,6,4,2,0,1,3,5,7 --interp lerp --ease linear --frames 241 --invert "
     "-o article.mp4"),
    ("a 10-second 1920x1080 loop in magma, each digit held half a second",
     "cppn-video walk --digits 3,8,5,2,9,0,6 --interp lerp --size 1920x1080 --palette magma --duration 10s "
     "--hold 0.5s --loop -o wide.mp4"),
]

COMPARE = [
    ("the previous model and the new one after 6 and 24 epochs, side by side (1920x688)",
     "cppn-video compare prev e6 e24 -o compare.mp4"),
    ("all four bundled models through the same real digits, captioned, as the article's clips",
     "cppn-video compare prev e6 e24 w4 --labels \"previous,6 epochs,24 epochs,width 4\" --digits 1,4,6,9,4,5,6,2 "
     "--interp lerp --ease linear --frames 211 -o digits.mp4"),
    ("digit-class transitions 0 to 9, two panels of 540",
     "cppn-video compare e6 e24 --classes 0-9 --panel-size 540 -o classes.mp4"),
]


def epilog(recipes) -> str:
    """The help's EXAMPLES block; \\b keeps click from rewrapping it."""
    lines = ["\b", "Examples:"]
    for what, command in recipes:
        lines += [f"  # {what}", f"  {command}"]
    return "\n".join(lines)
