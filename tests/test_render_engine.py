"""Every fast render path against the oracle (the straight port), plus determinism and input checks."""

import os

import numpy as np
import pytest
import torch

from pipeline.errors import UserError
from pipeline.models import ResnetGenerator
from pipeline.render import Renderer, available_paths, reference_frames, to_uint8
from pipeline.render import cpu_fused
from render_helpers import lively_generator

CPU = torch.device("cpu")
needs_cc = pytest.mark.skipif(not cpu_fused.available(), reason="no C compiler: fused CPU kernel unavailable")


@pytest.mark.parametrize("family,width", [("resnet", 6), ("resnet", 4), ("prev", None)])
def test_torch_tiles_match_oracle(family, width):
    gen, z = lively_generator(family, width)
    ref = reference_frames(gen, z, 37, 29, 8.0)
    out = Renderer(gen, 37, 29, path="torch", device="cpu", tile=100).render_float(z)
    assert out.shape == (3, 37, 29)
    assert (out - ref).abs().max() < 1e-4


@needs_cc
@pytest.mark.parametrize("width", [6, 4])
@pytest.mark.parametrize("scale", [8.0, 20.0])
def test_cpu_fused_matches_oracle(width, scale):
    gen, z = lively_generator("resnet", width)
    ref = reference_frames(gen, z, 41, 33, scale)
    with Renderer(gen, 41, 33, scale=scale, path="cpu-fused", device="cpu") as r:
        out = r.render_float(z)
    assert out.shape == ref.shape
    assert ref.std() > 0.05
    assert (out - ref).abs().max() < 1e-4
    # uint8 frames: the same rounding rule, off by at most one level where a value sits on a rounding edge
    diff = np.abs(r.render(z).astype(int) - to_uint8(ref).numpy().astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


@needs_cc
def test_cpu_fused_article_init_matches_oracle():
    torch.manual_seed(3)
    gen = ResnetGenerator().eval()
    z = torch.randn(2, 32)
    ref = reference_frames(gen, z, 30, 30)
    assert (Renderer(gen, 30, 30, path="cpu-fused").render_float(z) - ref).abs().max() < 1e-4


@needs_cc
def test_cpu_fused_bytes_independent_of_batch_tile_threads():
    gen, _ = lively_generator("resnet")
    z = torch.randn(5, 32, generator=torch.Generator().manual_seed(1))
    base = Renderer(gen, 45, 51, path="cpu-fused", tile=16384, threads=1).render(z, invert=True)
    for tile, threads in ((16, 2), (48, 2), (1000, 1), (2295, 3)):
        r = Renderer(gen, 45, 51, path="cpu-fused", tile=tile, threads=threads)
        one_by_one = np.concatenate([r.render(z[i : i + 1], invert=True) for i in range(5)])
        assert np.array_equal(one_by_one, base)
        assert np.array_equal(r.render(z, invert=True), base)


@needs_cc
def test_resnet_kernel_pixel_value_independent_of_its_place_in_a_vector_group():
    """The kernel evaluates cppn_resnet_block() pixels at a time (two vectors on AVX2); a pixel's value must not
    depend on which vector or lane it lands in, so ranges started 1, 8 and 16 pixels later give the same floats."""
    from pipeline.render.cpu_fused import ResnetKernel

    gen, z = lively_generator("resnet")
    kernel = ResnetKernel(gen, threads=1)
    rng = np.random.default_rng(3)
    P = 301
    cp = np.ascontiguousarray(rng.normal(size=(6, P)), np.float32)
    zbias = np.ascontiguousarray(rng.normal(size=(2, 6)), np.float32)
    base = np.zeros((2, P), np.float32)
    kernel.lib.cppn_resnet_f32(cp.ctypes.data, P, 0, P, zbias.ctypes.data, 2, kernel.params.ctypes.data,
                               kernel.n_blocks, kernel.relu_layers, base.ctypes.data)
    assert kernel.align >= 8 and base.std() > 0.05
    for start in (1, 8, 16):
        out = np.full((2, P), -1.0, np.float32)
        kernel.lib.cppn_resnet_f32(cp.ctypes.data, P, start, P, zbias.ctypes.data, 2, kernel.params.ctypes.data,
                                   kernel.n_blocks, kernel.relu_layers, out.ctypes.data)
        assert np.array_equal(out[:, start:], base[:, start:])
        assert (out[:, :start] == -1.0).all()  # nothing written before the range
    kernel.close()


def test_torch_tiles_bytes_independent_of_batch_and_tile():
    gen, _ = lively_generator("resnet")
    z = torch.randn(4, 32, generator=torch.Generator().manual_seed(2))
    base = Renderer(gen, 24, 40, path="torch", tile=4096).render(z)
    for tile in (64, 320, 960):
        r = Renderer(gen, 24, 40, path="torch", tile=tile)
        assert np.array_equal(np.concatenate([r.render(z[i : i + 1]) for i in range(4)]), base)


def test_invert_is_exact_complement():
    gen, z = lively_generator("resnet")
    r = Renderer(gen, 16, 16)
    assert np.array_equal(r.render(z, invert=True), 255 - r.render(z))


def test_reference_path_and_auto_choice():
    gen, z = lively_generator("prev")
    r = Renderer(gen, 12, 10, path="reference")
    assert np.array_equal(r.render(z), to_uint8(reference_frames(gen, z, 12, 10)).numpy())
    expected = "cpu-fused" if cpu_fused.available() else "torch"
    assert available_paths("prev", CPU)[0] == expected
    assert Renderer(ResnetGenerator(), 8, 8).path == expected


def test_frames_differ_across_latents():
    gen, z = lively_generator("resnet")
    frames = Renderer(gen, 32, 32).render(z)
    assert frames.dtype == np.uint8 and frames.shape == (3, 32, 32)
    assert not np.array_equal(frames[0], frames[1])


@pytest.mark.parametrize("kwargs,message", [
    (dict(height=0, width=10), "height must be an integer"),
    (dict(height=10, width=-4), "width must be an integer"),
    (dict(height=10, width=10, scale=-1.0), "scale must be a positive number"),
    (dict(height=10, width=10, path="warp"), "unknown render path"),
    (dict(height=10, width=10, path="triton", device="cpu"), "not available"),
    (dict(height=10, width=10, device="cuda"), "CUDA is not available"),
])
def test_bad_renderer_arguments(kwargs, message):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(UserError, match=message):
        Renderer(ResnetGenerator(), **kwargs)


def test_bad_latents():
    r = Renderer(ResnetGenerator(), 8, 8)
    with pytest.raises(UserError, match=r"shape \[frames, 32\]"):
        r.render(torch.zeros(2, 16))
    with pytest.raises(UserError, match="NaN"):
        r.render(torch.full((1, 32), float("nan")))


def test_auto_triton_falls_back_to_torch_when_the_kernel_fails(monkeypatch):
    """An auto-selected Triton kernel that cannot compile or launch here gives a warning and the torch path."""
    from pipeline.render import engine, triton_kernel

    if not triton_kernel.available():
        pytest.skip("triton is not installed")

    def broken(self, *args, **kwargs):
        raise RuntimeError("no kernel for this device")

    monkeypatch.setattr(engine, "available_paths", lambda family, device: ["triton", "torch", "reference"])
    monkeypatch.setattr(triton_kernel.TritonResnet, "__call__", broken)
    gen, z = lively_generator("resnet")
    with pytest.warns(RuntimeWarning, match="triton kernel failed its check here .RuntimeError: no kernel"):
        r = Renderer(gen, 16, 16)
    assert r.path == "torch"
    assert (r.render_float(z) - reference_frames(gen, z, 16, 16)).abs().max() < 1e-4


def test_without_a_c_compiler_auto_uses_the_torch_path(tmp_path):
    """A machine with no C compiler still renders: the fused kernel is unavailable and auto picks torch."""
    import subprocess
    import sys

    code = ("from pipeline.models import ResnetGenerator; from pipeline.render import Renderer; "
            "from pipeline.render import cpu_fused; r = Renderer(ResnetGenerator(), 8, 8); "
            "print(cpu_fused.available(), r.path, r.render([[0.0] * 32]).shape)")
    env = {**os.environ, "CC": str(tmp_path / "no-such-cc"), "CPPN_VIDEO_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "torch", "(1,", "8,", "8)"]


def test_the_fast_path_probe_catches_a_broken_kernel():
    """The auto-fallback probe runs every variant a render uses and compares with the reference: a kernel
    that compiles and runs but computes garbage, or that crashes, is caught (injected here on the CPU)."""
    gen, _ = lively_generator("resnet")
    r = Renderer(gen, 16, 16, path="torch", device="cpu")
    assert r.probe() is None
    good = r._impl

    def wrong_values(coords, zb, invert=None):
        out = good(coords, zb, invert)
        return out + 0.01 if invert is None else out

    def wrong_inverted(coords, zb, invert=None):
        out = good(coords, zb, invert)
        return 255 - out if invert is True else out

    def crashes(coords, zb, invert=None):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    r._impl = wrong_values
    assert "differ from the reference by 0.01" in r.probe()
    r._impl = wrong_inverted
    assert "inverted uint8 frames differ" in r.probe()
    r._impl = crashes
    assert r.probe().startswith("RuntimeError: CUDA error: an illegal memory access")
    with pytest.warns(RuntimeWarning, match="failed its check here .* using the torch path"):
        r._check_triton(None)
    assert r.path == "torch" and r.probe() is None  # fell back to a working path


@needs_cc
def test_kernel_blocking_benchmark_variants_agree(capsys, monkeypatch):
    """benchmarks/resnet_kernel_blocking.py (how CHUNKS and the tanh were chosen) builds its four variants: the
    grouping gives the shipped build's floats exactly, the older tanh within 1e-6."""
    import json
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "resnet_kernel_blocking.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--pixels", "999", "--repeats", "1"])
    runpy.run_path(str(script), run_name="__main__")
    report = json.loads(capsys.readouterr().out.splitlines()[0])
    rows = {(r["tanh"], r["chunks"]): r for r in report["rows"]}
    assert sorted(rows) == [("approx", 1), ("approx", 2), ("rational", 1), ("rational", 2)]
    assert rows["rational", 1]["max_abs_diff_vs_shipped"] == rows["rational", 2]["max_abs_diff_vs_shipped"] == 0.0
    assert 0.0 < rows["approx", 1]["max_abs_diff_vs_shipped"] < 1e-6
    assert all(r["ns_per_pixel"] > 0 for r in rows.values())
