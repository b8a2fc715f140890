"""Fast training forward/backward of the resnet generator: a fused C kernel behind a custom autograd Function.

`generator_forward(gen, z, coords)` is a drop-in replacement for `gen(z, coords)` inside training: same
values (within float32 rounding), gradients for every generator parameter and for z.

Why it is fast: plain autograd runs the width-6 network as 240 tiny `[pixels, 6] x [6, 6]` products,
keeping every intermediate (several GB at batch 1000) and spending its time in memory traffic and
allocation. The kernel instead runs the whole network per vector of 16 pixels in registers, saves
nothing in the forward pass, and in the backward pass recomputes the activations of one small pixel
tile at a time (they stay in cache) and goes back through the layers by hand:
  grad of a layer's weights  = sum over pixels of g x^T,   grad of its input = W^T g,
  through a ReLU: g * (output > 0),   through tanh t: g * (1 - t^2),   through sigmoid s: g * s (1 - s).
The input layer's two projections stay in torch (z: [B, W], per image; x, y, r: [W, P], per pixel) so
autograd routes their gradients on to z (and the encoder) and to the input weights; the kernel adds them,
applies tanh, and returns their gradients summed over pixels (z part) and over images (x, y, r part).

Backends (argument `backend`):
  "autograd"  the model's own forward (the reference);
  "torch"     the same network channels-first with `addmm` under plain autograd (no compiler needed,
              any device, any dtype; about 2x faster than "autograd" on the CPU here);
  "c"         the fused kernel (CPU, float32; raises KernelUnavailable without a working C compiler);
  "triton"    the same scheme as Triton kernels (pipeline.train.triton_train; CUDA, float32, or the CPU under
              TRITON_INTERPRET=1, where the tests check it against "autograd"; raises KernelUnavailable elsewhere);
  "auto"      on the CPU: "c" where it applies and compiles, else "torch"; on a GPU: "triton" for resnet where
              triton is installed, the tensors are float32 and the kernels agree with autograd on a slice of
              the first step (_triton_disagreement), else "autograd", which `cppn-video bench train
              --device cuda` measured fastest of the others there (H200, 2026-11-28: resnet 1.07 s per batch at
              the schedule maximum against 1.38 for "torch"; prev 0.071 against 0.077 s). "triton" has not yet
              been timed on a GPU (docs/PERFORMANCE.md).
The `prev` generator (width 128) is a few large matrix products that BLAS already runs well (a chunked
recompute was tried and was slower). What is slow there is torch's CPU `tanh` (its accurate vector tanh:
55-80 ms per [338,000, 128] tensor, against 9 ms for `sigmoid`), so every backend but "autograd" runs prev
with each hidden layer as one autograd Function computing tanh(u) = 2 sigmoid(2u) - 1, the factor 2
folded into the layer's matrix product (`addmm` with alpha = beta = 2): absolute error under 3e-7.
"""
from __future__ import annotations

import ctypes
import importlib.util
import threading
import warnings
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn as nn

from pipeline.models.channels_first import resnet_channels_first
from pipeline.native import KernelUnavailable, compile_and_load

BACKENDS = ("auto", "c", "torch", "triton", "autograd")

# Pixels per kernel call: small enough to balance two threads at batch 100 (67,600 pixels). A fixed
# size (not one range per thread) makes the kernel's gradient sums independent of the thread count.
_CHUNK = 8192

_SOURCE = Path(__file__).with_name("fast_kernel.c")

_TILE_VECS = 8
_lock = threading.Lock()  # guards the worker pool
_pool: ThreadPoolExecutor | None = None
_pool_threads = 0


def load_kernel(width: int) -> ctypes.CDLL:
    """The training kernel for a width (compiled once, cached on disk; see pipeline.native)."""
    lib = compile_and_load(f"train_w{width}", _SOURCE.read_text(), {"WIDTH": width, "TILE_VECS": _TILE_VECS})
    if not getattr(lib, "_cppn_typed", False):
        vp, i64, i32 = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        lib.fg_forward.argtypes = [vp, vp, i64, i64, i64, vp, i32, i32, vp]
        lib.fg_forward.restype = None
        lib.fg_backward.argtypes = [vp, vp, i64, i64, i64, vp, i32, i32, vp, vp, vp, vp]
        lib.fg_backward.restype = ctypes.c_int
        lib._cppn_typed = True
    return lib


def kernel_available(width: int = 6) -> bool:
    try:
        load_kernel(width)
        return True
    except KernelUnavailable:
        return False


def _map(fn, ranges: list) -> list:
    """Runs fn over pixel ranges on a thread pool (ctypes releases the GIL); results in range order."""
    global _pool, _pool_threads
    threads = max(1, torch.get_num_threads())
    if threads == 1 or len(ranges) == 1:
        return [fn(r) for r in ranges]
    with _lock:
        if _pool is None or _pool_threads != threads:
            if _pool is not None:
                _pool.shutdown()
            _pool, _pool_threads = ThreadPoolExecutor(threads, thread_name_prefix="fast-generator"), threads
        pool = _pool
    return list(pool.map(fn, ranges))


def _ranges(n: int) -> list:
    return [(a, min(a + _CHUNK, n)) for a in range(0, n, _CHUNK)]


class _FusedNetwork(torch.autograd.Function):
    """tanh(zp + cp) -> blocks -> output layer -> sigmoid: zp [B, W], cp [W, P], packed params -> [B, P]."""

    @staticmethod
    def forward(ctx, zp: torch.Tensor, cp: torch.Tensor, params: torch.Tensor, lib, n_blocks: int,
                relu_layers: int) -> torch.Tensor:
        B, P = zp.shape[0], cp.shape[1]
        out = torch.empty((B, P), dtype=torch.float32)
        z_ptr, c_ptr, p_ptr, o_ptr = zp.data_ptr(), cp.data_ptr(), params.data_ptr(), out.data_ptr()
        _map(lambda r: lib.fg_forward(z_ptr, c_ptr, P, r[0], r[1], p_ptr, n_blocks, relu_layers, o_ptr),
             _ranges(B * P))
        # Nothing but the inputs is saved: the backward recomputes activations tile by tile in cache,
        # which costs less than writing and reading back every intermediate.
        ctx.save_for_backward(zp, cp, params)
        ctx.lib, ctx.n_blocks, ctx.relu_layers = lib, n_blocks, relu_layers
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out: torch.Tensor):
        zp, cp, params = ctx.saved_tensors
        lib, n_blocks, relu_layers = ctx.lib, ctx.n_blocks, ctx.relu_layers
        (B, W), P = zp.shape, cp.shape[1]
        g_out = g_out.to(torch.float32).contiguous()  # [B, P]; autograd may hand over an expanded view
        ranges = _ranges(B * P)
        # one set of partial sums per pixel range, added in a fixed order: no races, same result
        # whatever the thread count
        g_zp = torch.zeros((len(ranges), B, W), dtype=torch.float64)
        g_cp = torch.zeros((len(ranges), W, P), dtype=torch.float64)
        g_par = torch.empty((len(ranges), params.numel()), dtype=torch.float32)
        z_ptr, c_ptr, p_ptr, g_ptr = zp.data_ptr(), cp.data_ptr(), params.data_ptr(), g_out.data_ptr()

        def run(i: int) -> int:
            a, b = ranges[i]
            return lib.fg_backward(z_ptr, c_ptr, P, a, b, p_ptr, n_blocks, relu_layers, g_ptr,
                                   g_zp[i].data_ptr(), g_cp[i].data_ptr(), g_par[i].data_ptr())

        if any(rc != 0 for rc in _map(run, list(range(len(ranges))))):
            raise MemoryError("the training kernel could not allocate its tile buffers")
        return g_zp.sum(0).float(), g_cp.sum(0).float(), g_par.sum(0), None, None, None


def _check(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> None:
    z_dim = gen.cfg.z_dim
    if z.dim() != 2 or z.shape[1] != z_dim:
        raise ValueError(f"z must be [B, {z_dim}], got {tuple(z.shape)}")
    if coords.dim() != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords must be [P, 3], got {tuple(coords.shape)}")


def _input_layer(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """tanh(U) channels-first: [W, B*P], column b*P + p (image-major, like the output's [B, P])."""
    inp = gen.input
    B, P, W = z.shape[0], coords.shape[0], gen.cfg.width
    zp = inp.z(z * inp.z_scale)  # [B, W]: per image, so its gradient sums over pixels
    cp = inp.xyr(coords)  # [P, W]: per pixel, shared by every image
    return torch.tanh(zp.t().reshape(W, B, 1) + cp.t().reshape(W, 1, P)).reshape(W, B * P)  # [W, B*P]


def _c_applies(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> bool:
    tensors = [z, coords, *gen.parameters()]
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def _forward_c(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor, lib) -> torch.Tensor:
    inp, cfg = gen.input, gen.cfg
    zp = inp.z(z * inp.z_scale).contiguous()  # [B, W]: per image, so its gradient sums over pixels
    cp = inp.xyr(coords).t().contiguous()  # [W, P]: per pixel, shared by every image
    return _FusedNetwork.apply(zp, cp, gen.kernel_parameters().contiguous(), lib, cfg.n_blocks, cfg.relu_layers)  # [B, P]


class _TritonNetwork(torch.autograd.Function):
    """_FusedNetwork's interface with the Triton kernels (pipeline.train.triton_train): zp [B, W], cp [W, P],
    packed params -> [B, P]; nothing but the inputs saved, no host syncs."""

    @staticmethod
    def forward(ctx, zp: torch.Tensor, cp: torch.Tensor, params: torch.Tensor, shape: tuple) -> torch.Tensor:
        ctx.save_for_backward(zp, cp, params)
        ctx.shape = shape  # (n_blocks, width, relu_layers)
        from pipeline.train import triton_train

        return triton_train.forward(zp, cp, params, *shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out: torch.Tensor):
        zp, cp, params = ctx.saved_tensors
        from pipeline.train import triton_train

        g_zp, g_cp, g_par = triton_train.backward(zp, cp, params, g_out.float().contiguous(), *ctx.shape)
        return g_zp, g_cp, g_par, None


def _triton_applies(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> bool:
    from pipeline.train import triton_train

    return triton_train.applies([z, coords, *gen.parameters()])


def _triton_compile_error(gen: nn.Module, z: torch.Tensor) -> str | None:
    from pipeline.train import triton_train

    cfg = gen.cfg
    return triton_train.compile_error(cfg.n_blocks, cfg.width, cfg.relu_layers, z.device)


def _triton_usable(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> bool:
    """For "auto": the triton kernels apply, compile and agree with autograd here; a compile failure or a
    disagreement warns once and means no."""
    if not _triton_applies(gen, z, coords):
        return False
    reason = _triton_compile_error(gen, z)
    if reason:
        message = f"the triton training kernels do not compile here, training runs plain autograd: {reason}"
    else:
        reason = _triton_disagreement(gen, z, coords)
        message = f"the triton training kernels disagree with autograd here, training runs plain autograd: {reason}"
    if reason and reason not in _warned:
        _warned.add(reason)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return reason is None


_warned: set = set()
_agreed: dict = {}
AGREEMENT = 1e-3  # largest difference from autograd, relative to each tensor's largest entry (float32 gives ~1e-5)


def _triton_disagreement(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> str | None:
    """None when the triton kernels' output and every parameter's gradient agree with plain autograd's on a
    small slice of this step (2 images, 67 pixels), else which differs and by how much. Checked once per
    network shape and device before "auto" trains with the kernels: they were verified under the
    interpreter, and a compiler can still get a real GPU's code wrong."""
    cfg = gen.cfg
    key = (cfg.n_blocks, cfg.width, cfg.relu_layers, str(z.device))
    if key not in _agreed:
        zz, cc = z[:2].detach(), coords[:67].detach()
        params = [p for p in gen.parameters() if p.requires_grad]
        g = torch.sin(torch.arange(zz.shape[0] * cc.shape[0], device=z.device, dtype=torch.float32) * 0.7)
        g = g.view(zz.shape[0], cc.shape[0])
        with torch.enable_grad():
            got = _forward_triton(gen, zz, cc)
            got_grads = torch.autograd.grad(got, params, g, allow_unused=True)
            want = _forward_torch(gen, zz, cc)
            want_grads = torch.autograd.grad(want, params, g, allow_unused=True)
        names = ["output"] + [n for n, p in gen.named_parameters() if p.requires_grad]
        _agreed[key] = None
        for name, a, b in zip(names, [got, *got_grads], [want, *want_grads]):
            a = torch.zeros_like(b) if a is None and b is not None else a
            if b is None:
                continue
            err = float((a.detach() - b.detach()).abs().max() / b.detach().abs().max().clamp_min(1e-12))
            if not err <= AGREEMENT:  # NaN counts as a disagreement
                _agreed[key] = f"{name} differs by {err:.3g} of its largest entry"
                break
    return _agreed[key]


def _forward_triton(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    inp, cfg = gen.input, gen.cfg
    zp = inp.z(z * inp.z_scale).contiguous()  # [B, W]
    cp = inp.xyr(coords).t().contiguous()  # [W, P]
    shape = (cfg.n_blocks, cfg.width, cfg.relu_layers)
    return _TritonNetwork.apply(zp, cp, gen.kernel_parameters().contiguous(), shape)  # [B, P]


def _forward_torch(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Channels-first with addmm under plain autograd: each product is [W, W] x [W, B*P]."""
    B, P = z.shape[0], coords.shape[0]
    groups = [[(layer.weight, layer.bias[:, None]) for layer in group] for group in gen.layer_groups()]
    out = resnet_channels_first(_input_layer(gen, z, coords), groups, (gen.out.weight, gen.out.bias[:, None]))
    return out.view(B, P)


class _TanhLinear(torch.autograd.Function):
    """tanh(h W^T + b) as 2 sigmoid(2 (h W^T + b)) - 1: h [N, in], W [out, in], b [out] -> [N, out]."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        t = torch.addmm(bias, h, weight.t(), beta=2.0, alpha=2.0)  # 2u
        t.sigmoid_().mul_(2.0).sub_(1.0)
        ctx.save_for_backward(h, weight, t)
        return t

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_t: torch.Tensor):
        h, weight, t = ctx.saved_tensors
        g_u = torch.ops.aten.tanh_backward(g_t, t)  # g (1 - t^2)
        g_h = g_u @ weight if ctx.needs_input_grad[0] else None
        g_w = g_u.t() @ h if ctx.needs_input_grad[1] else None
        g_b = g_u.sum(0) if ctx.needs_input_grad[2] else None
        return g_h, g_w, g_b


def _forward_prev(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The prev generator as the model computes it, with its tanh layers as _TanhLinear."""
    B, P, W = z.shape[0], coords.shape[0], gen.cfg.width
    h = torch.nn.functional.softplus(gen.input(z, coords)).view(B * P, W)
    for layer in gen.hidden:
        h = _TanhLinear.apply(h, layer.weight, layer.bias)
    return torch.sigmoid(torch.nn.functional.linear(h, gen.out.weight, gen.out.bias)).view(B, P)


def generator_forward(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """`gen(z, coords)` for training: z [B, z_dim], coords [P, 3] -> [B, P] in [0, 1], with autograd to
    the generator's parameters and to z. prev runs _forward_prev on every backend but "autograd"."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    family = getattr(gen.cfg, "family", None)
    if backend == "auto" and z.device.type != "cpu":  # on a GPU: see the module docstring
        has_triton = family == "resnet" and importlib.util.find_spec("triton") is not None
        backend = "triton" if has_triton and _triton_usable(gen, z, coords) else "autograd"
    if backend == "autograd" or family not in ("resnet", "prev"):
        return gen(z, coords)
    _check(gen, z, coords)
    if family == "prev":
        return _forward_prev(gen, z, coords)
    if backend == "torch":
        return _forward_torch(gen, z, coords)
    if backend == "triton":
        if not _triton_applies(gen, z, coords):
            raise KernelUnavailable("the triton backend needs triton (pip install triton) and float32 CUDA "
                                    "tensors and parameters (on the CPU: TRITON_INTERPRET=1); pass another backend")
        reason = _triton_compile_error(gen, z)
        if reason:
            raise KernelUnavailable(f"the triton training kernels do not compile here ({reason}); pass another backend")
        return _forward_triton(gen, z, coords)
    if not _c_applies(gen, z, coords):
        if backend == "c":
            raise KernelUnavailable("the C backend needs float32 CPU tensors and parameters")
        return _forward_torch(gen, z, coords)
    try:
        lib = load_kernel(gen.cfg.width)
    except KernelUnavailable:
        if backend == "c":
            raise
        return _forward_torch(gen, z, coords)
    return _forward_c(gen, z, coords, lib)
