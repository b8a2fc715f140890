/* Where a frame's pixels lie and how their values become bytes: the coordinate, projection and quantisation
 * code every render kernel shares (pipeline/render/cppn_kernel.c, prev_kernel.c).
 *
 * A pixel's x, y and r are double (a moving camera's come from its per-frame affine map, a static frame's are
 * the float32 grid coords.grid_t makes); the first layer's projection W_xyr (x, y, r) is summed in double and
 * rounded once to float, as coords.coord_projection does. */
#ifndef CPPN_FRAME_H
#define CPPN_FRAME_H
#include "cppn_vec.h"

typedef double vd __attribute__((vector_size(8 * V)));

/* x, y, r of V pixels from p (row-major, width_px a row) under one frame's affine a[6] (coords.camera_affine):
 * x = a0 + a1 col + a2 row, y = a3 + a4 col + a5 row. Lanes past the frame hold the next pixels' coordinates. */
static inline void camera_xyr(const double *a, long width_px, long p, vd *x, vd *y, vd *r) {
    double cold[V], rowd[V], rr[V];
    long row = p / width_px, col = p - row * width_px;
    for (int v = 0; v < V; v++) {
        cold[v] = (double)col;
        rowd[v] = (double)row;
        if (++col == width_px) {
            col = 0;
            row++;
        }
    }
    vd cv, rv;
    memcpy(&cv, cold, sizeof cv);
    memcpy(&rv, rowd, sizeof rv);
    *x = a[0] + a[1] * cv + a[2] * rv;
    *y = a[3] + a[4] * cv + a[5] * rv;
    vd r2 = *x * *x + *y * *y;
    memcpy(rr, &r2, sizeof rr);
    for (int v = 0; v < V; v++) rr[v] = __builtin_sqrt(rr[v]);
    memcpy(r, rr, sizeof rr);
}

/* x, y, r of pixels [p, p + n) of a static frame's float32 grid [3][P] (coords.grid_t); lanes past n are 0. */
static inline void grid_xyr(const float *grid, long P, long p, int n, vd *x, vd *y, vd *r) {
    vd *dst[3] = {x, y, r};
    for (int k = 0; k < 3; k++) {
        float tmp[V] = {0};
        memcpy(tmp, grid + k * P + p, sizeof(float) * n);
        vf f;
        memcpy(&f, tmp, sizeof f);
        *dst[k] = __builtin_convertvector(f, vd);
    }
}

/* One channel's coordinate projection w[0] x + w[1] y + w[2] r, summed in double, rounded once to float. */
static inline vf project_xyr(const double *w, vd x, vd y, vd r) {
    vd u = w[0] * x + w[1] * y + w[2] * r;
    return __builtin_convertvector(u, vf);
}

/* The first n lanes of o into out_f32[at...] when it is not NULL, else round(255 * value) (255 minus that when
 * invert != 0) into out_u8[at...]: quantize.to_uint8's rule. */
static inline void store_chunk(vf o, long at, int n, float *out_f32, uint8_t *out_u8, int invert) {
    float tmp[V];
    memcpy(tmp, &o, sizeof tmp);
    if (out_f32) {
        memcpy(out_f32 + at, tmp, sizeof(float) * n);
        return;
    }
    for (int v = 0; v < n; v++) {
        int q = (int)(tmp[v] * 255.0f + 0.5f);
        q = q < 0 ? 0 : (q > 255 ? 255 : q);
        out_u8[at + v] = (uint8_t)(invert ? 255 - q : q);
    }
}

#endif
