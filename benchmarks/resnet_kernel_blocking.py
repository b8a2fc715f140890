"""How the resnet render kernel's blocking and tanh were chosen: single-thread CPU time a pixel of
pipeline/render/cppn_kernel.c built with CHUNKS = 1 and 2 pixel vectors a group, each with its tanh_rational and
with the exp-based tanh_approx it replaced, all in one run on this machine's kernel ISA ($CPPN_VIDEO_ISA picks
another: avx2, x86-64). Each variant's output is checked against the shipped build (CHUNKS only reorders work,
so it must give the same floats; the other tanh moves them by ~1e-7).

    python benchmarks/resnet_kernel_blocking.py [--pixels 262144] [--width 6] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def _variant(width: int, chunks: int, tanh: str):
    from pipeline.native import compile_and_load
    from pipeline.render import cpu_fused

    source = cpu_fused._SOURCE.read_text()
    if tanh == "approx":
        source = source.replace("tanh_rational(", "tanh_approx(")
    return compile_and_load(f"bench_render_w{width}_c{chunks}_{tanh}", source, {"WIDTH": width, "CHUNKS": chunks})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=1 << 18)
    ap.add_argument("--width", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from pipeline import native
    from pipeline.models import ResnetConfig, ResnetGenerator
    from pipeline.render import cpu_fused

    torch.manual_seed(0)
    gen = ResnetGenerator(ResnetConfig(width=args.width)).eval()
    params = cpu_fused.pack_resnet(gen)
    rng = np.random.default_rng(0)
    P, W = args.pixels, args.width
    cp = np.ascontiguousarray(rng.normal(size=(W, P)), np.float32)
    zb = np.ascontiguousarray(rng.normal(size=(1, W)), np.float32)
    cfg = gen.cfg

    def run(lib, out: np.ndarray) -> float:
        t = time.thread_time()
        lib.cppn_resnet_f32(cp.ctypes.data, P, 0, P, zb.ctypes.data, 1, params.ctypes.data, cfg.n_blocks,
                            cfg.relu_layers, out.ctypes.data)
        return time.thread_time() - t

    shipped = cpu_fused.load_kernel(W)  # typed by load_kernel; the variants take its signature
    reference = np.zeros((1, P), np.float32)
    run(shipped, reference)
    variants = []
    for tanh in ("approx", "rational"):
        for chunks in (1, 2):
            lib = _variant(W, chunks, tanh)
            lib.cppn_resnet_f32.argtypes, lib.cppn_resnet_f32.restype = shipped.cppn_resnet_f32.argtypes, None
            variants.append((tanh, chunks, lib, np.zeros((1, P), np.float32), []))
    for _ in range(args.repeats):  # round robin, so the machine's drift falls on every variant alike
        for *_, lib, out, times in variants:
            times.append(run(lib, out))
    rows = [{"tanh": tanh, "chunks": chunks, "ns_per_pixel": round(min(times) / P * 1e9, 1),
             "max_abs_diff_vs_shipped": float(np.abs(out - reference).max())}
            for tanh, chunks, _, out, times in variants]
    print(json.dumps({"isa": native.effective_isa(), "shipped_block": int(shipped.cppn_resnet_block()),
                      "width": W, "pixels": P, "rows": rows}))
    base = rows[0]["ns_per_pixel"]
    for r in rows:
        print(f"  tanh_{r['tanh']:<8} {r['chunks']} vector(s): {r['ns_per_pixel']:7.1f} ns/pixel "
              f"({base / r['ns_per_pixel']:.2f}x tanh_approx x1), max |diff| vs shipped {r['max_abs_diff_vs_shipped']:.1e}")


if __name__ == "__main__":
    main()
