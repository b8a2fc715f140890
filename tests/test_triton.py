"""The Triton kernel against the oracle, on the CPU through Triton's interpreter (TRITON_INTERPRET=1).

The interpreter must be switched on before triton is imported, so the check runs in a subprocess.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = r"""
import json, sys, numpy as np, torch
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from render_helpers import lively_generator
from pipeline.coords import grid
from pipeline.render import reference_frames, to_uint8
from pipeline.render.triton_kernel import TritonResnet
results = []
for layout, width, (h, w) in (("channels", 6, (23, 21)), ("channels", 4, (24, 24)), ("broadcast", 6, (24, 22))):
    gen, z = lively_generator("resnet", width)
    ref = reference_frames(gen, z, h, w).reshape(3, -1)
    kernel = TritonResnet(gen, torch.device("cpu"), block=256, layout=layout)
    coords = grid(h, w).t().contiguous()
    zb = gen.input.z(z * gen.cfg.z_scale).detach()
    out = kernel(coords, zb)
    u8 = kernel(coords, zb, invert=True)
    ref_u8 = to_uint8(ref, invert=True)
    results.append(dict(layout=layout, width=width, err=float((out - ref).abs().max()), std=float(ref.std()),
                        shape=list(out.shape), u8_dtype=str(u8.dtype),
                        u8_maxdiff=int((u8.int() - ref_u8.int()).abs().max())))
print(json.dumps(results))
"""


def test_triton_kernel_matches_oracle_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [(r["layout"], r["width"]) for r in results] == [("channels", 6), ("channels", 4), ("broadcast", 6)]
    for r in results:
        assert r["std"] > 0.05
        assert r["err"] < 1e-4, r
        assert r["u8_dtype"] == "torch.uint8" and r["u8_maxdiff"] <= 1
    assert results[0]["shape"] == [3, 23 * 21]  # 483 pixels: the second tile of 256 is partly masked
