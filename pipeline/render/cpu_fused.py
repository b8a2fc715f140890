"""Fused CPU path for the resnet generator: a C kernel compiled at run time and called with ctypes."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

_SOURCE = Path(__file__).with_name("cppn_kernel.c")
_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=c99"]
_lock = threading.Lock()
_libs: dict[int, ctypes.CDLL] = {}


class KernelUnavailable(RuntimeError):
    """No C compiler (or the compile failed): the caller falls back to the torch tile path."""


def cache_dir() -> Path:
    root = os.environ.get("CPPN_VIDEO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cppn-video")
    return Path(root) / "kernels"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def load_kernel(width: int) -> ctypes.CDLL:
    """Compile (once per source, flags, width and machine) and load the kernel for a hidden width."""
    with _lock:
        if width in _libs:
            return _libs[width]
        cc = _compiler()
        if cc is None:
            raise KernelUnavailable("no C compiler found (set CC)")
        source = _SOURCE.read_bytes()
        key = hashlib.sha256(source + " ".join(_FLAGS + [cc, str(width), sys.platform]).encode()).hexdigest()[:16]
        # -march=native binds the binary to this CPU model: include it in the key for shared home dirs.
        key += "-" + _cpu_tag()
        target = cache_dir() / f"cppn_w{width}_{key}.so"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
            os.close(fd)
            cmd = [cc, *_FLAGS, f"-DWIDTH={width}", "-o", tmp, str(_SOURCE), "-lm"]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                os.unlink(tmp)
                raise KernelUnavailable(f"compiling the CPU kernel failed: {result.stderr.strip()[-500:]}")
            os.replace(tmp, target)
        lib = ctypes.CDLL(str(target))
        f32, i64, i32 = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        lib.cppn_resnet_f32.argtypes = [f32, i64, i64, i64, f32, i32, f32, i32, i32, f32]
        lib.cppn_resnet_u8.argtypes = [f32, i64, i64, i64, f32, i32, f32, i32, i32, i32, f32]
        lib.cppn_resnet_f32.restype = lib.cppn_resnet_u8.restype = None
        _libs[width] = lib
        return lib


def _cpu_tag() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return hashlib.sha256(line.encode()).hexdigest()[:8]
    except OSError:
        pass
    return "cpu"


def available() -> bool:
    try:
        load_kernel(6)
        return True
    except KernelUnavailable:
        return False


def pack_resnet(gen) -> np.ndarray:
    """All block and output parameters as one contiguous float32 array, in the kernel's order."""
    parts = []
    for block in gen.blocks:
        for layer in list(block.relu) + [block.tanh]:
            parts += [layer.weight.detach().reshape(-1), layer.bias.detach().reshape(-1)]
    parts += [gen.out.weight.detach().reshape(-1), gen.out.bias.detach().reshape(-1)]
    return torch.cat(parts).to(torch.float32).cpu().numpy().copy()


class ResnetKernel:
    """Evaluates a resnet generator on precomputed coordinate projections with the fused C kernel."""

    def __init__(self, gen, threads: int | None = None, tile: int = 16384):
        cfg = gen.cfg
        self.width, self.n_blocks, self.relu_layers = cfg.width, cfg.n_blocks, cfg.relu_layers
        self.lib = load_kernel(cfg.width)
        self.params = pack_resnet(gen)
        self.threads = max(1, threads or torch.get_num_threads())
        self.tile = max(16, int(tile))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __call__(self, cp: np.ndarray, zbias: np.ndarray, out: np.ndarray, invert: bool = False) -> np.ndarray:
        """cp: [W, P] float32 coordinate projections; zbias: [B, W] float32; out: [B, P] float32 or uint8."""
        W, P = cp.shape
        B = zbias.shape[0]
        if W != self.width or zbias.shape[1] != W or out.shape != (B, P):
            raise ValueError(f"shape mismatch: cp {cp.shape}, zbias {zbias.shape}, out {out.shape}")
        for a in (cp, zbias, out):
            if not a.flags.c_contiguous:
                raise ValueError("arrays must be C-contiguous")
        cp_ptr, zb_ptr, w_ptr = cp.ctypes.data, zbias.ctypes.data, self.params.ctypes.data
        o_ptr = out.ctypes.data
        u8 = out.dtype == np.uint8

        def run(p0: int, p1: int) -> None:
            if u8:
                self.lib.cppn_resnet_u8(cp_ptr, P, p0, p1, zb_ptr, B, w_ptr, self.n_blocks, self.relu_layers,
                                        int(invert), o_ptr)
            else:
                self.lib.cppn_resnet_f32(cp_ptr, P, p0, p1, zb_ptr, B, w_ptr, self.n_blocks, self.relu_layers,
                                         o_ptr)

        # Tiles are multiples of 16 pixels so every chunk inside a tile is full; the result does not
        # depend on the tile size or thread count (each pixel runs the same vector code).
        tile = (self.tile + 15) // 16 * 16
        ranges = [(p, min(p + tile, P)) for p in range(0, P, tile)]
        if self._pool is None or len(ranges) == 1:
            for r in ranges:
                run(*r)
        else:
            list(self._pool.map(lambda r: run(*r), ranges))
        return out
