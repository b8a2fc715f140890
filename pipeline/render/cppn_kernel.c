/* Fused CPU kernel for the article's resnet CPPN: the whole network per pixel, in registers.
 *
 * Compiled at run time by pipeline/render/cpu_fused.py with -DWIDTH=<w> -O3 -march=native and loaded
 * with ctypes (which releases the GIL, so Python threads split the pixels).
 *
 * Every pixel goes through the same vector code (a partial group is padded, not handled by a scalar
 * loop), so a pixel's value does not depend on how pixels are split into tiles or threads.
 *
 * Parameter layout (float32, packed by cpu_fused.pack_resnet):
 *   for each block: RELU_LAYERS x (W[WIDTH][WIDTH] row = output channel, b[WIDTH]), then Wt, bt
 *   then wo[WIDTH], bo
 */
#include "cppn_frame.h" /* coordinates, projection, quantisation (shared with prev_kernel.c) */

#ifndef WIDTH
#define WIDTH 6
#endif

/* Pixel vectors evaluated together. A width-6 layer is 6 chains of 6 dependent FMAs: with one vector the FMA units
 * wait on their latency, and a second independent vector fills the gaps where registers allow. Single-thread time
 * a pixel at width 6 (python benchmarks/resnet_kernel_blocking.py, Zen 4, docs/PERFORMANCE.md): the AVX2 build
 * 253 ns with 1 vector and tanh_approx, 197 with 1 and tanh_rational, 173 with 2 and tanh_rational (widths 4 and
 * 8 gain alike); AVX-512 (16 lanes fill its 32 registers) 141 ns with 1, 147 with 2; SSE2 (16 registers of 4
 * lanes) 1627 ns with 1, 4733 with 2. Each vector runs the same instructions, so a pixel's value does not depend
 * on which vector of a group it falls in. */
#ifndef CHUNKS
#if defined(__AVX2__) && !defined(__AVX512F__)
#define CHUNKS 2
#else
#define CHUNKS 1
#endif
#endif
#define GROUP (CHUNKS * V) /* pixels per group (cpu_fused aligns tiles to it: cppn_resnet_block) */

int cppn_resnet_block(void) { return GROUP; }

/* h: CHUNKS x WIDTH vectors of input-layer pre-activations (V pixels each); o: their sigmoid outputs. tanh is
 * tanh_rational (abs error 2.7e-7, no exp): 1.1-1.3x faster a pixel than tanh_approx at the same blocking. */
static inline void eval_group(vf h[CHUNKS][WIDTH], vf o[CHUNKS], const float *params, int n_blocks,
                              int relu_layers) {
#pragma GCC unroll 16
    for (int c = 0; c < WIDTH; c++)
#pragma GCC unroll 4
        for (int j = 0; j < CHUNKS; j++) h[j][c] = tanh_rational(h[j][c]);
    const float *p = params;
    for (int blk = 0; blk < n_blocks; blk++) {
        vf x[CHUNKS][WIDTH], y[CHUNKS][WIDTH];
#pragma GCC unroll 16
        for (int c = 0; c < WIDTH; c++)
#pragma GCC unroll 4
            for (int j = 0; j < CHUNKS; j++) x[j][c] = h[j][c];
        for (int l = 0; l <= relu_layers; l++) {
            const float *w = p, *b = p + WIDTH * WIDTH;
#pragma GCC unroll 16
            for (int c = 0; c < WIDTH; c++) {
                vf acc[CHUNKS];
#pragma GCC unroll 4
                for (int j = 0; j < CHUNKS; j++) acc[j] = splat(b[c]);
#pragma GCC unroll 16
                for (int k = 0; k < WIDTH; k++)
#pragma GCC unroll 4
                    for (int j = 0; j < CHUNKS; j++) acc[j] += w[c * WIDTH + k] * x[j][k];
#pragma GCC unroll 4
                for (int j = 0; j < CHUNKS; j++) y[j][c] = acc[j];
            }
            if (l < relu_layers) {
#pragma GCC unroll 16
                for (int c = 0; c < WIDTH; c++)
#pragma GCC unroll 4
                    for (int j = 0; j < CHUNKS; j++) x[j][c] = (vf)((vi)y[j][c] & (y[j][c] > 0.0f));
            } else {
#pragma GCC unroll 16
                for (int c = 0; c < WIDTH; c++)
#pragma GCC unroll 4
                    for (int j = 0; j < CHUNKS; j++) h[j][c] += tanh_rational(y[j][c]);
            }
            p += WIDTH * WIDTH + WIDTH;
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < CHUNKS; j++) {
        vf out = splat(p[WIDTH]);
#pragma GCC unroll 16
        for (int k = 0; k < WIDTH; k++) out += p[k] * h[j][k];
        o[j] = sigmoid_approx(out);
    }
}

/* Pixels in vector j of the group at p, for a range ending at p1: V, fewer at the end, 0 past it. */
static inline int lanes(long p, int j, long p1) {
    long left = p1 - (p + (long)j * V);
    return left <= 0 ? 0 : (left < V ? (int)left : V);
}

/* Load pixels [p, p+n) of channel-first coordinate projections cp [WIDTH][P] plus the frame's z bias;
 * lanes past n (all of them when n is 0: a group's vector past the range) are zero-padded. */
static inline void load_chunk(vf h[WIDTH], const float *cp, long P, long p, int n, const float *zb) {
#pragma GCC unroll 16
    for (int c = 0; c < WIDTH; c++) {
        vf v;
        if (n == V) {
            memcpy(&v, cp + c * P + p, sizeof v);
        } else {
            float tmp[V] = {0};
            if (n > 0) memcpy(tmp, cp + c * P + p, sizeof(float) * n);
            memcpy(&v, tmp, sizeof v);
        }
        h[c] = v + zb[c];
    }
}

/* Frames f < n_frames, pixels p0 <= p < p1: values into out_f32[f * P + p] when it is not NULL, else
 * round(255 * value) (255 minus that when invert != 0) into out_u8[f * P + p]. */
static void render_range(const float *cp, long P, long p0, long p1, const float *zbias, int n_frames,
                         const float *params, int n_blocks, int relu_layers, float *out_f32, uint8_t *out_u8,
                         int invert) {
    for (int f = 0; f < n_frames; f++) {
        const float *zb = zbias + (long)f * WIDTH;
        for (long p = p0; p < p1; p += GROUP) {
            vf h[CHUNKS][WIDTH], o[CHUNKS];
            for (int j = 0; j < CHUNKS; j++) load_chunk(h[j], cp, P, p + (long)j * V, lanes(p, j, p1), zb);
            eval_group(h, o, params, n_blocks, relu_layers);
            for (int j = 0; j < CHUNKS; j++) store_chunk(o[j], (long)f * P + p + (long)j * V, lanes(p, j, p1),
                                                         out_f32, out_u8, invert);
        }
    }
}

void cppn_resnet_f32(const float *cp, long P, long p0, long p1, const float *zbias, int n_frames,
                     const float *params, int n_blocks, int relu_layers, float *out) {
    render_range(cp, P, p0, p1, zbias, n_frames, params, n_blocks, relu_layers, out, 0, 0);
}

void cppn_resnet_u8(const float *cp, long P, long p0, long p1, const float *zbias, int n_frames,
                    const float *params, int n_blocks, int relu_layers, int invert, uint8_t *out) {
    render_range(cp, P, p0, p1, zbias, n_frames, params, n_blocks, relu_layers, 0, out, invert);
}

/* A moving camera (pipeline.coords.camera_affine): pixel p of frame f, at column p % width_px and row
 * p / width_px, lies at x = a[0] + a[1] col + a[2] row, y = a[3] + a[4] col + a[5] row with a = cam + 6 f (double),
 * r = sqrt(x^2 + y^2); the first layer's projection by wxyr [WIDTH][3] (double) is summed in double and rounded
 * once to float, as the static path's precomputed projections are. No coordinate is stored: each chunk's are
 * made in registers. Lanes past n hold the next pixels' coordinates (computed, never stored). */
static inline void load_chunk_camera(vf h[WIDTH], const double *a, const double *wxyr, long width_px, long p,
                                     const float *zb) {
    vd x, y, r;
    camera_xyr(a, width_px, p, &x, &y, &r);
#pragma GCC unroll 16
    for (int c = 0; c < WIDTH; c++) h[c] = project_xyr(wxyr + 3 * c, x, y, r) + zb[c];
}

void cppn_resnet_camera(const double *cam, const double *wxyr, long width_px, long P, long p0, long p1,
                        const float *zbias, int n_frames, const float *params, int n_blocks, int relu_layers,
                        float *out_f32, uint8_t *out_u8, int invert) {
    for (int f = 0; f < n_frames; f++) {
        const float *zb = zbias + (long)f * WIDTH;
        const double *a = cam + (long)f * 6;
        for (long p = p0; p < p1; p += GROUP) {
            vf h[CHUNKS][WIDTH], o[CHUNKS];
            for (int j = 0; j < CHUNKS; j++) load_chunk_camera(h[j], a, wxyr, width_px, p + (long)j * V, zb);
            eval_group(h, o, params, n_blocks, relu_layers);
            for (int j = 0; j < CHUNKS; j++) store_chunk(o[j], (long)f * P + p + (long)j * V, lanes(p, j, p1),
                                                         out_f32, out_u8, invert);
        }
    }
}
