"""Fused CPU path for the resnet generator: a C kernel compiled at run time and called with ctypes."""
from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from pipeline.native import KernelUnavailable, compile_and_load

_SOURCE = Path(__file__).with_name("cppn_kernel.c")


def load_kernel(width: int) -> ctypes.CDLL:
    """The render kernel for a hidden width (compiled once, cached on disk; see pipeline.native)."""
    lib = compile_and_load(f"render_w{width}", _SOURCE.read_text(), {"WIDTH": width})
    if not getattr(lib, "_cppn_typed", False):
        f32, i64, i32 = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        lib.cppn_resnet_f32.argtypes = [f32, i64, i64, i64, f32, i32, f32, i32, i32, f32]
        lib.cppn_resnet_u8.argtypes = [f32, i64, i64, i64, f32, i32, f32, i32, i32, i32, f32]
        lib.cppn_resnet_camera.argtypes = [f32, f32, i64, i64, i64, i64, f32, i32, f32, i32, i32, f32, f32, i32]
        lib.cppn_resnet_f32.restype = lib.cppn_resnet_u8.restype = lib.cppn_resnet_camera.restype = None
        lib._cppn_typed = True
    return lib


def available() -> bool:
    try:
        load_kernel(6)
        return True
    except KernelUnavailable:
        return False


def pack_resnet(gen) -> np.ndarray:
    """All block and output parameters as one contiguous float32 array, in the kernel's order
    (ResnetGenerator.kernel_parameters)."""
    return gen.kernel_parameters().detach().to(torch.float32).cpu().numpy().copy()


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

        self._split(P, run)
        return out

    def moving(self, affine: np.ndarray, w_xyr: np.ndarray, width_px: int, zbias: np.ndarray, out: np.ndarray,
               invert: bool = False) -> np.ndarray:
        """A moving camera: affine [B, 6] float64 per-frame maps (coords.camera_affine), w_xyr [W, 3] float64, frames
        of width_px pixels a row; the kernel makes each pixel's coordinates itself. out: [B, P] float32 or uint8."""
        B, P = out.shape
        affine = np.ascontiguousarray(affine, np.float64)
        w_xyr = np.ascontiguousarray(w_xyr, np.float64)
        if affine.shape != (B, 6) or w_xyr.shape != (self.width, 3) or zbias.shape != (B, self.width):
            raise ValueError(f"shape mismatch: affine {affine.shape}, w_xyr {w_xyr.shape}, zbias {zbias.shape}")
        if not (zbias.flags.c_contiguous and out.flags.c_contiguous):
            raise ValueError("arrays must be C-contiguous")
        u8 = out.dtype == np.uint8
        f_ptr, u_ptr = (None, out.ctypes.data) if u8 else (out.ctypes.data, None)

        def run(p0: int, p1: int) -> None:
            self.lib.cppn_resnet_camera(affine.ctypes.data, w_xyr.ctypes.data, width_px, P, p0, p1, zbias.ctypes.data,
                                        B, self.params.ctypes.data, self.n_blocks, self.relu_layers, f_ptr, u_ptr,
                                        int(invert))

        self._split(P, run)
        return out

    def _split(self, P: int, run) -> None:
        # Tiles are multiples of 16 pixels so every chunk inside a tile is full; the result does not
        # depend on the tile size or thread count (each pixel runs the same vector code).
        tile = (self.tile + 15) // 16 * 16
        ranges = [(p, min(p + tile, P)) for p in range(0, P, tile)]
        if self._pool is None or len(ranges) == 1:
            for r in ranges:
                run(*r)
        else:
            list(self._pool.map(lambda r: run(*r), ranges))
