"""The Triton kernel against the oracle, on the CPU through Triton's interpreter (TRITON_INTERPRET=1).

The interpreter must be switched on before triton is imported, so the check runs in a subprocess.
"""
import json

import pytest

from proc_helpers import run_interpreted

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

SCRIPT = r"""
import json, sys, numpy as np, torch
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from render_helpers import lively_generator
from pipeline.coords import grid
from pipeline.render import reference_frames, to_uint8
from pipeline.render.triton_kernel import TritonResnet
results = []
# Float output at odd sizes: BLOCK 512 puts 483 pixels in one partly masked tile (two frames: the frame
# offset), 576 in a full one and a partly masked one (one frame). The uint8 epilogue (plain and inverted),
# shared by both layouts, on one small tile of one frame per layout: the interpreter's cost is per program
# (tile x frame), about half a second each, so this keeps it cheap.
for layout, width, (h, w), n in (("channels", 6, (23, 21), 2), ("channels", 4, (24, 24), 1),
                                 ("broadcast", 6, (9, 7), 2)):
    gen, z = lively_generator("resnet", width)
    z = z[-n:]  # the liveliest frames (the first of width 4 is nearly flat)
    kernel = TritonResnet(gen, torch.device("cpu"), block=512, layout=layout)
    zb = gen.input.z(z * gen.cfg.z_scale).detach()
    ref = reference_frames(gen, z, h, w).reshape(n, -1)
    out = kernel(grid(h, w).t().contiguous(), zb)
    row = dict(layout=layout, width=width, err=float((out - ref).abs().max()), std=float(ref.std()),
               shape=list(out.shape))
    if width == 6:
        small = reference_frames(gen, z[:1], 5, 7).reshape(1, -1)
        coords = grid(5, 7).t().contiguous()
        u8 = kernel(coords, zb[:1], invert=True)
        plain = kernel(coords, zb[:1], invert=False)
        row.update(u8_dtype=str(u8.dtype), u8_shape=list(u8.shape),
                   u8_maxdiff=max(int((u8.int() - to_uint8(small, invert=True).int()).abs().max()),
                                  int((plain.int() - to_uint8(small, invert=False).int()).abs().max())))
    results.append(row)
# A moving camera (each program makes its pixels' float64 coordinates from its frame's affine map): two frames
# (zoomed, panned and turned) in floats on the channels layout, the second inverted in uint8 on the broadcast one.
from pipeline.coords import camera_affine
gen, z = lively_generator("resnet", 6)
zb = gen.input.z(z * gen.cfg.z_scale).detach()
h, w = 9, 11
aff = camera_affine(h, w, 8.0, np.array([3.0, 0.6]), np.array([[1.5, -2.0], [0.3, 0.1]]), np.array([37.0, 90.0]))
ref = reference_frames(gen, z[:2], h, w, affine=aff).reshape(2, -1)
cam = {}
for layout, frames, invert in (("channels", slice(0, 2), None), ("broadcast", slice(1, 2), True)):
    kernel = TritonResnet(gen, torch.device("cpu"), block=512, layout=layout)
    out = kernel.moving(aff[frames], w, h * w, zb[frames], invert)
    want = ref[frames] if invert is None else to_uint8(ref[frames], invert=True)
    cam[f"{layout}-{invert}"] = float((out.double() - want.double()).abs().max())
print(json.dumps(results + [dict(camera=cam, std=float(ref.std()), differ=float((ref[0] - ref[1]).abs().max()))]))
"""


def test_triton_kernel_matches_oracle_in_interpreter():
    results = json.loads(run_interpreted(SCRIPT).strip().splitlines()[-1])
    cam = results.pop()
    assert cam["std"] > 0.1 and cam["differ"] > 0.1  # lively frames, and the camera moved between them
    assert cam["camera"]["channels-None"] < 1e-4, cam
    assert cam["camera"]["broadcast-True"] <= 1, cam  # uint8, inverted: within one grey level
    assert [(r["layout"], r["width"]) for r in results] == [("channels", 6), ("channels", 4), ("broadcast", 6)]
    for r in results:
        assert r["std"] > 0.05
        assert r["err"] < 1e-4, r
    for r in (results[0], results[2]):
        assert r["u8_dtype"] == "torch.uint8" and r["u8_shape"] == [1, 35] and r["u8_maxdiff"] <= 1
    assert results[0]["shape"] == [2, 23 * 21] and results[1]["shape"] == [1, 24 * 24]  # masked tails


OFFSETS = r"""
import sys, torch
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
import triton
from render_helpers import lively_generator
from pipeline.coords import grid
from pipeline.render import triton_kernel as tk
from pipeline.render.cpu_fused import pack_resnet
from pipeline.models import ResnetConfig, ResnetGenerator

torch.manual_seed(0)
gen = ResnetGenerator(ResnetConfig(n_blocks=1)).eval()  # one block: the point is the addressing
BLOCK, FRAMES, P = 64, 9, 1 << 28  # frame 8 starts at 8 * 2**28 = 2**31: past a 32-bit index
small = grid(8, 8).t().contiguous()  # [3, 64]: the first tile's coordinates
coords = torch.empty(3 * P)  # 3 GB of address space, never touched but for the first tile of each row
for c in range(3):
    coords[c * P : c * P + BLOCK] = small[c]
z = torch.randn(FRAMES, 32, generator=torch.Generator().manual_seed(1))
zb = gen.input.z(z * gen.cfg.z_scale).detach().contiguous()
params, wxyr = torch.from_numpy(pack_resnet(gen)), gen.input.xyr.weight.detach().contiguous()
out = torch.empty((FRAMES, P), dtype=torch.uint8)  # 2.4 GB of address space, a page per frame touched
out[:, : 2 * BLOCK] = 0
tk._resnet_channels_kernel[(1, FRAMES)](coords, zb, wxyr, params, out, P, n_blocks=1, WIDTH=6, RELU_LAYERS=4,
                                        BLOCK=BLOCK, OUT_U8=True, INVERT=False)
want = torch.empty((FRAMES, BLOCK), dtype=torch.uint8)
tk._resnet_channels_kernel[(1, FRAMES)](small, zb, wxyr, params, want, BLOCK, n_blocks=1, WIDTH=6, RELU_LAYERS=4,
                                        BLOCK=BLOCK, OUT_U8=True, INVERT=False)
print(int(torch.equal(out[:, :BLOCK], want)), int(out[-1, :BLOCK].sum()), int(out[:, BLOCK:2 * BLOCK].sum()))
"""


def test_frame_offsets_past_two_to_the_31_are_64_bit():
    """frame * P passes 2**31 (8 frames of 16384x16384; here 9 frames of 2**28 pixels, of which only the first
    tile is rendered): the last frame's pixels land in the last row, not at a wrapped 32-bit index."""
    same, last, beyond = map(int, run_interpreted(OFFSETS).split())
    assert same == 1 and last > 0 and beyond == 0
