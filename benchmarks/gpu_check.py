"""GPU check: the Triton and torch-CUDA paths against the float64 oracle, then ms per frame and GFLOP/s.

Run on a CUDA machine: `bash benchmarks/gpu_check.sh` (about 2 minutes on an H100). Every check and timing
runs under its own guard and is appended to OUT/gpu_check.jsonl the moment it finishes, so one failure (a
Triton compile error, a device fault) loses nothing else; the summary JSON and PASS/FAIL come last.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from pipeline.bench.machine import machine_info
from pipeline.bench.render_bench import flops_per_pixel
from pipeline.models import PrevGenerator, ResnetConfig, ResnetGenerator
from pipeline.render import Renderer, reference_frames, to_uint8, triton_kernel


def lively(width: int, seed: int = 1) -> ResnetGenerator:
    """Random weights with contrast (see tests/render_helpers.py), for a meaningful oracle comparison."""
    torch.manual_seed(seed)
    gen = ResnetGenerator(ResnetConfig(width=width, tanh_std=0.02, other_std=0.5))
    with torch.no_grad():
        gen.out.weight.mul_(10.0)
    return gen.eval()


class Recorder:
    """Appends each result to a JSONL file as it comes (and keeps them for the summary)."""

    def __init__(self, out_dir: Path):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / "gpu_check.jsonl"
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    def guarded(self, what: dict, fn) -> None:
        """Run fn() -> list of rows; an exception becomes one row with its error, and the run goes on."""
        try:
            for row in fn():
                self.add({**what, **row})
        except Exception as exc:  # noqa: BLE001 - report every failure and keep going
            self.add({**what, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                      "traceback": traceback.format_exc()[-3000:]})


def check(dev: torch.device, path: str, width: int) -> list[dict]:
    """Oracle agreement at an odd size (tail tiles used), float and uint8, normal and inverted; batch invariance."""
    gen = lively(width)
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    h, w = 97, 83
    ref = reference_frames(gen.double(), z.double(), h, w).float()  # float64 oracle on the CPU
    r = Renderer(gen.float(), h, w, path=path, device=dev)
    err = float((r.render_float(z) - ref).abs().max())
    u8 = {inv: int((torch.from_numpy(r.render(z, invert=inv)).int() - to_uint8(ref, inv).int()).abs().max())
          for inv in (False, True)}
    same = bool(np.array_equal(np.concatenate([r.render(z[i:i + 1]) for i in range(3)]), r.render(z)))
    ok = err < 1e-4 and max(u8.values()) <= 1 and same
    return [{"max_abs_err": err, "u8_max_level_diff": u8[False], "u8_inverted_max_level_diff": u8[True],
             "batch_invariant": same, "ok": ok}]


def auto_choice(dev: torch.device) -> list[dict]:
    rows = []
    for family, gen in (("resnet", ResnetGenerator()), ("prev", PrevGenerator())):
        r = Renderer(gen.eval(), 64, 64, path="auto", device=dev)
        rows.append({"family": family, "auto_selected": r.path, "ok": True})
    return rows


def registers(dev: torch.device) -> list[dict]:
    """Registers and spills of each kernel variant a render uses, from the live compile."""
    from pipeline.coords import grid
    from pipeline.render.triton_kernel import TritonResnet

    rows = []
    for width in (6, 4):
        gen = lively(width)
        kernel = TritonResnet(gen, dev)
        coords = grid(64, 64).t().contiguous().to(dev)
        zb = gen.to(dev).input.z(torch.zeros(1, 32, device=dev)).detach()
        for variant, invert in (("float", None), ("uint8", False), ("uint8 inverted", True)):
            kernel(coords, zb, invert)
            c = kernel.last_compiled
            rows.append({"width": width, "variant": variant, "n_regs": getattr(c, "n_regs", None),
                         "n_spills": getattr(c, "n_spills", None), "ok": True})
    return rows


def layouts(dev: torch.device, size: int = 1080, frames: int = 32) -> list[dict]:
    """The new channels-first kernel against the first (broadcast) one, device time per frame, same weights."""
    from pipeline.coords import grid
    from pipeline.render.triton_kernel import TritonResnet

    gen = ResnetGenerator().eval().to(dev)
    coords = grid(size, size).t().contiguous().to(dev)
    zb = gen.input.z(torch.randn(8, 32, device=dev) * gen.cfg.z_scale).detach().contiguous()
    rows = []
    for layout in ("broadcast", "channels"):
        kernel = TritonResnet(gen, dev, layout=layout)
        kernel(coords, zb, False)  # compile
        torch.cuda.synchronize(dev)
        t = time.perf_counter()
        for _ in range(frames // 8):
            kernel(coords, zb, False)
        torch.cuda.synchronize(dev)
        s = (time.perf_counter() - t) / frames
        rows.append({"layout": layout, "size": size, "ms_per_frame_device_only": round(s * 1e3, 4),
                     "gflops": round(flops_per_pixel(gen) * size * size / s / 1e9, 1), "ok": True})
    return rows


def mp4_fps(dev: torch.device) -> list[dict]:
    import tempfile

    from pipeline.jobs import WalkSettings, render_walk

    with tempfile.TemporaryDirectory() as tmp:
        info = render_walk("e24", Path(tmp) / "w.mp4", WalkSettings(frames=120, size=1080, device=str(dev),
                                                                   preset="medium"))
    return [{"frames": info["frames"], "render_path": info["render_path"], "mp4_fps": info["frames_per_second"],
             "ok": True}]


def timing(dev: torch.device, size: int, frames: int, family: str = "resnet", paths=("triton", "torch")) -> list[dict]:
    gen = (ResnetGenerator() if family == "resnet" else PrevGenerator()).eval()
    z = torch.randn(frames, 32, generator=torch.Generator().manual_seed(0))
    rows = []
    for path in paths:
        r = Renderer(gen, size, size, path=path, device=dev)
        batch = 8 if size <= 1080 else 2
        r.render(z[:batch])
        per_batch = []
        for i in range(0, frames, batch):
            torch.cuda.synchronize(dev)
            t = time.perf_counter()
            r.render(z[i:i + batch])  # uint8 frames copied back to the host, as a video render does
            torch.cuda.synchronize(dev)
            per_batch.append((time.perf_counter() - t) / len(z[i:i + batch]))
        s = statistics.median(per_batch)
        # device-only time: keep the output on the GPU
        zb = r.z_bias(z[:batch])
        per_batch = []
        for _ in range(max(1, frames // batch)):
            torch.cuda.synchronize(dev)
            t = time.perf_counter()
            r._impl(r.coords_t, zb, False)
            torch.cuda.synchronize(dev)
            per_batch.append((time.perf_counter() - t) / batch)
        s_dev = statistics.median(per_batch)
        rows.append({"family": family, "path": path, "size": size, "frames": frames,
                     "median_ms_per_frame": round(s * 1e3, 3),
                     "median_ms_per_frame_device_only": round(s_dev * 1e3, 3),
                     "gflops_device_only": round(flops_per_pixel(gen) * size * size / s_dev / 1e9, 1), "ok": True})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"), help="folder for gpu_check.jsonl")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: this check needs a GPU", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    rec = Recorder(Path(args.out))
    rec.add({"what": "machine", **machine_info(dev), "ok": True})
    paths = ["triton", "torch"] if triton_kernel.available() else ["torch"]
    for path in paths:
        for width in (6, 4):
            rec.guarded({"what": "oracle", "path": path, "width": width}, lambda p=path, w=width: check(dev, p, w))
    rec.guarded({"what": "auto"}, lambda: auto_choice(dev))
    for size, frames in ((1080, 64), (3240, 8)):
        for path in paths:
            rec.guarded({"what": "timing"}, lambda s=size, f=frames, p=path: timing(dev, s, f, paths=(p,)))
        rec.guarded({"what": "timing"}, lambda s=size, f=frames: timing(dev, s, f, family="prev", paths=("torch",)))
    if "triton" in paths:
        rec.guarded({"what": "registers"}, lambda: registers(dev))
        rec.guarded({"what": "layouts"}, lambda: layouts(dev))
    rec.guarded({"what": "mp4"}, lambda: mp4_fps(dev))
    ok = all(r.get("ok", True) for r in rec.rows if r.get("what") == "oracle")
    print("ORACLE CHECK:", "PASS" if ok else "FAIL", f"(all results in {rec.path})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
