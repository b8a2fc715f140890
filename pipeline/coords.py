"""Pixel coordinate grids (x, y, r) as the article defines them.

Large frames are computed a chunk of rows at a time into the preallocated result, so the float64
temporaries stay bounded (a few MB) whatever the frame size: a 3240 x 3240 frame has 10.5 M pixels, and its
whole-frame float64 temporaries were ~1.5 GB. Every value is a function of its own pixel only, so the
chunked results are the same bytes as whole-frame ones.
"""
from __future__ import annotations

import numpy as np
import torch

# Elements per chunk of float64 temporaries: [n] per coordinate in grids, [W, n / W] in projections: 8 MB each,
# ~50 MB at most in all. Not smaller: glibc's malloc raises its mmap threshold to the largest block freed (up to
# 32 MB), and the torch path's per-tile temporaries (up to 3 MB) come from its heap only while that threshold is
# above them; with 2 MB chunks every tile took fresh pages (50-170 k page faults, 10-20% slower per 1080 frame).
CHUNK_PIXELS = 1 << 20


def row_chunks(height: int, width: int, pixels: int = CHUNK_PIXELS) -> list[tuple[int, int]]:
    """Row ranges [r0, r1) of about `pixels` pixels each (at least one row), covering the frame in order."""
    rows = max(1, pixels // max(1, width))
    return [(r0, min(r0 + rows, height)) for r0 in range(0, height, rows)]


def coord_projection(w_xyr, coords_t, out: torch.Tensor | None = None, chunk: int | None = CHUNK_PIXELS):
    """W_xyr @ (x, y, r) per pixel: [W, 3] x [3, P] -> float32 [W, P], the same bytes on any thread count.

    A matrix product's rounding depends on how BLAS splits it (threads, blocking), which made frames
    depend on torch.set_num_threads; three products summed in float64 in a fixed order, rounded once, do not.
    Evaluated `chunk` // W pixels at a time (each pixel's column on its own, so the same bytes; None: all at
    once, for callers whose P is already bounded), into `out` when given (float32 [W, P], or a view of one).
    """
    w = w_xyr.double()
    W, P = w.shape[0], coords_t.shape[1]
    w0, w1, w2 = w[:, 0:1], w[:, 1:2], w[:, 2:3]
    step = max(1, P) if chunk is None else max(1, chunk // max(1, W))
    if out is None:
        if P <= step:  # one chunk: no separate result to fill
            c = coords_t.double()
            return (w0 * c[0:1] + w1 * c[1:2] + w2 * c[2:3]).float()
        out = torch.empty((W, P), dtype=torch.float32, device=coords_t.device)
    elif out.shape != (W, P) or out.dtype != torch.float32:
        raise ValueError(f"out must be float32 {(W, P)}, got {out.dtype} {tuple(out.shape)}")
    for p0 in range(0, P, step):
        p1 = min(p0 + step, P)
        c = coords_t[:, p0:p1].double()
        out[:, p0:p1] = w0 * c[0:1] + w1 * c[1:2] + w2 * c[2:3]  # rounded to float32 once, as .float() does
    return out


def axis(n: int, scale: float, span: int | None = None) -> torch.Tensor:
    """n values centred on 0 at the pixel pitch of `span` pixels (default n) spanning [-scale, scale]:
    scale * (i - (n-1)/2) / ((span-1)/2)."""
    span = n if span is None else span
    if span == 1:
        return torch.zeros(n, dtype=torch.float64) if n == 1 else scale * (torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0)
    half = (span - 1) / 2.0
    return scale * (torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0) / half


def axes(height: int, width: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x [width], y [height]) of a frame: the shorter side spans [-scale, scale] and the longer one goes on at the
    same pitch, so a 1920x1080 frame is the 1080x1080 one with more of the plane on both sides, unstretched."""
    span = min(height, width)
    return axis(width, scale, span), axis(height, scale, span)


def _rows(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, y, r) in float64 of the pixels of rows with coordinates y, row-major: three [len(y) * len(x)]."""
    yy, xx = torch.meshgrid(y, x, indexing="ij")  # [rows, W] each
    r = torch.sqrt(xx * xx + yy * yy)
    return xx.reshape(-1), yy.reshape(-1), r.reshape(-1)


def grid_rows(height: int, width: int, scale: float, r0: int, r1: int, dtype=torch.float32) -> torch.Tensor:
    """Coordinates of the pixels of rows r0..r1-1 of the frame: [(r1 - r0) * width, 3], as rows of `grid`."""
    x, y = axes(height, width, scale)
    y = y[r0:r1]
    return torch.stack(_rows(x, y), dim=-1).to(dtype)


def grid_pixels(height: int, width: int, scale: float, p0: int, p1: int, dtype=torch.float32) -> torch.Tensor:
    """Coordinates of pixels p0..p1-1 of the frame (row-major): [p1 - p0, 3], as rows of `grid`."""
    r0, r1 = p0 // width, -(-p1 // width)
    return grid_rows(height, width, scale, r0, r1, dtype)[p0 - r0 * width : p1 - r0 * width]


def grid(height: int, width: int, scale: float = 8.0, dtype=torch.float32) -> torch.Tensor:
    """Coordinates of every pixel, row-major: [height * width, 3] with columns (x, y, r)."""
    return _fill(height, width, scale, torch.empty((height * width, 3), dtype=dtype), transposed=False)


def grid_t(height: int, width: int, scale: float = 8.0, dtype=torch.float32) -> torch.Tensor:
    """`grid` transposed, contiguous: [3, height * width] (rows x, y, r), without the [P, 3] copy."""
    return _fill(height, width, scale, torch.empty((3, height * width), dtype=dtype), transposed=True)


def _fill(height: int, width: int, scale: float, out: torch.Tensor, transposed: bool) -> torch.Tensor:
    x, y = axes(height, width, scale)
    for r0, r1 in row_chunks(height, width):
        p0, p1 = r0 * width, r1 * width
        for k, v in enumerate(_rows(x, y[r0:r1])):  # copy_ rounds float64 -> dtype as .to(dtype) does
            (out[k, p0:p1] if transposed else out[p0:p1, k]).copy_(v)
    return out


def projected_grid(w_xyr: torch.Tensor, height: int, width: int, scale: float = 8.0) -> torch.Tensor:
    """coord_projection(w_xyr, grid_t(height, width, scale)) without the whole-frame grid: float32 [W, P],
    the same bytes (each chunk's coordinates rounded to float32 first, as the grid is), built a chunk of rows
    at a time."""
    W = w_xyr.shape[0]
    out = torch.empty((W, height * width), dtype=torch.float32)
    x, y = axes(height, width, scale)
    for r0, r1 in row_chunks(height, width, max(1, CHUNK_PIXELS // max(1, W))):
        c = torch.stack([v.float() for v in _rows(x, y[r0:r1])])  # [3, n] float32, as grid_t's columns
        coord_projection(w_xyr, c, out=out[:, r0 * width : r1 * width])
    return out


# A moving camera (pipeline.scene.camera): each frame maps its pixels' base coordinates s (the axes above at the
# render's scale) to the plane as pan + R(rotate) s / zoom, an affine map of the pixel's column and row. Every path
# computes x, y and r from it in float64 and rounds once, at the first layer's projection (no per-frame grid).
AFFINE = 6  # per frame: x = a0 + a1 col + a2 row, y = a3 + a4 col + a5 row


def _cos_sin(degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of angles in degrees, exact at multiples of 90 (cos(pi/2) is 6e-17 in floating point)."""
    d = np.mod(np.asarray(degrees, np.float64), 360.0)
    c, s = np.cos(np.radians(d)), np.sin(np.radians(d))
    for at, (cv, sv) in ((0.0, (1.0, 0.0)), (90.0, (0.0, 1.0)), (180.0, (-1.0, 0.0)), (270.0, (0.0, -1.0))):
        c, s = np.where(d == at, cv, c), np.where(d == at, sv, s)
    return c, s


def camera_affine(height: int, width: int, scale: float, zoom, pan, rotate) -> np.ndarray:
    """Per-frame affine maps [F, 6] float64 (AFFINE) from (column, row) to plane (x, y) for cameras zoom [F],
    pan [F, 2], rotate [F] degrees (counterclockwise on screen: y grows downwards)."""
    span = min(height, width)
    pitch = scale / ((span - 1) / 2.0) if span > 1 else scale  # as axis(): plane units per pixel at zoom 1
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    zoom = np.asarray(zoom, np.float64)
    pan = np.asarray(pan, np.float64).reshape(-1, 2)
    c, s = _cos_sin(rotate)
    k = pitch / zoom
    xc, xr, yc, yr = k * c, -k * s, k * s, k * c
    out = np.empty((len(zoom), AFFINE), np.float64)
    out[:, 0] = pan[:, 0] - (xc * cx + xr * cy)
    out[:, 1], out[:, 2] = xc, xr
    out[:, 3] = pan[:, 1] - (yc * cx + yr * cy)
    out[:, 4], out[:, 5] = yc, yr
    return out


def mapped_pixels(affine, width: int, p0: int, p1: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, y, r) float64 [p1 - p0] of pixels p0..p1-1 (row-major, `width` per row) under one frame's affine [6]."""
    a = [float(v) for v in affine]
    idx = torch.arange(p0, p1, dtype=torch.int64)
    row, col = (idx // width).double(), (idx % width).double()
    x = a[0] + a[1] * col + a[2] * row
    y = a[3] + a[4] * col + a[5] * row
    return x, y, torch.sqrt(x * x + y * y)
