"""The canvas: a frame's width and height. `1080` is square, `1920x1080` (also `1920*1080`, `1920:1080`) any
shape. Coordinates are never stretched: the shorter side spans [-scale, scale] as a square frame does, and
the longer side shows more of the plane at the same pixel pitch (pipeline.coords.grid)."""
from __future__ import annotations

import re

from pipeline.errors import UserError

_SIZE = re.compile(r"^\s*(\d+)\s*(?:[x*:X\u00d7]\s*(\d+))?\s*$")


def parse_canvas(value, what: str = "--size", key: str = "size") -> tuple[int, int]:
    """(width, height) from 1080, "1080" or "1920x1080"; UserError naming `what` otherwise."""
    if isinstance(value, bool):
        raise UserError(f"{what} must be pixels such as 1080 or 1920x1080, got {value!r}", key=key)
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    m = _SIZE.match(str(value))
    if not m:
        raise UserError(f"{what} must be pixels such as 1080 or 1920x1080, got {value!r}", key=key)
    width = int(m.group(1))
    return width, int(m.group(2)) if m.group(2) else width


def canvas_text(width: int, height: int) -> str:
    return str(width) if width == height else f"{width}x{height}"
