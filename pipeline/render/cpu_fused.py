"""Fused CPU paths for both generator families: C kernels compiled at run time and called with ctypes, their pixel
tiles split over Python threads (ctypes releases the GIL) by one scheme, _Threads."""
from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from pipeline.native import KernelUnavailable, compile_and_load

_SOURCE = Path(__file__).with_name("cppn_kernel.c")
_PREV_SOURCE = Path(__file__).with_name("prev_kernel.c")
PREV_ROWS = 8  # prev_kernel.c's ROWS (output channels per register block): the packed width is a multiple of it
PREV_VECS = 1  # prev_kernel.c's VECS (pixel vectors per register block)


def load_kernel(width: int) -> ctypes.CDLL:
    """The render kernel for a hidden width (compiled once, cached on disk; see pipeline.native)."""
    lib = compile_and_load(f"render_w{width}", _SOURCE.read_text(), {"WIDTH": width})
    if not getattr(lib, "_cppn_typed", False):
        f32, i64, i32 = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        lib.cppn_resnet_f32.argtypes = [f32, i64, i64, i64, f32, i32, f32, i32, i32, f32]
        lib.cppn_resnet_u8.argtypes = [f32, i64, i64, i64, f32, i32, f32, i32, i32, i32, f32]
        lib.cppn_resnet_camera.argtypes = [f32, f32, i64, i64, i64, i64, f32, i32, f32, i32, i32, f32, f32, i32]
        lib.cppn_resnet_f32.restype = lib.cppn_resnet_u8.restype = lib.cppn_resnet_camera.restype = None
        lib.cppn_resnet_block.argtypes, lib.cppn_resnet_block.restype = [], ctypes.c_int
        lib._cppn_typed = True
    return lib


def load_prev_kernel(width: int) -> ctypes.CDLL:
    """The prev render kernel for a (packed, multiple of PREV_ROWS) hidden width."""
    lib = compile_and_load(f"render_prev_w{width}", _PREV_SOURCE.read_text(),
                           {"WIDTH": width, "ROWS": PREV_ROWS, "VECS": PREV_VECS})
    if not getattr(lib, "_cppn_typed", False):
        f32, i64, i32 = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        lib.cppn_prev_static.argtypes = [f32, f32, i64, i64, i64, f32, i32, f32, i32, f32, f32, i32]
        lib.cppn_prev_camera.argtypes = [f32, f32, i64, i64, i64, i64, f32, i32, f32, i32, f32, f32, i32]
        lib.cppn_prev_static.restype = lib.cppn_prev_camera.restype = None
        lib.cppn_prev_block.argtypes, lib.cppn_prev_block.restype = [], i32
        lib._cppn_typed = True
    return lib


def available(family: str = "resnet") -> bool:
    """Whether the family's fused kernel builds and loads here (at the article's width)."""
    try:
        load_kernel(6) if family == "resnet" else load_prev_kernel(128)
        return True
    except KernelUnavailable:
        return False


def pack_resnet(gen) -> np.ndarray:
    """All block and output parameters as one contiguous float32 array, in the kernel's order
    (ResnetGenerator.kernel_parameters)."""
    return gen.kernel_parameters().detach().to(torch.float32).cpu().numpy().copy()


class _Threads:
    """How both fused kernels split a frame: pixel tiles of `tile` (rounded up to a multiple of `align`, so every
    vector block inside a tile is full) run on `threads` Python threads, each tile one C call. Each pixel runs the
    same vector code wherever it falls, so the result does not depend on the tile size or thread count."""

    def __init__(self, threads: int | None, tile: int, align: int):
        self.threads = max(1, threads or torch.get_num_threads())
        self.align = align
        self.tile = max(align, int(tile))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _split(self, P: int, run) -> None:
        tile = (self.tile + self.align - 1) // self.align * self.align
        ranges = [(p, min(p + tile, P)) for p in range(0, P, tile)]
        if self._pool is None or len(ranges) == 1:
            for r in ranges:
                run(*r)
        else:
            list(self._pool.map(lambda r: run(*r), ranges))


class ResnetKernel(_Threads):
    """Evaluates a resnet generator on precomputed coordinate projections with the fused C kernel."""

    def __init__(self, gen, threads: int | None = None, tile: int = 16384):
        cfg = gen.cfg
        self.width, self.n_blocks, self.relu_layers = cfg.width, cfg.n_blocks, cfg.relu_layers
        self.lib = load_kernel(cfg.width)
        self.params = pack_resnet(gen)
        super().__init__(threads, tile, align=int(self.lib.cppn_resnet_block()))

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


def pack_prev(gen, width: int) -> np.ndarray:
    """prev's hidden and output layers as one float32 array in prev_kernel.c's layout, the width padded to `width`
    with zero channels (zero weights in and out, so they add exactly nothing): per hidden layer W as
    [width / PREV_ROWS][width (input)][PREV_ROWS] then b [width]; then the output weights [width] and bias."""
    W = gen.cfg.width
    parts = []
    for layer in gen.hidden:
        w = np.zeros((width, width), np.float32)
        w[:W, :W] = layer.weight.detach().cpu().numpy()
        b = np.zeros(width, np.float32)
        b[:W] = layer.bias.detach().cpu().numpy()
        parts += [w.reshape(width // PREV_ROWS, PREV_ROWS, width).transpose(0, 2, 1).ravel(), b]
    wo = np.zeros(width, np.float32)
    wo[:W] = gen.out.weight.detach().cpu().numpy()[0]
    parts += [wo, gen.out.bias.detach().cpu().numpy().astype(np.float32)]
    return np.ascontiguousarray(np.concatenate(parts), np.float32)


class PrevKernel(_Threads):
    """Evaluates a prev generator with its fused C kernel: the static frame from its float32 grid [3, P]
    (coords.grid_t), a moving camera from per-frame affine maps; the kernel projects x, y, r itself."""

    def __init__(self, gen, threads: int | None = None, tile: int = 16384):
        cfg = gen.cfg
        self.cfg_width, self.layers = cfg.width, cfg.tanh_layers
        self.width = -(-cfg.width // PREV_ROWS) * PREV_ROWS
        self.lib = load_prev_kernel(self.width)
        self.params = pack_prev(gen, self.width)
        self.w_xyr = self._pad(gen.input.xyr.weight.detach().double().cpu().numpy())  # [width, 3] float64
        super().__init__(threads, tile, align=int(self.lib.cppn_prev_block()))

    def _pad(self, a: np.ndarray) -> np.ndarray:
        """Rows of a [cfg width, ...] array padded with zeros to the packed width."""
        out = np.zeros((self.width, *a.shape[1:]), a.dtype)
        out[: a.shape[0]] = a
        return out

    def _outputs(self, zbias: np.ndarray, out: np.ndarray):
        B, P = out.shape
        if zbias.shape != (B, self.cfg_width):
            raise ValueError(f"shape mismatch: zbias {zbias.shape} for {B} frames of width {self.cfg_width}")
        if not out.flags.c_contiguous:
            raise ValueError("arrays must be C-contiguous")
        zb = np.ascontiguousarray(self._pad(np.asarray(zbias, np.float32).T).T)  # [B, width]
        return zb, (None, out.ctypes.data) if out.dtype == np.uint8 else (out.ctypes.data, None)

    def __call__(self, grid: np.ndarray, zbias: np.ndarray, out: np.ndarray, invert: bool = False) -> np.ndarray:
        """grid: [3, P] float32 coordinates (x, y, r rows); zbias: [B, W] float32; out: [B, P] float32 or uint8."""
        B, P = out.shape
        grid = np.ascontiguousarray(grid, np.float32)
        if grid.shape != (3, P):
            raise ValueError(f"shape mismatch: grid {grid.shape}, out {out.shape}")
        zb, (f_ptr, u_ptr) = self._outputs(zbias, out)

        def run(p0: int, p1: int) -> None:
            self.lib.cppn_prev_static(grid.ctypes.data, self.w_xyr.ctypes.data, P, p0, p1, zb.ctypes.data, B,
                                      self.params.ctypes.data, self.layers, f_ptr, u_ptr, int(invert))

        self._split(P, run)
        return out

    def moving(self, affine: np.ndarray, w_xyr, width_px: int, zbias: np.ndarray, out: np.ndarray,
               invert: bool = False) -> np.ndarray:
        """A moving camera: affine [B, 6] float64 per-frame maps (coords.camera_affine), frames of width_px pixels
        a row (w_xyr: unused, the generator's own were packed; the signature is ResnetKernel.moving's)."""
        B, P = out.shape
        affine = np.ascontiguousarray(affine, np.float64)
        if affine.shape != (B, 6):
            raise ValueError(f"shape mismatch: affine {affine.shape} for {B} frames")
        zb, (f_ptr, u_ptr) = self._outputs(zbias, out)

        def run(p0: int, p1: int) -> None:
            self.lib.cppn_prev_camera(affine.ctypes.data, self.w_xyr.ctypes.data, width_px, P, p0, p1,
                                      zb.ctypes.data, B, self.params.ctypes.data, self.layers, f_ptr, u_ptr,
                                      int(invert))

        self._split(P, run)
        return out
