/* Fused CPU kernel for the article's resnet CPPN: the whole network per pixel, in registers.
 *
 * Compiled at run time by pipeline/render/cpu_fused.py with -DWIDTH=<w> -O3 -march=native and loaded
 * with ctypes (which releases the GIL, so Python threads split the pixels).
 *
 * Every pixel goes through the same vector code (a partial chunk is padded, not handled by a scalar
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

/* h: WIDTH vectors of input-layer pre-activations (V pixels each); returns the sigmoid outputs. */
static inline vf eval_chunk(vf h[WIDTH], const float *params, int n_blocks, int relu_layers) {
#pragma GCC unroll 16
    for (int c = 0; c < WIDTH; c++) h[c] = tanh_approx(h[c]);
    const float *p = params;
    for (int blk = 0; blk < n_blocks; blk++) {
        vf x[WIDTH], y[WIDTH];
#pragma GCC unroll 16
        for (int c = 0; c < WIDTH; c++) x[c] = h[c];
        for (int l = 0; l <= relu_layers; l++) {
            const float *w = p, *b = p + WIDTH * WIDTH;
#pragma GCC unroll 16
            for (int c = 0; c < WIDTH; c++) {
                vf acc = splat(b[c]);
#pragma GCC unroll 16
                for (int k = 0; k < WIDTH; k++) acc += w[c * WIDTH + k] * x[k];
                y[c] = acc;
            }
            if (l < relu_layers) {
#pragma GCC unroll 16
                for (int c = 0; c < WIDTH; c++) x[c] = (vf)((vi)y[c] & (y[c] > 0.0f));
            } else {
#pragma GCC unroll 16
                for (int c = 0; c < WIDTH; c++) h[c] += tanh_approx(y[c]);
            }
            p += WIDTH * WIDTH + WIDTH;
        }
    }
    vf o = splat(p[WIDTH]);
#pragma GCC unroll 16
    for (int k = 0; k < WIDTH; k++) o += p[k] * h[k];
    return sigmoid_approx(o);
}

/* Load pixels [p, p+n) of channel-first coordinate projections cp [WIDTH][P] plus the frame's z bias;
 * lanes past n are zero-padded. */
static inline void load_chunk(vf h[WIDTH], const float *cp, long P, long p, int n, const float *zb) {
#pragma GCC unroll 16
    for (int c = 0; c < WIDTH; c++) {
        vf v;
        if (n == V) {
            memcpy(&v, cp + c * P + p, sizeof v);
        } else {
            float tmp[V] = {0};
            memcpy(tmp, cp + c * P + p, sizeof(float) * n);
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
        for (long p = p0; p < p1; p += V) {
            int n = (p1 - p) < V ? (int)(p1 - p) : V;
            vf h[WIDTH];
            load_chunk(h, cp, P, p, n, zb);
            vf o = eval_chunk(h, params, n_blocks, relu_layers);
            store_chunk(o, (long)f * P + p, n, out_f32, out_u8, invert);
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
        for (long p = p0; p < p1; p += V) {
            int n = (p1 - p) < V ? (int)(p1 - p) : V;
            vf h[WIDTH];
            load_chunk_camera(h, a, wxyr, width_px, p, zb);
            vf o = eval_chunk(h, params, n_blocks, relu_layers);
            store_chunk(o, (long)f * P + p, n, out_f32, out_u8, invert);
        }
    }
}
