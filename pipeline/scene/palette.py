"""Colour: a palette maps each of the 256 grey levels a render makes to an RGB colour.

Named palettes are the perceptual colour maps users know from matplotlib and colorcet (viridis, magma,
inferno, plasma, cividis, turbo, ...), read from the `cmap` package: it ships the same published data as
matplotlib, colorcet and Crameri's maps in a 1 MB pure-Python wheel that needs only numpy, where matplotlib
would bring ~40 MB of plotting machinery for four tables. `--colors "#0b1d3a,#f5e6c8"` is a gradient of your
own through two or more colours (evenly spaced, interpolated in sRGB as matplotlib's LinearSegmentedColormap
does). A palette applies after --invert: level 0 (the background, or the strokes when inverted) takes the
palette's first colour.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError

SUGGESTED = ("viridis", "magma", "inferno", "plasma", "cividis", "turbo", "twilight", "gray")


@dataclass(frozen=True)
class Palette:
    """A 256-entry RGB lookup table (uint8 [256, 3]) and where it came from."""
    name: str
    lut: np.ndarray

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """uint8 grey frames [..., H, W] -> uint8 RGB [..., H, W, 3]."""
        return self.lut[frames]


def _hex(text: str) -> tuple[int, int, int]:
    t = text.strip().lstrip("#")
    if len(t) == 3:
        t = "".join(c * 2 for c in t)
    if len(t) != 6 or any(c not in "0123456789abcdefABCDEF" for c in t):
        raise UserError(f"--colors: {text!r} is not a colour; give hex colours such as \"#0b1d3a,#f5e6c8\"",
                        key="colors")
    return int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16)


def gradient(colors) -> np.ndarray:
    """uint8 [256, 3] through the given colours, evenly spaced from level 0 to level 255."""
    stops = [_hex(c) for c in (colors.split(",") if isinstance(colors, str) else colors)]
    if len(stops) < 2:
        raise UserError("--colors needs at least two colours, e.g. \"#0b1d3a,#f5e6c8\"", key="colors")
    at = np.linspace(0.0, 1.0, len(stops))
    levels = np.arange(256) / 255.0
    rgb = np.stack([np.interp(levels, at, [s[c] for s in stops]) for c in range(3)], axis=1)
    return np.floor(rgb + 0.5).astype(np.uint8)


def named(name: str) -> np.ndarray:
    """uint8 [256, 3] of a named colour map."""
    try:
        from cmap import Colormap
    except ImportError:
        raise UserError("--palette needs the cmap package: pip install cmap") from None
    try:
        lut = Colormap(name).lut(256)[:, :3]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"unknown --palette {name!r}; try one of {', '.join(SUGGESTED)} (any name the cmap package "
                        f"knows works)", key="palette") from None
    return np.floor(np.clip(lut, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def palette(name: str | None = None, colors=None) -> Palette | None:
    """The palette a render asks for, or None for plain grey frames (the default)."""
    if name is not None and colors is not None:
        raise UserError("--palette and --colors both colour the frames; give one", key="colors")
    if colors is not None:
        return Palette("colors:" + (colors if isinstance(colors, str) else ",".join(colors)), gradient(colors))
    if name is None:
        return None
    return Palette(str(name), named(str(name)))


def palette_of(settings) -> Palette | None:
    """The palette a settings record (walk, compare, still) asks for."""
    return palette(getattr(settings, "palette", None), getattr(settings, "colors", None))
