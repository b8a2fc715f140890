"""GPU check: the Triton and torch-CUDA paths against the oracle, then ms per frame and GFLOP/s.

Run on a CUDA machine: `bash benchmarks/gpu_check.sh` (about 1-2 minutes on an H100).
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from pipeline.bench.machine import machine_info
from pipeline.bench.render_bench import flops_per_pixel
from pipeline.models import ResnetConfig, ResnetGenerator
from pipeline.render import Renderer, reference_frames


def lively(width: int, seed: int = 1) -> ResnetGenerator:
    """Random weights with contrast (see tests/render_helpers.py), for a meaningful oracle comparison."""
    torch.manual_seed(seed)
    gen = ResnetGenerator(ResnetConfig(width=width, tanh_std=0.02, other_std=0.5))
    with torch.no_grad():
        gen.out.weight.mul_(10.0)
    return gen.eval()


def check(dev: torch.device) -> list[dict]:
    out = []
    for width in (6, 4):
        gen = lively(width)
        z = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
        ref = reference_frames(gen.double(), z.double(), 96, 80).float()  # float64 oracle on the CPU
        gen = gen.float()
        for path in ("triton", "torch"):
            r = Renderer(gen, 96, 80, path=path, device=dev)
            err = float((r.render_float(z) - ref).abs().max())
            out.append({"check": "oracle", "path": path, "width": width, "max_abs_err": err, "ok": err < 1e-4})
            # bytes independent of the batch: frame by frame equals all at once
            same = bool(np.array_equal(np.concatenate([r.render(z[i:i + 1]) for i in range(3)]), r.render(z)))
            out[-1]["batch_invariant"] = same
            out[-1]["ok"] = out[-1]["ok"] and same
    return out


def timing(dev: torch.device, size: int, frames: int) -> list[dict]:
    gen = ResnetGenerator().eval()
    z = torch.randn(frames, 32, generator=torch.Generator().manual_seed(0))
    rows = []
    for path in ("triton", "torch"):
        r = Renderer(gen, size, size, path=path, device=dev)
        batch = 8 if size <= 1080 else 2
        r.render(z[:batch])
        torch.cuda.synchronize(dev)
        t = time.perf_counter()
        for i in range(0, frames, batch):
            r.render(z[i:i + batch])  # uint8 frames copied back to the host, as a video render does
        torch.cuda.synchronize(dev)
        s = (time.perf_counter() - t) / frames
        # device-only time: keep the output on the GPU
        zb = r.z_bias(z[:batch])
        torch.cuda.synchronize(dev)
        t = time.perf_counter()
        for _ in range(max(1, frames // batch)):
            r._impl(r.coords_t, zb, False)
        torch.cuda.synchronize(dev)
        s_dev = (time.perf_counter() - t) / (max(1, frames // batch) * batch)
        rows.append({"path": path, "size": size, "frames": frames, "ms_per_frame": round(s * 1e3, 3),
                     "ms_per_frame_device_only": round(s_dev * 1e3, 3),
                     "gflops_device_only": round(flops_per_pixel(gen) * size * size / s_dev / 1e9, 1)})
    return rows


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here: this check needs a GPU", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    report = {"machine": machine_info(dev), "checks": check(dev),
              "timings": timing(dev, 1080, 64) + timing(dev, 3240, 8)}
    print(json.dumps(report, indent=2))
    ok = all(c["ok"] for c in report["checks"])
    print("ORACLE CHECK:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
