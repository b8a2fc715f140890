"""What the Triton render kernel compiles to on NVIDIA GPUs, read without a GPU.

Compiles every variant a render uses (float, uint8, inverted uint8; widths 6 and 4) for sm_80 (A100) and
sm_90a (H100) with `triton.compile` (no driver needed), then reads the cubin with the `cuobjdump` and
`nvdisasm` that the triton wheel ships:

- for both kernel layouts (channels, the default; broadcast, the first one);
- registers, stack and local memory per thread (local or stack bytes mean spills);
- the SASS instruction mix of the kernel and of its block loop (the loop body runs n_blocks times):
  shuffles (SHFL) and barriers (BAR) there are the costs of the layout, FFMA/FMUL/FADD the work;
- instructions per pixel, and from them ESTIMATES (not measurements): an issue-bound lower limit on the
  time per 1080x1080 frame (every SM issuing 4 warp-instructions per clock, no memory stalls) and the
  share of FP32 peak the kernel's arithmetic could reach at that rate.

    python benchmarks/gpu_compile_report.py [--json]

Needs triton (pip install triton); no CUDA device, driver or network.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # the default the kernels run with (silences a warning)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# SMs, boost clock: the issue-bound estimate assumes 4 warp schedulers x 1 instruction per clock per SM.
GPUS = {80: ("A100 SXM", 108, 1.41e9), 90: ("H100 SXM", 132, 1.98e9)}
SIGNATURE = {"coords_ptr": "*fp32", "zb_ptr": "*fp32", "w_xyr_ptr": "*fp32", "w_ptr": "*fp32", "out_ptr": None,
             "P": "i32", "n_blocks": "constexpr", "WIDTH": "constexpr", "WP": "constexpr", "RELU_LAYERS": "constexpr",
             "BLOCK": "constexpr", "OUT_U8": "constexpr", "INVERT": "constexpr",
             # a static frame's launch: no camera (its arguments default to None and are specialised away)
             "cam_ptr": "constexpr", "w64_ptr": "constexpr", "WPX": "constexpr", "CAMERA": "constexpr"}
VARIANTS = {"float": (False, False), "uint8": (True, False), "uint8 inverted": (True, True)}
_OP = re.compile(r"^\s+/\*([0-9a-f]+)\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)(\.[\w.]*)?", re.M)
_LABEL = re.compile(r"^\.(L_x_\d+):", re.M)


def _tools() -> Path:
    import triton

    return Path(triton.__file__).parent / "backends" / "nvidia" / "bin"


BLOCKS = {"channels": 512, "broadcast": 128}  # pixels per program, as TritonResnet launches each layout


def compile_variant(width: int, variant: str, arch: int, layout: str = "channels", n_blocks: int = 24):
    """The article's network (ResnetConfig's depth and layers per block) at `width`, compiled for `arch`."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from pipeline.models import ResnetConfig
    from pipeline.render import triton_kernel

    out_u8, invert = VARIANTS[variant]
    signature = {**SIGNATURE, "out_ptr": "*u8" if out_u8 else "*fp32"}
    constexprs = {"n_blocks": n_blocks, "WIDTH": width, "RELU_LAYERS": ResnetConfig().relu_layers,
                  "BLOCK": BLOCKS[layout], "OUT_U8": out_u8,
                  "INVERT": invert, "cam_ptr": None, "w64_ptr": None, "WPX": 1, "CAMERA": False}
    if layout == "channels":
        fn = triton_kernel._resnet_channels_kernel
        del signature["WP"]
    else:
        fn = triton_kernel._resnet_kernel
        constexprs["WP"] = triton.next_power_of_2(width)
    target = GPUTarget("cuda", arch, 32)
    return triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs), target=target)


def resources(cubin: Path) -> dict:
    text = subprocess.run([str(_tools() / "cuobjdump"), "--dump-resource-usage", str(cubin)], capture_output=True,
                          text=True, check=True).stdout
    return {k.lower(): int(v) for k, v in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text)}


def sass_mix(cubin: Path) -> tuple[collections.Counter, collections.Counter]:
    """(opcode counts of the whole kernel, of its block loop: the body of the longest backward branch)."""
    sass = subprocess.run([str(_tools() / "nvdisasm"), "-c", str(cubin)], capture_output=True, text=True,
                          check=True).stdout
    ops = [(int(a, 16), op) for a, op, _ in _OP.findall(sass)]
    labels = {}
    for m in _LABEL.finditer(sass):  # a label's address: the first instruction after it
        nxt = _OP.search(sass, m.end())
        if nxt:
            labels[m.group(1)] = int(nxt.group(1), 16)
    loop = (0, -1)
    for m in re.finditer(r"/\*([0-9a-f]+)\*/[^\n]*\bBRA\b[^\n]*\(\.(L_x_\d+)\)", sass):
        at, target = int(m.group(1), 16), labels.get(m.group(2))
        if target is not None and target < at and at - target > loop[1] - loop[0]:
            loop = (target, at)
    whole = collections.Counter(op for _, op in ops)
    body = collections.Counter(op for a, op in ops if loop[0] <= a <= loop[1])
    return whole, body


def report_row(width: int, variant: str, arch: int, layout: str = "channels", n_blocks: int = 24) -> dict:
    from pipeline.bench.render_bench import flops_per_pixel
    from pipeline.models import ResnetConfig, ResnetGenerator

    kernel = compile_variant(width, variant, arch, layout, n_blocks)
    block = BLOCKS[layout]
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "k.cubin"
        cubin.write_bytes(kernel.asm["cubin"])
        res = resources(cubin)
        whole, body = sass_mix(cubin)
    threads = kernel.metadata.num_warps * 32
    pixels_per_thread = block / threads
    loop_total, rest = sum(body.values()), sum(whole.values()) - sum(body.values())
    per_pixel = (loop_total * n_blocks + rest) / pixels_per_thread  # instructions issued per pixel
    name, sms, clock = GPUS[arch]
    pixels = 1080 * 1080
    ms_bound = pixels * per_pixel / (sms * 128 * clock) * 1e3
    flops = flops_per_pixel(ResnetGenerator(ResnetConfig(width=width, n_blocks=n_blocks)))
    return {
        "layout": layout, "arch": f"sm_{arch}{'a' if arch == 90 else ''}", "gpu": name, "width": width,
        "variant": variant,
        "registers": res.get("reg"), "stack_bytes": res.get("stack"), "local_bytes": res.get("local"),
        "spills": bool(res.get("stack") or res.get("local")), "shared_bytes": res.get("shared"),
        "num_warps": kernel.metadata.num_warps, "instructions": sum(whole.values()), "loop_instructions": loop_total,
        "loop_shfl": body["SHFL"], "loop_bar": body["BAR"],
        "loop_ffma": body["FFMA"], "loop_fmul_fadd": body["FMUL"] + body["FADD"],
        "instructions_per_pixel": round(per_pixel, 1),
        "estimate_ms_per_1080_frame_at_least": round(ms_bound, 3),
        "estimate_fp32_peak_share_at_most": round(flops / (2 * per_pixel), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    rows = [report_row(w, v, a, layout) for layout in BLOCKS for a in (80, 90) for w in (6, 4) for v in VARIANTS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("ESTIMATES from the compiled code, not measurements (see the module docstring)")
    head = (f"{'layout':9} {'arch':7} {'w':>2} {'variant':15} {'regs':>4} {'spill':>5} {'instr/px':>8} {'loop SHFL':>9} "
            f"{'loop BAR':>8} {'loop FFMA':>9} {'>= ms/frame':>11} {'<= %peak':>8}")
    print(head)
    for r in rows:
        print(f"{r['layout']:9} {r['arch']:7} {r['width']:>2} {r['variant']:15} {r['registers']:>4} {str(r['spills']):>5} "
              f"{r['instructions_per_pixel']:>8} {r['loop_shfl']:>9} {r['loop_bar']:>8} {r['loop_ffma']:>9} "
              f"{r['estimate_ms_per_1080_frame_at_least']:>11} {100 * r['estimate_fp32_peak_share_at_most']:>7.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
