/* Fused CPU kernel for the article's part-one CPPN ("prev": softplus input layer, LAYERS tanh layers of WIDTH,
 * sigmoid output): the whole network for a block of BLOCK pixels at a time, its activations in L1.
 *
 * Compiled at run time by pipeline/render/cpu_fused.py with -DWIDTH=<w> (a multiple of ROWS: the packing pads
 * the width with zero channels, which add exactly nothing) and loaded with ctypes (which releases the GIL, so
 * Python threads split the pixels, as for the resnet kernel).
 *
 * Each hidden layer is a register-blocked matrix product: ROWS output channels x VECS pixel vectors of
 * accumulators, summed over the inputs in order k = 0..WIDTH-1, one broadcast weight times one pixel vector per
 * step. Every pixel goes through the same vector code (a partial block is padded), so a pixel's value does not
 * depend on how pixels are split into blocks, tiles or threads.
 *
 * Parameter layout (float32, packed by cpu_fused.pack_prev):
 *   for each hidden layer: W packed as [WIDTH / ROWS][WIDTH (input k)][ROWS], then b[WIDTH]
 *   then wo[WIDTH], bo
 */
#include "cppn_frame.h" /* coordinates, projection, quantisation (shared with cppn_kernel.c) */

#ifndef WIDTH
#define WIDTH 128
#endif
#ifndef ROWS
#define ROWS 8 /* output channels per register block (cpu_fused.PREV_ROWS) */
#endif
#ifndef VECS
#define VECS 1 /* pixel vectors per block (cpu_fused.PREV_VECS). ROWS x VECS, single-thread CPU time per pixel on Zen 2
                  * (AVX2), with tanh_approx: 8x1 1660 ns (1510 with tanh_rational), 4x3 1940, 4x2 2250, 6x2 2330 (width padded to 132), 16x1 2560, 8x2 2920;
                  * 8x1's matrix products alone take 1330 ns, ~95% of two 8-wide FMAs a cycle at 2.45 GHz */
#endif
#define BLOCK (VECS * V) /* pixels per block */

#if WIDTH % ROWS
#error "WIDTH must be a multiple of ROWS"
#endif

/* in -> tanh(W in + b) for one layer (w, b in pack_prev's layout). */
static void tanh_layer(vf in[WIDTH][VECS], vf out[WIDTH][VECS], const float *w, const float *b) {
    for (int rb = 0; rb < WIDTH / ROWS; rb++) {
        const float *wr = w + (long)rb * WIDTH * ROWS;
        vf acc[ROWS][VECS];
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 8
            for (int v = 0; v < VECS; v++) acc[r][v] = splat(b[rb * ROWS + r]);
#pragma GCC unroll 2
        for (int k = 0; k < WIDTH; k++) {
            vf x[VECS];
#pragma GCC unroll 8
            for (int v = 0; v < VECS; v++) x[v] = in[k][v];
#pragma GCC unroll 8
            for (int r = 0; r < ROWS; r++) {
                vf wk = bcast(wr[k * ROWS + r]);
#pragma GCC unroll 8
                for (int v = 0; v < VECS; v++) acc[r][v] += wk * x[v];
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 8
            for (int v = 0; v < VECS; v++) out[rb * ROWS + r][v] = tanh_rational(acc[r][v]);
    }
}

/* One frame's pixels [p, p + BLOCK) (n of them real): x, y, r per vector from the static grid (grid != NULL) or
 * the camera's affine a, then the network, then the first n values stored at out offset `at`. */
static inline void render_block(const float *grid, const double *a, const double *wxyr, long width_px, long P,
                                long p, int n, const float *zb, const float *params, int n_layers, long at,
                                float *out_f32, uint8_t *out_u8, int invert) {
    static __thread vf h[2][WIDTH][VECS] __attribute__((aligned(64)));
    vd x[VECS], y[VECS], r[VECS];
    for (int v = 0; v < VECS; v++) {
        long q = p + (long)v * V;
        int m = n - v * V;
        m = m < 0 ? 0 : (m > V ? V : m);
        if (grid)
            grid_xyr(grid, P, q, m, &x[v], &y[v], &r[v]);
        else
            camera_xyr(a, width_px, q, &x[v], &y[v], &r[v]);
    }
    for (int c = 0; c < WIDTH; c++)
#pragma GCC unroll 8
        for (int v = 0; v < VECS; v++) h[0][c][v] = softplus_approx(project_xyr(wxyr + 3 * c, x[v], y[v], r[v]) + zb[c]);
    const float *w = params;
    int cur = 0;
    for (int l = 0; l < n_layers; l++) {
        tanh_layer(h[cur], h[cur ^ 1], w, w + WIDTH * WIDTH);
        w += WIDTH * WIDTH + WIDTH;
        cur ^= 1;
    }
    for (int v = 0; v < VECS; v++) {
        vf o = splat(w[WIDTH]);
        for (int k = 0; k < WIDTH; k++) o += w[k] * h[cur][k][v];
        int m = n - v * V;
        if (m > 0) store_chunk(sigmoid_approx(o), at + (long)v * V, m > V ? V : m, out_f32, out_u8, invert);
    }
}

static void render_range(const float *grid, const double *cam, const double *wxyr, long width_px, long P, long p0,
                         long p1, const float *zbias, int n_frames, const float *params, int n_layers, float *out_f32,
                         uint8_t *out_u8, int invert) {
    for (int f = 0; f < n_frames; f++) {
        const float *zb = zbias + (long)f * WIDTH;
        const double *a = cam ? cam + (long)f * 6 : 0;
        for (long p = p0; p < p1; p += BLOCK) {
            int n = (p1 - p) < BLOCK ? (int)(p1 - p) : BLOCK;
            render_block(grid, a, wxyr, width_px, P, p, n, zb, params, n_layers, (long)f * P + p, out_f32, out_u8,
                         invert);
        }
    }
}

/* The static camera: grid [3][P] float32 (coords.grid_t). Frames f < n_frames, pixels p0 <= p < p1: values into
 * out_f32[f * P + p] when it is not NULL, else round(255 * value) (255 minus that when invert != 0) into
 * out_u8[f * P + p]. wxyr [WIDTH][3] double; zbias [n_frames][WIDTH]. */
void cppn_prev_static(const float *grid, const double *wxyr, long P, long p0, long p1, const float *zbias,
                      int n_frames, const float *params, int n_layers, float *out_f32, uint8_t *out_u8, int invert) {
    render_range(grid, 0, wxyr, 0, P, p0, p1, zbias, n_frames, params, n_layers, out_f32, out_u8, invert);
}

/* A moving camera: frame f's affine map is cam[6 f ...] (coords.camera_affine), frames width_px wide. */
void cppn_prev_camera(const double *cam, const double *wxyr, long width_px, long P, long p0, long p1,
                      const float *zbias, int n_frames, const float *params, int n_layers, float *out_f32,
                      uint8_t *out_u8, int invert) {
    render_range(0, cam, wxyr, width_px, P, p0, p1, zbias, n_frames, params, n_layers, out_f32, out_u8, invert);
}

/* Pixels per block: tiles that are multiples of it leave no padded lanes but the frame's last. */
int cppn_prev_block(void) { return BLOCK; }
