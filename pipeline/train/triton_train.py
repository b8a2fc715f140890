"""Fused Triton forward and backward of the resnet generator for training (the "triton" backend of
pipeline.train.fast_generator), the GPU counterpart of fast_kernel.c.

Pixel n of a batch is image n // P, position n % P (the [B, P] output's order); one program runs one tile of
BLOCK pixels through the whole network, channels first as the render kernel's "channels" layout (each channel a
[BLOCK] vector, weights uniform scalar loads; pipeline.render.triton_kernel). Inputs are the input layer's two
projections, as the C kernel's: zp [B, W] (bias included) and cp [W, P]; the kernels apply tanh(zp + cp).

Forward: nothing saved, one float per pixel written.
Backward: each program recomputes its tile, keeping only every block's input h (W vectors per block) in a
scratch buffer of its own ([tiles, n_blocks, W, BLOCK], read back by the same program: ~0.9 GB at batch 2000),
then goes back block by block: it recomputes the block's ReLU outputs and tanh from h in registers and applies by hand
  grad of a layer's weights = sum over the tile's pixels of g x^T,   grad of its input = W^T g,
  through a ReLU: g * (output > 0),   through tanh t: g * (1 - t^2),   through sigmoid s: g * s (1 - s),
  through the residual h_out = h_in + branch: the gradient of h_in is g_h_out + the branch's.
Weight gradients: each program writes its tile's sums (per layer, one reduction of [BLOCK, WP] per row of
g x^T, channels padded to a power of two WP) to its own row of a [tiles, n_params] buffer (~0.4 GB at batch
2000 in 64-pixel tiles), which torch sums over tiles: no atomics, so the result is the same run to run. The
input gradient g_u = dL/d(zp + cp) per pixel is written as [W, B*P], and torch sums it over pixels (to zp)
and over images (to cp).
No host syncs: sizes come from shapes, nothing is read back to the host.

Runs on CUDA, and on the CPU under TRITON_INTERPRET=1 (how tests/test_triton_train.py checks it against
autograd). n_blocks is a compile-time constant as in the render kernel (the interpreter with numpy >= 2.4 fails
on a runtime loop bound); the block loops stay loops (range, not static_range).
"""
from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is optional: fast_generator falls back to the other backends
    triton = None

if triton is not None:
    from pipeline.render.triton_kernel import _tanh

FORWARD_BLOCK = 512  # pixels per forward program (4 per thread at 4 warps, as the render kernel)
# Backward: 64 pixels per program, one warp (2 pixels a thread): compiled for sm_90a that is 184 registers, no
# spills and the fewest instructions of the shapes tried (benchmarks/train_compile_report.py; not yet timed).
BACKWARD_BLOCK = 64
BACKWARD_WARPS = 1


def interpreted() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def applies(tensors) -> bool:
    """The kernels need float32 tensors on CUDA, or on the CPU under the interpreter."""
    dev = "cpu" if interpreted() else "cuda"
    return triton is not None and all(t.device.type == dev and t.dtype == torch.float32 for t in tensors)


if triton is not None:

    @triton.jit
    def _input(zp_ptr, cp_ptr, offs, mask, P, WIDTH: tl.constexpr):
        """h = tanh(zp[b] + cp[:, p]) for pixels offs: a tuple of WIDTH [BLOCK] vectors."""
        b = offs // P
        p = offs % P
        h = ()
        for c in tl.static_range(WIDTH):
            u = (tl.load(zp_ptr + b * WIDTH + c, mask=mask, other=0.0)
                 + tl.load(cp_ptr + c * P + p, mask=mask, other=0.0))
            h = h + (_tanh(u),)
        return h

    @triton.jit
    def _layer(a, base, WIDTH: tl.constexpr):
        """W a + b for one layer at base (W [out, in] then b): a tuple of WIDTH vectors."""
        v = ()
        for o in tl.static_range(WIDTH):
            acc = a[0] * tl.load(base + o * WIDTH) + tl.load(base + WIDTH * WIDTH + o)
            for i in tl.static_range(1, WIDTH):
                acc = acc + a[i] * tl.load(base + o * WIDTH + i)
            v = v + (acc,)
        return v

    @triton.jit
    def _relu(v, WIDTH: tl.constexpr):
        a = ()
        for c in tl.static_range(WIDTH):
            a = a + (tl.maximum(v[c], 0.0),)
        return a

    @triton.jit
    def _stack(v, WIDTH: tl.constexpr, WP: tl.constexpr):
        """A tuple of WIDTH [BLOCK] vectors as one [BLOCK, WP] tensor (columns past WIDTH zero)."""
        ch = tl.arange(0, WP)[None, :]
        out = tl.where(ch == 0, v[0][:, None], 0.0)
        for c in tl.static_range(1, WIDTH):
            out = tl.where(ch == c, v[c][:, None], out)
        return out

    @triton.jit
    def _store_weight_grads(ptr, g, a, WIDTH: tl.constexpr, WP: tl.constexpr):
        """At ptr (a layer's W [out, in] then b): the tile's sums of g a^T and of g, g and a tuples of vectors.
        One [BLOCK, WP] reduction per row of g a^T (g[c] times the stacked inputs) and one for the biases:
        fewer instructions, registers and barriers in the compiled backward than one [BLOCK, WP, WP] reduction
        or WIDTH * WIDTH scalar ones (benchmarks/train_compile_report.py, docs/PERFORMANCE.md)."""
        A = _stack(a, WIDTH, WP)
        ch = tl.arange(0, WP)
        cmask = ch < WIDTH
        for c in tl.static_range(WIDTH):
            tl.store(ptr + c * WIDTH + ch, tl.sum(g[c][:, None] * A, axis=0), mask=cmask)
        tl.store(ptr + WIDTH * WIDTH + ch, tl.sum(_stack(g, WIDTH, WP), axis=0), mask=cmask)

    @triton.jit
    def _block(h, base, WIDTH: tl.constexpr, RELU_LAYERS: tl.constexpr):
        """h + tanh(tanh layer(relu(... relu(h)))) for one residual block."""
        LAYER: tl.constexpr = WIDTH * WIDTH + WIDTH
        a = h
        for l in tl.static_range(RELU_LAYERS):
            a = _relu(_layer(a, base + l * LAYER, WIDTH), WIDTH)
        v = _layer(a, base + RELU_LAYERS * LAYER, WIDTH)
        out = ()
        for c in tl.static_range(WIDTH):
            out = out + (h[c] + _tanh(v[c]),)
        return out

    @triton.jit
    def _output(h, tail, WIDTH: tl.constexpr):
        """sigmoid(w_out . h + b_out)."""
        o = h[0] * tl.load(tail) + tl.load(tail + WIDTH)
        for c in tl.static_range(1, WIDTH):
            o = o + h[c] * tl.load(tail + c)
        return 1.0 / (1.0 + tl.exp(-o))

    @triton.jit
    def _forward_kernel(zp_ptr, cp_ptr, w_ptr, out_ptr, N, P, n_blocks: tl.constexpr, WIDTH: tl.constexpr,
                        RELU_LAYERS: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        LAYER: tl.constexpr = WIDTH * WIDTH + WIDTH
        h = _input(zp_ptr, cp_ptr, offs, mask, P, WIDTH)
        for blk in range(n_blocks):
            h = _block(h, w_ptr + blk * (RELU_LAYERS + 1) * LAYER, WIDTH, RELU_LAYERS)
        tl.store(out_ptr + offs, _output(h, w_ptr + n_blocks * (RELU_LAYERS + 1) * LAYER, WIDTH), mask=mask)

    @triton.jit
    def _backward_kernel(zp_ptr, cp_ptr, w_ptr, g_out_ptr, g_u_ptr, g_par_ptr, scratch_ptr, N, P,
                         n_blocks: tl.constexpr, WIDTH: tl.constexpr, WP: tl.constexpr, RELU_LAYERS: tl.constexpr,
                         BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        lanes = tl.arange(0, BLOCK)
        offs = pid * BLOCK + lanes
        mask = offs < N
        LAYER: tl.constexpr = WIDTH * WIDTH + WIDTH
        BLOCK_PARAMS: tl.constexpr = (RELU_LAYERS + 1) * LAYER
        N_PARAMS: tl.constexpr = n_blocks * BLOCK_PARAMS + WIDTH + 1
        # 64-bit row bases: tiles x n_blocks x W x BLOCK passes 2**31 at about 10x the article's batch
        save = scratch_ptr + pid.to(tl.int64) * (n_blocks * WIDTH * BLOCK) + lanes  # this program's rows
        gpar = g_par_ptr + pid.to(tl.int64) * N_PARAMS

        # forward, keeping each block's input
        h = _input(zp_ptr, cp_ptr, offs, mask, P, WIDTH)
        for blk in range(n_blocks):
            for c in tl.static_range(WIDTH):
                tl.store(save + (blk * WIDTH + c) * BLOCK, h[c])
            h = _block(h, w_ptr + blk * BLOCK_PARAMS, WIDTH, RELU_LAYERS)
        tl.debug_barrier()  # every thread reads back only its own lanes, but make the stores visible anyway

        # output layer: masked lanes get g_out = 0, so they add nothing to any sum below
        tail = w_ptr + n_blocks * BLOCK_PARAMS
        s = _output(h, tail, WIDTH)
        go = tl.load(g_out_ptr + offs, mask=mask, other=0.0) * s * (1.0 - s)
        ch = tl.arange(0, WP)
        tl.store(gpar + n_blocks * BLOCK_PARAMS + ch, tl.sum(_stack(h, WIDTH, WP) * go[:, None], axis=0),
                 mask=ch < WIDTH)
        tl.store(gpar + n_blocks * BLOCK_PARAMS + WIDTH, tl.sum(go, axis=0))
        gh = ()
        for c in tl.static_range(WIDTH):
            gh = gh + (go * tl.load(tail + c),)

        for j in range(n_blocks):
            blk = n_blocks - 1 - j
            base = w_ptr + blk * BLOCK_PARAMS
            gbase = gpar + blk * BLOCK_PARAMS
            # recompute the block: acts holds each layer's input, flat: acts[l * WIDTH + c]
            a = ()
            for c in tl.static_range(WIDTH):
                a = a + (tl.load(save + (blk * WIDTH + c) * BLOCK),)
            acts = a
            for l in tl.static_range(RELU_LAYERS):
                a = _relu(_layer(a, base + l * LAYER, WIDTH), WIDTH)
                acts = acts + a
            v = _layer(a, base + RELU_LAYERS * LAYER, WIDTH)
            g = ()
            for c in tl.static_range(WIDTH):
                t = _tanh(v[c])
                g = g + (gh[c] * (1.0 - t * t),)
            # back through the layers: g is the gradient of layer l's pre-activation
            for lb in tl.static_range(RELU_LAYERS, -1, -1):  # the layers, last first
                wl = base + lb * LAYER
                a = ()
                for k in tl.static_range(WIDTH):
                    a = a + (acts[lb * WIDTH + k],)
                _store_weight_grads(gbase + lb * LAYER, g, a, WIDTH, WP)
                ga = ()
                for k in tl.static_range(WIDTH):
                    acc = g[0] * tl.load(wl + k)
                    for c in tl.static_range(1, WIDTH):
                        acc = acc + g[c] * tl.load(wl + c * WIDTH + k)
                    ga = ga + (acc,)
                if lb > 0:  # through the ReLU whose output is this layer's input
                    g = ()
                    for k in tl.static_range(WIDTH):
                        g = g + (tl.where(acts[lb * WIDTH + k] > 0.0, ga[k], 0.0),)
                else:  # the residual: the block input's gradient is the output's plus the branch's
                    ngh = ()
                    for k in tl.static_range(WIDTH):
                        ngh = ngh + (gh[k] + ga[k],)
                    gh = ngh

        # through the input tanh (block 0's input is its output): g_u = dL/d(zp + cp) per pixel, [W, N]
        for c in tl.static_range(WIDTH):
            t = tl.load(save + c * BLOCK)
            tl.store(g_u_ptr + c * N + offs, gh[c] * (1.0 - t * t), mask=mask)


_ready: dict = {}  # (n_blocks, width, relu_layers, device) -> None when both kernels compiled, else the reason


def compile_error(n_blocks: int, width: int, relu_layers: int, device: torch.device) -> str | None:
    """None when both kernels compile and launch for this network on device, else why not (found once, by a
    forward and backward of one pixel, so a failing compile shows before a training step is half done, and
    "auto" can fall back). Under the interpreter there is nothing to compile: None."""
    key = (n_blocks, width, relu_layers, str(device))
    if key not in _ready:
        _ready[key] = None
        if not interpreted():
            n_params = n_blocks * (relu_layers + 1) * (width * width + width) + width + 1
            one = dict(device=device, dtype=torch.float32)
            try:
                zp, cp = torch.zeros((1, width), **one), torch.zeros((width, 1), **one)
                params = torch.zeros(n_params, **one)
                forward(zp, cp, params, n_blocks, width, relu_layers)
                backward(zp, cp, params, torch.zeros((1, 1), **one), n_blocks, width, relu_layers)
            except Exception as exc:  # noqa: BLE001 - any compiler or launch failure means: not usable here
                _ready[key] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return _ready[key]


def forward(zp: torch.Tensor, cp: torch.Tensor, params: torch.Tensor, n_blocks: int, width: int,
            relu_layers: int, block: int = 0, num_warps: int = 4) -> torch.Tensor:
    """zp [B, W], cp [W, P], packed params -> sigmoid output [B, P] (float32, zp's device).
    block: pixels per program (0: FORWARD_BLOCK)."""
    B, P = zp.shape[0], cp.shape[1]
    block = block or FORWARD_BLOCK
    out = torch.empty((B, P), device=zp.device, dtype=torch.float32)
    N = B * P
    _forward_kernel[(triton.cdiv(N, block),)](zp, cp, params, out, N, P, n_blocks=n_blocks, WIDTH=width,
                                               RELU_LAYERS=relu_layers, BLOCK=block, num_warps=num_warps)
    return out


def backward(zp: torch.Tensor, cp: torch.Tensor, params: torch.Tensor, g_out: torch.Tensor, n_blocks: int,
             width: int, relu_layers: int, block: int = 0, num_warps: int = 0):
    """Gradients (zp [B, W], cp [W, P], params [n_params]) for dL/d out = g_out [B, P].
    block, num_warps: pixels and warps per program (0: BACKWARD_BLOCK, BACKWARD_WARPS)."""
    B, P = zp.shape[0], cp.shape[1]
    block, num_warps = block or BACKWARD_BLOCK, num_warps or BACKWARD_WARPS
    N = B * P
    tiles = triton.cdiv(N, block)
    dev = zp.device
    g_u = torch.empty((width, N), device=dev, dtype=torch.float32)
    g_par = torch.empty((tiles, params.numel()), device=dev, dtype=torch.float32)
    scratch = torch.empty((tiles, n_blocks, width, block), device=dev, dtype=torch.float32)
    _backward_kernel[(tiles,)](zp, cp, params, g_out, g_u, g_par, scratch, N, P, n_blocks=n_blocks, WIDTH=width,
                               WP=triton.next_power_of_2(width), RELU_LAYERS=relu_layers, BLOCK=block,
                               num_warps=num_warps)
    g_u = g_u.view(width, B, P)
    return g_u.sum(2).t(), g_u.sum(1), g_par.sum(0)
