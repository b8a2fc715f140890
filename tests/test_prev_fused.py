"""prev's fused CPU kernel (pipeline/render/prev_kernel.c) against the float64 oracle: static and moving camera,
plain and inverted, a wide canvas, sizes that are no multiple of the vector width, every instruction set this CPU
runs; and the same bytes whatever the batch, tile or thread count."""
import copy

import numpy as np
import pytest
import torch

from pipeline import native
from pipeline.coords import camera_affine
from pipeline.render import Renderer, available_paths, reference_frames, to_uint8
from pipeline.render import cpu_fused
from pipeline.scene.camera import CameraTrack
from render_helpers import lively_generator

pytestmark = pytest.mark.skipif(not cpu_fused.available("prev"), reason="no C compiler: fused CPU kernel unavailable")

# zoomed in, panned and turned by a non-right angle, differently per frame
CAMERA = CameraTrack(np.array([1.0, 2.5, 0.7]), np.array([[0.0, 0.0], [1.5, -0.5], [-2.0, 1.0]]),
                     np.array([0.0, 30.0, 200.0]))


def oracle(gen, z, height, width, scale=8.0, camera=None):
    affine = None if camera is None else camera_affine(height, width, scale, camera.zoom, camera.pan, camera.rotate)
    return reference_frames(copy.deepcopy(gen).double(), z.double(), height, width, scale, affine=affine).float()


@pytest.mark.parametrize("height,width,camera", [(13, 21, None), (21, 13, None), (32, 32, None), (13, 21, CAMERA)])
def test_prev_fused_is_the_oracle_within_one_level(height, width, camera):
    gen, z = lively_generator("prev")
    ref = oracle(gen, z, height, width, camera=camera)
    assert ref.std() > 0.1  # real contrast, not a flat frame
    with Renderer(gen, height, width, path="cpu-fused") as r:
        assert (r.render_float(z, camera=camera) - ref).abs().max() < 1e-4
        for invert in (False, True):
            diff = np.abs(r.render(z, invert=invert, camera=camera).astype(int) - to_uint8(ref, invert).numpy())
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_auto_picks_the_fused_kernel_for_prev_on_the_cpu():
    assert available_paths("prev", torch.device("cpu"))[0] == "cpu-fused"
    gen, _ = lively_generator("prev")
    assert Renderer(gen, 8, 8).path == "cpu-fused"


def test_a_width_that_is_no_multiple_of_the_register_block_is_padded_exactly():
    from pipeline.models import PrevConfig, PrevGenerator
    torch.manual_seed(1)
    gen = PrevGenerator(PrevConfig(width=21, init_std=0.4)).eval()
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    ref = oracle(gen, z, 13, 21)
    out = Renderer(gen, 13, 21, path="cpu-fused").render_float(z)
    assert ref.std() > 0.05 and (out - ref).abs().max() < 1e-4


@pytest.mark.parametrize("camera", [None, CAMERA])
def test_prev_fused_bytes_do_not_depend_on_batch_tile_or_threads(camera):
    gen, z = lively_generator("prev")
    base = Renderer(gen, 13, 21, path="cpu-fused", tile=16384, threads=1).render(z, camera=camera)
    for tile, threads in ((8, 2), (24, 3), (100, 2)):
        with Renderer(gen, 13, 21, path="cpu-fused", tile=tile, threads=threads) as r:
            assert np.array_equal(r.render(z, camera=camera), base)
            one = [r.render(z[i:i + 1], camera=None if camera is None else camera[i:i + 1]) for i in range(3)]
            assert np.array_equal(np.concatenate(one), base)


def _has(level: str) -> bool:
    try:
        return all(f in native._cpu_flags() for f in native.ISAS[level][1])
    except native.KernelUnavailable:
        return False


@pytest.mark.parametrize("level", ["x86-64", "avx2", "avx512"])
def test_prev_fused_is_right_on_every_instruction_set(level, monkeypatch):
    """Each level builds its own library (x86-64: SSE2, no FMA; avx512: 16-pixel vectors) and matches the oracle."""
    if level != "x86-64" and not _has(level):
        pytest.skip(f"this CPU has no {level}")
    monkeypatch.setenv(native.ISA_ENV, level)
    gen, z = lively_generator("prev")
    ref = oracle(gen, z, 13, 21, camera=CAMERA)
    with Renderer(gen, 13, 21, path="cpu-fused") as r:
        assert (r.render_float(z, camera=CAMERA) - ref).abs().max() < 1e-4
        static = r.render(z, invert=True)
    diff = np.abs(static.astype(int) - to_uint8(oracle(gen, z, 13, 21), True).numpy())
    assert diff.max() <= 1
