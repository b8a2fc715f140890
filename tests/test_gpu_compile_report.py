"""The Triton kernel as compiled for an H100 (sm_90a), read without a GPU: benchmarks/gpu_compile_report.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_compile_report  # noqa: E402


@pytest.fixture(scope="module")
def h100_uint8():
    try:
        return gpu_compile_report.report_row(6, "uint8", 90)
    except FileNotFoundError as e:  # a triton wheel without the NVIDIA tools
        pytest.skip(f"triton ships no cuobjdump/nvdisasm here ({e})")


def test_the_report_reads_the_compiled_kernel(h100_uint8):
    r = h100_uint8
    assert r["arch"] == "sm_90a" and r["registers"] > 0 and r["instructions"] > r["loop_instructions"] > 0
    assert r["loop_ffma"] > 0  # the loop found is the block loop: it holds the layers' arithmetic
    assert 0 < r["estimate_fp32_peak_share_at_most"] <= 1 and r["estimate_ms_per_1080_frame_at_least"] > 0


def test_no_register_spills(h100_uint8):
    assert not h100_uint8["spills"], h100_uint8


def test_no_shuffles_or_barriers_in_the_block_loop(h100_uint8):
    """Channels first, every thread holds all channels of its pixels: a layer needs no cross-lane traffic."""
    assert h100_uint8["layout"] == "channels"
    assert h100_uint8["loop_bar"] == 0 and h100_uint8["loop_shfl"] == 0, h100_uint8
    assert h100_uint8["loop_ffma"] >= 4 * 5 * 6 * 6  # 4 pixels per thread x 5 layers per block x 6x6 multiply-adds
