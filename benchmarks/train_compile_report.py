"""What the Triton training kernels (pipeline/train/triton_train.py) compile to on an H100, read without a GPU.

Compiles the forward and the backward kernel of the article's network (width 6, 24 blocks of 4 ReLU layers and
one tanh layer) for sm_90a with `triton.compile` (no driver needed) at the tile shapes given, and reads the
cubin with the tools the triton wheel ships (benchmarks/gpu_compile_report.py): registers, spills (stack or
local bytes), and the SASS mix of the block loop, the kernel's longest loop (its body runs 24 times; in the
backward that is the way back through the blocks, and its forward recompute loop, about a tenth of it, is
counted once, so the estimate is low by about that much). An ESTIMATE, not a measurement: the issue-bound
lower limit on a kernel's time at the article batch (2000 images of 26x26 pixels), every SM issuing 4
warp-instructions per clock, no memory or barrier stalls. compile_s is 0 where triton's cache had the kernel.

    python benchmarks/train_compile_report.py [forward:512:4 backward:128:4 ...]   (kind:pixels per program:warps)

Needs triton; no CUDA device. Each compile takes 15-45 s on a 2-core box.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import gpu_compile_report as report  # noqa: E402

PIXELS = 2000 * 26 * 26  # the article's batch of training crops
N_BLOCKS, RELU_LAYERS = 24, 4
_ARGS = {"forward": ["zp_ptr", "cp_ptr", "w_ptr", "out_ptr"],
         "backward": ["zp_ptr", "cp_ptr", "w_ptr", "g_out_ptr", "g_u_ptr", "g_par_ptr", "scratch_ptr"]}
_OPS = ("FFMA", "FMUL", "FADD", "MUFU", "SHFL", "BAR", "LDS", "STS", "LDG", "STG", "LDL", "STL")


def compile_kernel(kind: str, block: int, warps: int, width: int = 6, arch: int = 90):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from pipeline.train import triton_train

    fn = triton_train._forward_kernel if kind == "forward" else triton_train._backward_kernel
    signature = {name: "*fp32" for name in _ARGS[kind]} | {"N": "i32", "P": "i32"}
    constexprs = {"n_blocks": N_BLOCKS, "WIDTH": width, "RELU_LAYERS": RELU_LAYERS, "BLOCK": block}
    if kind == "backward":
        constexprs["WP"] = triton.next_power_of_2(width)
    signature |= {name: "constexpr" for name in constexprs}
    return triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                          target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})


def row(kind: str, block: int, warps: int) -> dict:
    t0 = time.perf_counter()
    kernel = compile_kernel(kind, block, warps)
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "k.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        res = report.resources(cubin)
        whole, body = report.sass_mix(cubin)
    loop, rest = sum(body.values()), sum(whole.values()) - sum(body.values())
    threads = warps * 32
    per_thread = loop * N_BLOCKS + rest  # instructions one thread issues for its block / threads pixels
    name, sms, clock = report.GPUS[90]
    warp_instructions = PIXELS / block * warps * per_thread
    return {"kind": kind, "block": block, "warps": warps, "pixels_per_thread": block / threads,
            "compile_s": round(seconds, 1), "registers": res.get("reg"), "stack_bytes": res.get("stack"),
            "local_bytes": res.get("local"), "spills": bool(res.get("stack") or res.get("local")),
            "shared_bytes": res.get("shared"), "loop_instructions": loop, **{f"loop_{op}": body[op] for op in _OPS},
            "estimate_ms_at_least": round(warp_instructions / (sms * 4 * clock) * 1e3, 2), "gpu": name}


def main(argv: list[str]) -> int:
    specs = argv or ["forward:512:4", "backward:128:4"]
    for spec in specs:
        kind, block, warps = spec.split(":")
        print(json.dumps(row(kind, int(block), int(warps))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
