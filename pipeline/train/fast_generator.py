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
  "auto"      "c" where it applies and compiles, else "torch".
The `prev` generator (width 128) is a few large matrix products that BLAS already runs well (a chunked
recompute was tried and was slower): every backend runs it with plain autograd.
"""
from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn as nn

from pipeline.native import KernelUnavailable, compile_and_load

BACKENDS = ("auto", "c", "torch", "autograd")

# Pixels per kernel call: small enough to balance two threads at batch 100 (67,600 pixels). A fixed
# size (not one range per thread) makes the kernel's gradient sums independent of the thread count.
_CHUNK = 8192

_C_SOURCE = r"""
/* Fused resnet CPPN for training: forward, and backward with recomputation per pixel tile.
 * Compiled with -DWIDTH=<w>. Pixel n of the batch is image n / P, position n % P (the [B, P] output's
 * order). Inputs: the input layer's z projection zp[b][c] (bias included) and coordinate projection
 * cp[c][p]; the kernel applies tanh(zp + cp) itself so no [W, B*P] tensor is ever written.
 * Parameters (float32, packed by fast_generator._pack): for each block, relu_layers x (W[c][k], b[c]),
 * then the tanh layer (W, b); then the output layer (w[k], b). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __AVX512F__
#define V 16 /* pixels per vector */
#else
#define V 8
#endif
#define W WIDTH
#define M TILE_VECS /* vectors per backward tile: the tile's activations stay in L2 */
#define LAYER (W * W + W)

typedef float vf __attribute__((vector_size(4 * V)));
typedef int32_t vi __attribute__((vector_size(4 * V)));

static inline vf splat(float a) { return (vf){0} + a; }
static inline vf vselect(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

/* 2^n q(f) + (2^n - 1) = e^y - 1 with |f| <= ln2/2 and q = e^f - 1 a degree-7 polynomial without a
 * constant term: small |y| keeps full relative precision (1 - e^y would cancel, and tanh's gradient
 * error grew to 1e-4 with it). */
static inline vf expm1_approx(vf y) {
    y = vselect(y < splat(-87.0f), splat(-87.0f), y);
    y = vselect(y > splat(88.0f), splat(88.0f), y);
    const vf magic = splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    vf n = (y * 1.44269504088896341f + magic) - magic;
    vf f = y - n * 0.693145751953125f; /* ln2 in two parts for an exact reduction */
    f = f - n * 1.42860682030941723212e-6f;
    vf p = splat(1.0f / 5040.0f);
    p = p * f + 1.0f / 720.0f;
    p = p * f + 1.0f / 120.0f;
    p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    vf s = (vf)((__builtin_convertvector(n, vi) + 127) << 23);
    return (p * f) * s + (s - 1.0f);
}

static inline vf tanh_approx(vf x) {
    const vi sign = (vi){0} + (int32_t)0x80000000;
    vf a = (vf)((vi)x & ~sign);
    vf e = expm1_approx(-2.0f * a); /* in (-1, 0] */
    vf t = -e / (2.0f + e);
    return (vf)((vi)t | ((vi)x & sign));
}

static inline vf sigmoid_approx(vf x) { return 1.0f / (2.0f + expm1_approx(-x)); }

static inline vf load_part(const float *src, long n, long avail) {
    vf v;
    if (avail >= V) {
        memcpy(&v, src + n, sizeof v);
        return v;
    }
    float tmp[V] = {0}; /* lanes past the end are zero: their output gradient is zero too */
    if (avail > 0) memcpy(tmp, src + n, sizeof(float) * avail);
    memcpy(&v, tmp, sizeof v);
    return v;
}

static inline void store_part(float *dst, long n, long avail, vf v) {
    if (avail >= V) {
        memcpy(dst + n, &v, sizeof v);
    } else if (avail > 0) {
        float tmp[V];
        memcpy(tmp, &v, sizeof v);
        memcpy(dst + n, tmp, sizeof(float) * avail);
    }
}

/* One vector of pixels through every block and the output layer; h ends as the last hidden state.
 * With act != NULL, keeps each layer's input and each block's tanh output for vector m of a tile:
 * act[((blk * (R + 2) + slot) * W + c) * M + m], slot 0 the block input, 1..R the ReLU outputs,
 * R + 1 the tanh output. */
static inline vf run_blocks(vf h[W], const float *params, int n_blocks, int R, vf *act, int m) {
    const float *p = params;
    for (int blk = 0; blk < n_blocks; blk++) {
        vf *a = act ? act + (long)blk * (R + 2) * W * M : 0;
        vf x[W], y[W];
#pragma GCC unroll 16
        for (int c = 0; c < W; c++) {
            x[c] = h[c];
            if (a) a[c * M + m] = h[c];
        }
        for (int l = 0; l <= R; l++) {
            const float *w = p, *b = p + W * W;
#pragma GCC unroll 16
            for (int c = 0; c < W; c++) {
                vf acc = splat(b[c]);
#pragma GCC unroll 16
                for (int k = 0; k < W; k++) acc += w[c * W + k] * x[k];
                y[c] = acc;
            }
            if (l < R) {
#pragma GCC unroll 16
                for (int c = 0; c < W; c++) {
                    x[c] = (vf)((vi)y[c] & (y[c] > 0.0f));
                    if (a) a[((l + 1) * W + c) * M + m] = x[c];
                }
            } else {
#pragma GCC unroll 16
                for (int c = 0; c < W; c++) {
                    vf t = tanh_approx(y[c]);
                    if (a) a[((R + 1) * W + c) * M + m] = t;
                    h[c] += t;
                }
            }
            p += LAYER;
        }
    }
    vf o = splat(p[W]);
#pragma GCC unroll 16
    for (int k = 0; k < W; k++) o += p[k] * h[k];
    return sigmoid_approx(o);
}

/* Input layer for one vector of pixels n .. n+V-1 (pixel n is image n / P, position n % P):
 * u[c] = zp[b][c] + cp[c][p], h = tanh(u). Lanes past n1 get u = 0. */
static inline void input_layer(vf h[W], const float *zp, const float *cp, long P, long n, long n1) {
    float u[W][V];
    long b = n / P, p = n % P;
    for (int v = 0; v < V; v++) {
#pragma GCC unroll 16
        for (int c = 0; c < W; c++) u[c][v] = n + v < n1 ? zp[b * W + c] + cp[c * P + p] : 0.0f;
        if (++p == P) p = 0, b++;
    }
#pragma GCC unroll 16
    for (int c = 0; c < W; c++) {
        vf x;
        memcpy(&x, u[c], sizeof x);
        h[c] = tanh_approx(x);
    }
}

/* out[n] for pixels n0 <= n < n1 of the [B, P] output. */
void fg_forward(const float *zp, const float *cp, long P, long n0, long n1, const float *params, int n_blocks,
                int R, float *out) {
    for (long n = n0; n < n1; n += V) {
        vf h[W];
        input_layer(h, zp, cp, P, n, n1);
        store_part(out, n, n1 - n, run_blocks(h, params, n_blocks, R, 0, 0));
    }
}

/* acc += (g x^T, sum g) over the tile's M vectors (lane-wise; lanes are summed at the end). */
static inline void weight_grads(const vf *g, const vf *x, vf *acc) {
#pragma GCC unroll 16
    for (int c = 0; c < W; c++) {
        vf a[W], ab = splat(0.0f);
#pragma GCC unroll 16
        for (int k = 0; k < W; k++) a[k] = splat(0.0f);
#pragma GCC unroll 32
        for (int m = 0; m < M; m++) {
            vf gc = g[c * M + m];
            ab += gc;
#pragma GCC unroll 16
            for (int k = 0; k < W; k++) a[k] += gc * x[k * M + m];
        }
#pragma GCC unroll 16
        for (int k = 0; k < W; k++) acc[c * W + k] += a[k];
        acc[W * W + c] += ab;
    }
}

/* Given g_out = dL/d out for pixels [n0, n1): adds dL/d zp and dL/d cp over those pixels to g_zp [B][W]
 * and g_cp [W][P] (double: sums over hundreds of pixels or images), and writes dL/d params summed over
 * them to g_params (n_params floats). Returns 0, or -1 when out of memory. */
int fg_backward(const float *zp, const float *cp, long P, long n0, long n1, const float *params, int n_blocks,
                int R, const float *g_out, double *g_zp, double *g_cp, float *g_params) {
    const long n_params = (long)n_blocks * (R + 1) * LAYER + W + 1;
    vf *act = aligned_alloc(64, sizeof(vf) * (size_t)n_blocks * (R + 2) * W * M);
    vf *gys = aligned_alloc(64, sizeof(vf) * (size_t)(R + 1) * W * M);
    vf *gacc = aligned_alloc(64, sizeof(vf) * (size_t)n_params);
    if (!act || !gys || !gacc) {
        free(act);
        free(gys);
        free(gacc);
        return -1;
    }
    memset(gacc, 0, sizeof(vf) * (size_t)n_params);
    const float *po = params + (long)n_blocks * (R + 1) * LAYER;
    vf *acc_out = gacc + (long)n_blocks * (R + 1) * LAYER;
    for (long t0 = n0; t0 < n1; t0 += (long)M * V) {
        vf gh[W][M]; /* dL/d hidden state, per vector of the tile */
        for (int m = 0; m < M; m++) {
            long n = t0 + (long)m * V;
            vf h[W];
            input_layer(h, zp, cp, P, n, n1);
            vf s = run_blocks(h, params, n_blocks, R, act, m);
            vf go = load_part(g_out, n, n1 - n) * s * (1.0f - s);
#pragma GCC unroll 16
            for (int c = 0; c < W; c++) {
                gh[c][m] = po[c] * go;
                acc_out[c] += go * h[c];
            }
            acc_out[W] += go;
        }
        for (int blk = n_blocks - 1; blk >= 0; blk--) {
            const float *pb = params + (long)blk * (R + 1) * LAYER;
            const vf *a = act + (long)blk * (R + 2) * W * M;
            /* the chain through the block's branch, one vector at a time in registers; keeps each
             * layer's pre-activation gradient for the weight gradients below */
            for (int m = 0; m < M; m++) {
                vf g[W], gx[W];
#pragma GCC unroll 16
                for (int c = 0; c < W; c++) {
                    vf t = a[((R + 1) * W + c) * M + m];
                    g[c] = gh[c][m] * (1.0f - t * t);
                }
                for (int l = R; l >= 0; l--) {
                    const float *w = pb + l * LAYER;
#pragma GCC unroll 16
                    for (int c = 0; c < W; c++) gys[(l * W + c) * M + m] = g[c];
#pragma GCC unroll 16
                    for (int k = 0; k < W; k++) {
                        vf s = splat(0.0f);
#pragma GCC unroll 16
                        for (int c = 0; c < W; c++) s += w[c * W + k] * g[c];
                        gx[k] = s;
                    }
                    if (l > 0) {
#pragma GCC unroll 16
                        for (int k = 0; k < W; k++) g[k] = (vf)((vi)gx[k] & (a[(l * W + k) * M + m] > 0.0f));
                    }
                }
#pragma GCC unroll 16
                for (int c = 0; c < W; c++) gh[c][m] += gx[c]; /* residual: h_out = h_in + branch */
            }
            vf *acc = gacc + (long)blk * (R + 1) * LAYER;
            for (int l = 0; l <= R; l++) weight_grads(gys + l * W * M, a + l * W * M, acc + l * LAYER);
        }
        /* through the input tanh (act slot 0 of block 0 is its output), then scattered to the image's
         * z projection and the pixel's coordinate projection */
        for (int m = 0; m < M; m++) {
            long n = t0 + (long)m * V;
            float gu[W][V];
#pragma GCC unroll 16
            for (int c = 0; c < W; c++) {
                vf t = act[c * M + m];
                vf g = gh[c][m] * (1.0f - t * t);
                memcpy(gu[c], &g, sizeof g);
            }
            long b = n / P, p = n % P;
            for (int v = 0; v < V && n + v < n1; v++) {
#pragma GCC unroll 16
                for (int c = 0; c < W; c++) {
                    g_zp[b * W + c] += gu[c][v];
                    g_cp[c * P + p] += gu[c][v];
                }
                if (++p == P) p = 0, b++;
            }
        }
    }
    for (long i = 0; i < n_params; i++) {
        float lanes[V];
        double s = 0.0;
        memcpy(lanes, &gacc[i], sizeof lanes);
        for (int v = 0; v < V; v++) s += lanes[v];
        g_params[i] = (float)s;
    }
    free(act);
    free(gys);
    free(gacc);
    return 0;
}
"""

_TILE_VECS = 8
_lock = threading.Lock()  # guards the worker pool
_pool: ThreadPoolExecutor | None = None
_pool_threads = 0


def load_kernel(width: int) -> ctypes.CDLL:
    """The training kernel for a width (compiled once, cached on disk; see pipeline.native)."""
    lib = compile_and_load(f"train_w{width}", _C_SOURCE, {"WIDTH": width, "TILE_VECS": _TILE_VECS})
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


def _layers(gen: nn.Module) -> list:
    return [layer for block in gen.blocks for layer in (*block.relu, block.tanh)]


def _pack(gen: nn.Module) -> torch.Tensor:
    """Block and output parameters in the kernel's order, through torch.cat so gradients reach each one."""
    parts = [t.reshape(-1) for layer in _layers(gen) for t in (layer.weight, layer.bias)]
    parts += [gen.out.weight.reshape(-1), gen.out.bias.reshape(-1)]
    return torch.cat(parts)


def _c_applies(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> bool:
    tensors = [z, coords, *gen.parameters()]
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def _forward_c(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor, lib) -> torch.Tensor:
    inp, cfg = gen.input, gen.cfg
    zp = inp.z(z * inp.z_scale).contiguous()  # [B, W]: per image, so its gradient sums over pixels
    cp = inp.xyr(coords).t().contiguous()  # [W, P]: per pixel, shared by every image
    return _FusedNetwork.apply(zp, cp, _pack(gen).contiguous(), lib, cfg.n_blocks, cfg.relu_layers)  # [B, P]


def _forward_torch(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Channels-first with addmm under plain autograd: each product is [W, W] x [W, B*P]."""
    B, P = z.shape[0], coords.shape[0]
    h = _input_layer(gen, z, coords)  # [W, B*P]
    for block in gen.blocks:
        x = h
        for layer in block.relu:
            x = torch.relu(torch.addmm(layer.bias[:, None], layer.weight, x))  # [W, B*P]
        h = h + torch.tanh(torch.addmm(block.tanh.bias[:, None], block.tanh.weight, x))  # [W, B*P]
    return torch.sigmoid(torch.addmm(gen.out.bias[:, None], gen.out.weight, h)).view(B, P)


def generator_forward(gen: nn.Module, z: torch.Tensor, coords: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """`gen(z, coords)` for training: z [B, z_dim], coords [P, 3] -> [B, P] in [0, 1], with autograd to
    the generator's parameters and to z. Non-resnet generators always run `gen(z, coords)`."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if getattr(gen.cfg, "family", None) != "resnet" or backend == "autograd":
        return gen(z, coords)
    _check(gen, z, coords)
    if backend == "torch":
        return _forward_torch(gen, z, coords)
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
