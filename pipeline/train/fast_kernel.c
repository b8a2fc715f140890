/* Fused resnet CPPN for training: forward, and backward with recomputation per pixel tile.
 * Compiled with -DWIDTH=<w>. Pixel n of the batch is image n / P, position n % P (the [B, P] output's
 * order). Inputs: the input layer's z projection zp[b][c] (bias included) and coordinate projection
 * cp[c][p]; the kernel applies tanh(zp + cp) itself so no [W, B*P] tensor is ever written.
 * Parameters (float32, packed by fast_generator._pack): for each block, relu_layers x (W[c][k], b[c]),
 * then the tanh layer (W, b); then the output layer (w[k], b). */
#include <stdlib.h>

#include "cppn_vec.h"

#define W WIDTH
#define M TILE_VECS /* vectors per backward tile: the tile's activations stay in L2 */
#define LAYER (W * W + W)

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
