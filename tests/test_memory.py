"""Peak memory of large renders: a 3240 x 3240 still (10.5 M pixels, 10.5 MB of uint8 output) stays under 1 GB.

Renderer.__init__ used to build the whole frame's coordinates and coordinate projection with float64
temporaries (~1.5 GB at 3240), and the reference evaluated whole-frame activations; both now work a bounded
chunk of pixels at a time (pipeline.coords, pipeline.render.reference).
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.coords import grid
from pipeline.render import Renderer, available_paths, reference_frames
from pipeline.render.reference import CHUNK
from render_helpers import lively_generator

REPO = Path(__file__).resolve().parents[1]
GB = 10**9
BIG = 3240

# Runs `python -m pipeline ARGS` as its only child, so RUSAGE_CHILDREN's ru_maxrss (KiB on Linux) is that
# run's peak RSS alone, whatever else the test process started before.
_PEAK = ("import resource, subprocess, sys\n"
         "code = subprocess.run([sys.executable, '-m', 'pipeline', *sys.argv[1:]]).returncode\n"
         "print('peak_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)\n"
         "sys.exit(code)\n")


def _peak_of_cli(args: list[str], cwd: Path, timeout: float = 600) -> tuple[int, str]:
    """Run the CLI in a subprocess: (its peak RSS in bytes, its stderr); fails on a non-zero exit."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _PEAK, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return int(re.search(r"peak_kib (\d+)", proc.stdout).group(1)) * 1024, proc.stderr


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, without decoding the image."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", head
    return struct.unpack(">II", head[16:24])


def test_a_3240_still_of_e24_peaks_under_1_gb(tmp_path):
    """The CPU default (the fused kernel for resnet checkpoints): ~670 MB measured here, 2.2 GB before."""
    out = tmp_path / "e24.png"
    peak, err = _peak_of_cli(["still", "--ckpt", "e24", "--size", str(BIG), "--quiet", "-o", str(out)], tmp_path)
    assert _png_size(out) == (BIG, BIG)
    assert peak < GB, f"peak RSS {peak / 2**20:.0f} MiB for a {BIG} still\n{err}"


# ---- the memory model, in this process: what building a renderer for a 3240 frame costs beyond what it keeps


def _hwm_reset() -> int:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0); returns that RSS in bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as e:
        pytest.skip(f"cannot reset the peak RSS here ({e})")
    return _status("VmRSS")


def _status(key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1)) * 1024


def _init_overhead(gen, path: str, size: int = BIG) -> int:
    """Peak RSS growth while building a Renderer of size x size (bytes), after a small one has loaded
    everything the path needs (kernels, lazy imports)."""
    Renderer(gen, 16, 16, path=path, device="cpu").close()
    before = _hwm_reset()
    r = Renderer(gen, size, size, path=path, device="cpu")
    peak = _status("VmHWM")
    r.close()
    return peak - before


# What each path keeps for a frame of P pixels: the fused kernel its coordinate projections (float32
# [W, P]), the torch path the coordinates (float32 [3, P]), the reference nothing (it works in chunks).
_KEPT = {"cpu-fused": lambda gen, P: gen.cfg.width * P * 4, "torch": lambda gen, P: 3 * P * 4,
         "reference": lambda gen, P: 0}
# bounded temporaries (a few MB) plus allocator noise: 72 MB over what is kept was measured once on a loaded
# Zen 2 (the heap's high-water mark counts pages glibc had not returned); the regression this guards against
# was ~1.5 GB
_SLACK = 128 * 2**20


@pytest.mark.parametrize("name,path", [("e24", "cpu-fused"), ("e24", "torch"), ("e24", "reference"),
                                       ("prev", "torch"), ("prev", "reference")])
def test_building_a_3240_renderer_costs_no_more_than_it_keeps(name, path):
    """The frame-invariant setup is computed a chunk of rows at a time: its temporaries are a few MB, not the
    ~1.5 GB of float64 whole-frame grids and projections it took before (prev's torch path too, whose 3240
    still takes minutes here: too slow to run whole in the suite)."""
    gen = load_checkpoint(name).generator
    if path not in available_paths(gen.cfg.family, torch.device("cpu")):
        pytest.skip(f"{path} is not available here")
    grown = _init_overhead(gen, path)
    kept = _KEPT[path](gen, BIG * BIG)
    assert grown < kept + _SLACK, f"{name} {path}: {grown / 2**20:.0f} MiB, keeps {kept / 2**20:.0f} MiB"


# ---- the reference (the oracle) evaluates a frame a chunk of pixels at a time


class _Recording(torch.nn.Module):
    """A generator that records how many pixels each call gets."""

    def __init__(self, gen):
        super().__init__()
        self.gen, self.cfg, self.sizes = gen, gen.cfg, []

    def forward(self, z, coords):
        self.sizes.append(coords.shape[0])
        return self.gen(z, coords)


@torch.no_grad()
def _whole_frame(gen, z, height, width, scale=8.0):
    """The reference as it was: every pixel in one call per frame."""
    coords = grid(height, width, scale, dtype=z.dtype)
    return torch.cat([gen(z[i : i + 1], coords) for i in range(z.shape[0])]).view(z.shape[0], height, width)


# prev (width 128) on one frame: its three whole-frame evaluations are most of this file's time otherwise
@pytest.mark.parametrize("family,frames", [("resnet", 2), ("prev", 1)])
def test_the_reference_works_in_bounded_chunks_with_the_whole_frame_values(family, frames):
    gen, z = lively_generator(family)
    z = z[:frames]
    h, w = 300, 263  # 78900 pixels: one full chunk and a ragged one
    rec = _Recording(gen)
    got = reference_frames(rec, z, h, w)
    assert max(rec.sizes) == CHUNK and sum(rec.sizes) == frames * h * w
    want = _whole_frame(gen, z, h, w)
    assert float((got - want).abs().max()) < 1e-6
    small = _Recording(gen)  # smaller chunks (a power of two, so they line up with torch's blocks) too
    assert float((reference_frames(small, z, h, w, chunk=4096) - want).abs().max()) < 1e-6
    assert max(small.sizes) == 4096


def test_a_frame_within_one_chunk_is_the_whole_frame_evaluation():
    gen, z = lively_generator("resnet")
    assert torch.equal(reference_frames(gen, z, 37, 41), _whole_frame(gen, z, 37, 41))
    assert torch.equal(reference_frames(gen.double(), z.double(), 5, 7, 3.0),
                       _whole_frame(gen.double(), z.double(), 5, 7, 3.0))


@pytest.mark.parametrize("shape", [(1, 1), (37, 41), (1061, 990), (1, 300001), (300001, 1)])
def test_chunked_grids_and_projections_are_the_whole_frame_bytes(shape):
    """The chunked coordinates and projections against the whole-frame float64 formulas they replaced."""
    from pipeline.coords import coord_projection, grid_pixels, grid_rows, grid_t, projected_grid

    h, w = shape
    want64 = grid_rows(h, w, 3.0, 0, h, dtype=torch.float64)  # every row at once: the whole-frame computation
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(grid(h, w, 3.0, dtype=dtype), want64.to(dtype))
    want = want64.float()
    assert torch.equal(grid_t(h, w, 3.0), want.t().contiguous())
    p0, p1 = (h * w) // 3, (h * w) // 3 + min(h * w - (h * w) // 3, 70001)
    assert torch.equal(grid_pixels(h, w, 3.0, p0, p1), want[p0:p1])
    c = want.t().double()
    for width in (4, 6) + ((300,) if h * w < 5000 else ()):  # 300: chunks of 873 pixels, memory kept small
        wx = torch.randn(width, 3, generator=torch.Generator().manual_seed(width)).double()
        cp = (wx[:, 0:1] * c[0:1] + wx[:, 1:2] * c[1:2] + wx[:, 2:3] * c[2:3]).float()
        assert torch.equal(coord_projection(wx.float(), want.t().contiguous()), cp)
        assert torch.equal(projected_grid(wx.float(), h, w, 3.0), cp)
