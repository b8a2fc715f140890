"""The bytes of rendered frames are pinned per path: a refactor that changes any frame fails here.

Float rounding depends on the CPU's instructions and on torch's kernels, so the hashes hold for the machine
and torch they were recorded with (the development and CI box); elsewhere the test skips and says why.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from pipeline import native
from pipeline.render import Renderer, available_paths
from render_helpers import lively_generator

RECORDED_ON = {"cpu_tag": "a74ca04ba2dd", "torch": "2.13.0+cpu"}
# (family, path, invert) -> sha256 of the uint8 frames [3, 37, 41] of render_helpers.lively_generator(family),
# with torch on one thread (tests/conftest.py)
PINNED = {
    ('resnet', 'reference', False): "8cf72840e9655c2e509fcf0dd871c77938056e90fcc0e65ae2efff42a198d047",
    ('resnet', 'reference', True): "03e81eb76cfb33ce36c27ab1b5e3a64fec387daae29038cd416b60a1e3638d19",
    ('resnet', 'torch', False): "8cf72840e9655c2e509fcf0dd871c77938056e90fcc0e65ae2efff42a198d047",
    ('resnet', 'torch', True): "03e81eb76cfb33ce36c27ab1b5e3a64fec387daae29038cd416b60a1e3638d19",
    ('resnet', 'cpu-fused', False): "1eda81aebf8330308e07f8d73d3ea154f5a1cc9bf6feb12e91f3d4abfdaf1b9d",
    ('resnet', 'cpu-fused', True): "5899b68a15abecc10cae4fa776b5e032d0d9c56e2008e7e41d1317730405b2a3",
    ('prev', 'reference', False): "25866ef87e60458356da01bdef04dd36cb96c175c1d9bcea28c8851bd92ae346",
    ('prev', 'reference', True): "cd76cbe186b8ac9859750682e29e4f156e85938e607b3674dac746d3756cd158",
    ('prev', 'torch', False): "659b5c3eb12c0592b7725267eb3749a2ad9f3887af66912cdd8406263725c836",
    ('prev', 'torch', True): "c5dcf8f043b94bd99c77e2db11e1257d5e35c60513c3c53b5d59568d069677cd",
}


def _frames(family: str, path: str, invert: bool) -> bytes:
    gen, z = lively_generator(family)
    torch.manual_seed(0)
    with Renderer(gen, 37, 41, path=path, device="cpu") as r:  # odd sizes: every tile tail is used
        return np.ascontiguousarray(r.render(z, invert=invert)).tobytes()


CASES = [(f, p, inv) for f in ("resnet", "prev") for p in ("reference", "torch", "cpu-fused") for inv in (False, True)
         if not (f == "prev" and p == "cpu-fused")]


@pytest.mark.parametrize("family,path,invert", CASES)
def test_frame_bytes_are_unchanged(family, path, invert):
    here = {"cpu_tag": native.cpu_tag(), "torch": torch.__version__}
    if here != RECORDED_ON:
        pytest.skip(f"hashes recorded on {RECORDED_ON}, this machine is {here}")
    if path not in available_paths(family, torch.device("cpu")):
        pytest.skip(f"{path} is not available here")
    digest = hashlib.sha256(_frames(family, path, invert)).hexdigest()
    assert digest == PINNED[(family, path, invert)]


def test_the_fused_path_is_the_same_on_any_number_of_threads():
    """The CPU default's frames do not depend on torch's thread count (the coordinate projection is summed in a
    fixed order; see coords.coord_projection), so a segment worker on fewer threads makes the same bytes."""
    if "cpu-fused" not in available_paths("resnet", torch.device("cpu")):
        pytest.skip("no C compiler")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _frames("resnet", "cpu-fused", False)
        torch.set_num_threads(2)
        two = _frames("resnet", "cpu-fused", False)
    finally:
        torch.set_num_threads(before)
    assert one == two
