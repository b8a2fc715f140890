/* Vector math shared by the CPPN kernels (render and training): one float vector of V pixels per
 * channel, GCC/Clang vector extensions (compiled with -march=native), exp-based tanh and sigmoid
 * accurate to ~1e-7. V (pixels per vector) follows the target's vector width. */
#ifndef CPPN_VEC_H
#define CPPN_VEC_H
#include <stdint.h>
#include <string.h>

#ifndef V
#ifdef __AVX512F__
#define V 16 /* pixels per vector: one register per channel (8 and 32 measured slower here) */
#else
#define V 8
#endif
#endif

typedef float vf __attribute__((vector_size(4 * V)));
typedef int32_t vi __attribute__((vector_size(4 * V)));

static inline vf splat(float a) { return (vf){0} + a; }
/* a in every lane, exactly (a - 0 is a for every a, -0 included, so this folds to one broadcast; splat's 0 + a
 * turns -0 into +0, so GCC keeps an add: in an inner loop that add and a register broadcast cost FMA slots). */
static inline vf bcast(float a) { return a - (vf){0}; }
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

/* log(1 + t) for t in [0, 1] as 2 atanh(s), s = t / (2 + t) in [0, 1/3]: the odd series to s^11 leaves < 1e-7. */
static inline vf log1p_unit(vf t) {
    vf s = t / (2.0f + t), s2 = s * s;
    vf p = splat(2.0f / 11.0f);
    p = p * s2 + 2.0f / 9.0f;
    p = p * s2 + 2.0f / 7.0f;
    p = p * s2 + 2.0f / 5.0f;
    p = p * s2 + 2.0f / 3.0f;
    p = p * s2 + 2.0f;
    return p * s;
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), accurate to ~2e-7 absolute. */
static inline vf softplus_approx(vf x) {
    const vi sign = (vi){0} + (int32_t)0x80000000;
    vf a = (vf)((vi)x & ~sign);
    vf t = expm1_approx(-a) + 1.0f; /* e^-|x| in (0, 1] */
    return (vf)((vi)x & (x > 0.0f)) + log1p_unit(t);
}

/* tanh as Eigen's float rational (odd degree 13 over even degree 6, x clamped to +-7.905): absolute error 2.7e-7
 * (tanh_approx: 1.5e-7), no exp; both render kernels use it: prev's spends 1510 ns a pixel with it against 1650
 * (Zen 2), resnet's 141 against 173 (Zen 4, AVX-512; benchmarks/resnet_kernel_blocking.py). tanh_approx stays in
 * the training kernel. */
static inline vf tanh_rational(vf x) {
    x = vselect(x > splat(7.90531110763549805f), splat(7.90531110763549805f), x);
    x = vselect(x < splat(-7.90531110763549805f), splat(-7.90531110763549805f), x);
    vf x2 = x * x;
    vf p = splat(-2.76076847742355e-16f);
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    vf q = splat(1.19825839466702e-06f);
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

#endif
