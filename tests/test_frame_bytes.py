"""Rendered frames per path: properties that hold on every x86-64 CPU, and their exact bytes where recorded.

The invariants run everywhere: each path's uint8 frames are within one grey level of the float64 oracle, and
the same bytes whatever the batch or thread count. The bytes themselves depend on three things, which key the
pinned hashes: torch's version, torch's CPU capability (its vectorised random numbers make the test
generators, its kernels the torch paths) and the instruction set the C kernel is built for (pipeline.native:
FMA contraction changes the rounding). A refactor that changes any frame fails the pinned check on every
configuration recorded below; on another one it skips, saying so, and the invariants still run.
"""
from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest
import torch

from pipeline import native
from pipeline.render import Renderer, available_paths, to_uint8
from pipeline.render.reference import reference_frames
from render_helpers import lively_generator

# (family, path, invert) -> sha256 of the uint8 frames [3, 37, 41] of render_helpers.lively_generator(family),
# with torch on one thread (tests/conftest.py)
FMA_KERNEL = {
    ('resnet', 'reference', False): "5a0c8514d651909022d9d6bf1e2a1970c6f2cec60176214a9d0e375d286188f3",
    ('resnet', 'reference', True): "e41116a8e52c21e1235670af7faf35b10f749012046abae139ae721d1d5f5d36",
    ('resnet', 'torch', False): "858a7ff483fbfa4ddd9241c22c15c247bb81566cc6979936b1c3b1d5c41a41b3",
    ('resnet', 'torch', True): "f892a0c359fc2c4868398e065cb412b76e795105892b09975e2b71552bcbac70",
    ('resnet', 'cpu-fused', False): "858a7ff483fbfa4ddd9241c22c15c247bb81566cc6979936b1c3b1d5c41a41b3",  # = torch's
    ('resnet', 'cpu-fused', True): "f892a0c359fc2c4868398e065cb412b76e795105892b09975e2b71552bcbac70",
    ('prev', 'reference', False): "1655f51b163d1b0684b5cc8471667ee1f7ca2c58278a2703d2ceace631f468cb",
    ('prev', 'reference', True): "4577a7f66711e14e1180a45ebfaa4ab91d7561be55a73d1d1c7ba1cb35ac378e",
    ('prev', 'torch', False): "f13e1792dc1cdc29811927460dcb109d4888e34605835612d85d2f2e798a3b31",
    ('prev', 'torch', True): "5feccbb85c7c8913b5bf6378e9e3aa93d52ef7942c050d892dffaf6789a7cde4",
    ('prev', 'cpu-fused', False): "f13e1792dc1cdc29811927460dcb109d4888e34605835612d85d2f2e798a3b31",  # = torch's
    ('prev', 'cpu-fused', True): "5feccbb85c7c8913b5bf6378e9e3aa93d52ef7942c050d892dffaf6789a7cde4",
}
# Built for plain x86-64 (SSE2, no FMA) the resnet kernel (rational tanh since 2026-12-07, third session) gives the
# reference's bytes, and prev's kernel its own.
NO_FMA_KERNEL = {**FMA_KERNEL, ('resnet', 'cpu-fused', False): FMA_KERNEL[('resnet', 'reference', False)],
                 ('resnet', 'cpu-fused', True): FMA_KERNEL[('resnet', 'reference', True)],
                 ('prev', 'cpu-fused', False): "08ebe3cacef7c7413f20a29537c26648cf911ddccf569600f06d17ee4b58b3d3",
                 ('prev', 'cpu-fused', True): "775cf9c365af10e60009db657a29d402765c08243bb1b8485a44f6217daaf380"}
# (torch, torch CPU capability, kernel instruction set) -> hashes; each configuration was run and recorded. The
# frames changed on purpose on 2026-12-07 (a 37x41 frame now shows the plane unstretched, the shorter side
# spanning [-scale, scale]). On a Zen 4 (2026-12-07, second session) the native avx512 build, the avx2 build
# under torch AVX512 and under torch AVX2, and the x86-64 builds all printed the hashes below (python
# tests/test_frame_bytes.py prints this machine's); its (AVX2, avx2) and (AVX2, x86-64) bytes equal Zen 2's.
# The resnet kernel's frames changed on purpose again in the third session (two pixel vectors at a time on
# AVX2, tanh_rational): the five configurations were printed again on that Zen 4; the Zen 2 rows are the
# same builds' bytes as its AVX2 rows, not printed on a Zen 2.
RECORDED = {
    ("2.13.0+cpu", "AVX2", "avx2"): FMA_KERNEL,       # AMD Zen 2 (EPYC), native build; also CPPN_VIDEO_ISA=avx2
    ("2.13.0+cpu", "AVX2", "x86-64"): NO_FMA_KERNEL,  # AMD Zen 2 with CPPN_VIDEO_ISA=x86-64
    ("2.13.0+cpu", "AVX512", "avx512"): FMA_KERNEL,   # AMD Zen 4 (EPYC), native build
    ("2.13.0+cpu", "AVX512", "avx2"): FMA_KERNEL,     # AMD Zen 4 with CPPN_VIDEO_ISA=avx2
    ("2.13.0+cpu", "AVX512", "x86-64"): NO_FMA_KERNEL,  # AMD Zen 4 with CPPN_VIDEO_ISA=x86-64
}

CASES = [(f, p, inv) for f in ("resnet", "prev") for p in ("reference", "torch", "cpu-fused") for inv in (False, True)]


def configuration() -> tuple[str, str, str]:
    try:
        kernel = native.effective_isa()
    except native.KernelUnavailable as exc:
        kernel = f"unavailable ({exc})"
    return torch.__version__, torch.backends.cpu.get_cpu_capability(), kernel


def _render(family: str, path: str, invert: bool, batch: int = 3) -> np.ndarray:
    gen, z = lively_generator(family)
    with Renderer(gen, 37, 41, path=path, device="cpu") as r:  # odd sizes: every tile tail is used
        return np.concatenate([r.render(z[i:i + batch], invert=invert) for i in range(0, len(z), batch)])


def _available(path: str, family: str) -> None:
    if path not in available_paths(family, torch.device("cpu")):
        pytest.skip(f"{path} is not available here")


@pytest.mark.parametrize("family,path,invert", CASES)
def test_frames_are_the_oracle_within_one_level_in_any_batch(family, path, invert):
    """Everywhere: within one grey level of the float64 oracle, and the same bytes one frame per call."""
    _available(path, family)
    frames = _render(family, path, invert)
    gen, z = lively_generator(family)
    oracle = to_uint8(reference_frames(copy.deepcopy(gen).double(), z.double(), 37, 41).float(), invert).numpy()
    diff = np.abs(frames.astype(int) - oracle.astype(int))
    assert frames.shape == (3, 37, 41) and frames.std() > 10  # real contrast, not a flat frame
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert np.array_equal(frames, _render(family, path, invert, batch=1))


@pytest.mark.parametrize("family,path,invert", CASES)
def test_frame_bytes_are_unchanged(family, path, invert):
    here = configuration()
    if here not in RECORDED:
        pytest.skip(f"hashes recorded for (torch, capability, kernel ISA) in {sorted(RECORDED)}; this is {here} "
                    f"(the invariants above still ran)")
    _available(path, family)
    digest = hashlib.sha256(np.ascontiguousarray(_render(family, path, invert)).tobytes()).hexdigest()
    assert digest == RECORDED[here][(family, path, invert)]


# resnet's torch path (the fallback without a C compiler) is not here: its 6-wide matrix products round
# differently on 1 and 2 threads (measured on Zen 2), so its frames are thread-invariant only within a level.
@pytest.mark.parametrize("family,path", [("resnet", "cpu-fused"), ("prev", "cpu-fused"), ("prev", "torch")])
def test_frames_are_the_same_on_any_number_of_threads(family, path):
    """The CPU defaults' frames do not depend on torch's thread count (the coordinate projection is summed in a
    fixed order; see coords.coord_projection), so a segment worker on fewer threads makes the same bytes."""
    _available(path, family)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _render(family, path, False)
        torch.set_num_threads(2)
        two = _render(family, path, False)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one, two)


if __name__ == "__main__":  # print this configuration's hashes, to record them above
    torch.set_num_threads(1)
    print(configuration())
    for case in CASES:
        print(f"    {case!r}: \"{hashlib.sha256(np.ascontiguousarray(_render(*case)).tobytes()).hexdigest()}\",")
