"""Fused Triton kernels for the resnet generator: one program per pixel tile, the whole network in registers.

Channels are padded to a power of two (WP) with zero weights, which keeps padded channels at exactly 0.
n_blocks is a compile-time constant (one compile per depth; Triton 3.6's interpreter with numpy >= 2.4 fails
on a runtime loop bound, and the compiled code is the same).
Runs on CUDA, and on the CPU under TRITON_INTERPRET=1 (how the tests check it against the oracle).
"""
from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is optional: the engine falls back to the torch path
    triton = None


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _tanh(x):
        # exp of a non-positive number only: no overflow; |error| ~1e-7 near 0 from the cancellation in 1 - e.
        e = tl.exp(-2.0 * tl.abs(x))
        t = (1.0 - e) / (1.0 + e)
        return tl.where(x < 0, -t, t)

    @triton.jit
    def _camera_xyr(cam_ptr, frame, offs, WPX):
        """A moving camera's coordinates of pixels offs of a frame (coords.camera_affine), float64: x, y, r."""
        row = (offs // WPX).to(tl.float64)
        col = (offs % WPX).to(tl.float64)
        a = cam_ptr + frame * 6
        x = tl.load(a) + tl.load(a + 1) * col + tl.load(a + 2) * row
        y = tl.load(a + 3) + tl.load(a + 4) * col + tl.load(a + 5) * row
        return x, y, tl.sqrt(x * x + y * y)

    @triton.jit
    def _store_output(ptrs, o, mask, OUT_U8: tl.constexpr, INVERT: tl.constexpr):
        """sigmoid(o) as float, or quantised to uint8 (inverted: 255 - q), the engine's to_uint8 rounding."""
        o = 1.0 / (1.0 + tl.exp(-o))
        if OUT_U8:
            q = tl.minimum(tl.maximum((o * 255.0 + 0.5).to(tl.int32), 0), 255)
            if INVERT:
                q = 255 - q
            tl.store(ptrs, q.to(tl.uint8), mask=mask)
        else:
            tl.store(ptrs, o, mask=mask)

    @triton.jit
    def _resnet_kernel(coords_ptr, zb_ptr, w_xyr_ptr, w_ptr, out_ptr, P, n_blocks: tl.constexpr,
                       WIDTH: tl.constexpr, WP: tl.constexpr, RELU_LAYERS: tl.constexpr, BLOCK: tl.constexpr,
                       OUT_U8: tl.constexpr, INVERT: tl.constexpr, cam_ptr=None, w64_ptr=None, WPX=1,
                       CAMERA: tl.constexpr = False):
        pid = tl.program_id(0)
        frame = tl.program_id(1)
        # 64-bit: frames x pixels passes 2**31 at e.g. 8 frames of 16384x16384, and a 32-bit product wraps.
        out_base = frame.to(tl.int64) * P
        offs = pid * BLOCK + tl.arange(0, BLOCK)  # pixel indices of this tile
        pmask = offs < P
        ch = tl.arange(0, WP)
        cmask = ch < WIDTH

        # Input layer: coordinate projection (per pixel) + z bias (per frame), then tanh.  [BLOCK, WP]
        zb = tl.load(zb_ptr + frame * WIDTH + ch, mask=cmask, other=0.0)
        if CAMERA:  # float64 coordinates and projection, rounded once (as the other paths)
            x, y, r = _camera_xyr(cam_ptr, frame, offs, WPX)
            wx = tl.load(w64_ptr + ch * 3 + 0, mask=cmask, other=0.0)
            wy = tl.load(w64_ptr + ch * 3 + 1, mask=cmask, other=0.0)
            wr = tl.load(w64_ptr + ch * 3 + 2, mask=cmask, other=0.0)
            cp = x[:, None] * wx[None, :] + y[:, None] * wy[None, :] + r[:, None] * wr[None, :]
            h = cp.to(tl.float32) + zb[None, :]
        else:
            x = tl.load(coords_ptr + offs, mask=pmask, other=0.0)
            y = tl.load(coords_ptr + P + offs, mask=pmask, other=0.0)
            r = tl.load(coords_ptr + 2 * P + offs, mask=pmask, other=0.0)
            wx = tl.load(w_xyr_ptr + ch * 3 + 0, mask=cmask, other=0.0)
            wy = tl.load(w_xyr_ptr + ch * 3 + 1, mask=cmask, other=0.0)
            wr = tl.load(w_xyr_ptr + ch * 3 + 2, mask=cmask, other=0.0)
            h = x[:, None] * wx[None, :] + y[:, None] * wy[None, :] + r[:, None] * wr[None, :] + zb[None, :]
        h = _tanh(h)

        LAYER: tl.constexpr = WIDTH * WIDTH + WIDTH  # floats per layer: W [out, in] then b
        w_idx = ch[:, None] * WIDTH + ch[None, :]  # [WP out, WP in]
        w_mask = cmask[:, None] & cmask[None, :]
        for blk in range(n_blocks):
            base = w_ptr + blk * (RELU_LAYERS + 1) * LAYER
            a = h
            for l in tl.static_range(RELU_LAYERS + 1):
                w = tl.load(base + l * LAYER + w_idx, mask=w_mask, other=0.0)  # [WP, WP]
                b = tl.load(base + l * LAYER + WIDTH * WIDTH + ch, mask=cmask, other=0.0)  # [WP]
                v = tl.sum(a[:, None, :] * w[None, :, :], axis=2) + b[None, :]  # [BLOCK, WP]
                if l < RELU_LAYERS:
                    a = tl.maximum(v, 0.0)
                else:
                    h = h + _tanh(v)

        tail = w_ptr + n_blocks * (RELU_LAYERS + 1) * LAYER
        wo = tl.load(tail + ch, mask=cmask, other=0.0)
        bo = tl.load(tail + WIDTH)
        o = tl.sum(h * wo[None, :], axis=1) + bo  # [BLOCK]
        _store_output(out_ptr + out_base + offs, o, pmask, OUT_U8, INVERT)


if triton is not None:

    @triton.jit
    def _resnet_channels_kernel(coords_ptr, zb_ptr, w_xyr_ptr, w_ptr, out_ptr, P, n_blocks: tl.constexpr,
                                WIDTH: tl.constexpr, RELU_LAYERS: tl.constexpr, BLOCK: tl.constexpr,
                                OUT_U8: tl.constexpr, INVERT: tl.constexpr, cam_ptr=None, w64_ptr=None, WPX=1,
                                CAMERA: tl.constexpr = False):
        """Channels first: each channel is its own [BLOCK] vector (a tuple of WIDTH of them), so every thread
        holds all channels of its pixels in registers and a layer is WIDTH x WIDTH scalar-times-vector FMAs:
        no cross-lane reduction, hence no shuffles and no barriers. Weights are uniform scalar loads."""
        pid = tl.program_id(0)
        frame = tl.program_id(1)
        out_base = frame.to(tl.int64) * P
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        pmask = offs < P
        h = ()
        if CAMERA:  # float64 coordinates and projection, rounded once (as the other paths)
            x, y, r = _camera_xyr(cam_ptr, frame, offs, WPX)
            for c in tl.static_range(WIDTH):
                cp = x * tl.load(w64_ptr + c * 3) + y * tl.load(w64_ptr + c * 3 + 1) + r * tl.load(w64_ptr + c * 3 + 2)
                h = h + (_tanh(cp.to(tl.float32) + tl.load(zb_ptr + frame * WIDTH + c)),)
        else:
            x = tl.load(coords_ptr + offs, mask=pmask, other=0.0)
            y = tl.load(coords_ptr + P + offs, mask=pmask, other=0.0)
            r = tl.load(coords_ptr + 2 * P + offs, mask=pmask, other=0.0)
            for c in tl.static_range(WIDTH):
                u = (x * tl.load(w_xyr_ptr + c * 3) + y * tl.load(w_xyr_ptr + c * 3 + 1)
                     + r * tl.load(w_xyr_ptr + c * 3 + 2) + tl.load(zb_ptr + frame * WIDTH + c))
                h = h + (_tanh(u),)

        LAYER: tl.constexpr = WIDTH * WIDTH + WIDTH  # floats per layer: W [out, in] then b
        for blk in range(n_blocks):
            base = w_ptr + blk * (RELU_LAYERS + 1) * LAYER
            a = h
            for l in tl.static_range(RELU_LAYERS + 1):
                v = ()
                for o in tl.static_range(WIDTH):
                    acc = a[0] * tl.load(base + l * LAYER + o * WIDTH) + tl.load(base + l * LAYER + WIDTH * WIDTH + o)
                    for i in tl.static_range(1, WIDTH):
                        acc = acc + a[i] * tl.load(base + l * LAYER + o * WIDTH + i)
                    v = v + (acc,)
                if l < RELU_LAYERS:
                    a = ()
                    for o in tl.static_range(WIDTH):
                        a = a + (tl.maximum(v[o], 0.0),)
                else:
                    nh = ()
                    for o in tl.static_range(WIDTH):
                        nh = nh + (h[o] + _tanh(v[o]),)
                    h = nh

        tail = w_ptr + n_blocks * (RELU_LAYERS + 1) * LAYER
        o = h[0] * tl.load(tail) + tl.load(tail + WIDTH)
        for c in tl.static_range(1, WIDTH):
            o = o + h[c] * tl.load(tail + c)
        _store_output(out_ptr + out_base + offs, o, pmask, OUT_U8, INVERT)


LAYOUTS = ("channels", "broadcast")


class TritonResnet:
    """Runs a fused kernel for a resnet generator on precomputed coordinates.

    layout "channels" (the default): _resnet_channels_kernel, 512 pixels per program (4 per thread: the
    scalar weight loads are shared by 4 pixels; 96 registers on sm_90a). "broadcast": the first kernel, a
    [BLOCK, WP, WP] broadcast-and-reduce per layer, kept to compare against (benchmarks/gpu_check.py).
    benchmarks/gpu_compile_report.py shows what each compiles to.
    """

    def __init__(self, gen, device: torch.device, block: int | None = None, layout: str = "channels"):
        if triton is None:
            raise RuntimeError("triton is not installed")
        from pipeline.render.cpu_fused import pack_resnet

        cfg = gen.cfg
        self.width, self.n_blocks, self.relu_layers = cfg.width, cfg.n_blocks, cfg.relu_layers
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
        self.layout = layout
        self.wp = triton.next_power_of_2(cfg.width)
        self.block = block or (512 if layout == "channels" else 128)
        self.device = device
        self.params = torch.from_numpy(pack_resnet(gen)).to(device)
        self.w_xyr = gen.input.xyr.weight.detach().to(device=device, dtype=torch.float32).contiguous()  # [W, 3]
        self.w_xyr64 = gen.input.xyr.weight.detach().to(device=device, dtype=torch.float64).contiguous()

    @torch.no_grad()
    def __call__(self, coords_t: torch.Tensor, zbias: torch.Tensor, invert: bool | None = None) -> torch.Tensor:
        """coords_t: [3, P]; zbias: [B, W]. Returns float [B, P], or uint8 when invert is not None."""
        return self._launch(coords_t.contiguous(), coords_t.shape[1], zbias, invert, {})

    @torch.no_grad()
    def moving(self, affine, width: int, P: int, zbias: torch.Tensor, invert: bool | None = None) -> torch.Tensor:
        """A moving camera: affine [B, 6] float64 per-frame maps (coords.camera_affine) of frames `width` pixels
        wide; each program makes its pixels' coordinates (no grid). Returns float [B, P], or uint8."""
        cam = torch.as_tensor(affine, dtype=torch.float64).to(self.device).contiguous()
        extra = dict(cam_ptr=cam, w64_ptr=self.w_xyr64, WPX=int(width), CAMERA=True)
        return self._launch(self.w_xyr, P, zbias, invert, extra)  # coords_ptr unused: any float32 tensor

    def _launch(self, coords_t: torch.Tensor, P: int, zbias: torch.Tensor, invert: bool | None, extra: dict):
        B = zbias.shape[0]
        out = torch.empty((B, P), device=self.device, dtype=torch.float32 if invert is None else torch.uint8)
        grid = (triton.cdiv(P, self.block), B)
        args = (coords_t, zbias.contiguous(), self.w_xyr, self.params, out, P, self.n_blocks)
        flags = dict(WIDTH=self.width, RELU_LAYERS=self.relu_layers, BLOCK=self.block, OUT_U8=invert is not None,
                     INVERT=bool(invert), **extra)
        # The launch returns the compiled kernel (registers, spills: benchmarks/gpu_check.py reports them).
        if self.layout == "channels":
            self.last_compiled = _resnet_channels_kernel[grid](*args, **flags)
        else:
            self.last_compiled = _resnet_kernel[grid](*args, WP=self.wp, **flags)
        return out
