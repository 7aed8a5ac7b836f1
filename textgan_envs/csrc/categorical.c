/* Categorical sampling from rows of float32 logits in one pass over each row.
 *
 * Why: on CPU, PyTorch samples from [rows, V] logits with a softmax (three passes
 * that write a probability tensor), a block reduction and several small ops. Here
 * each row is read once into L1 cache for its maximum and once for its block
 * masses, nothing [rows, V] is written, and rows run in parallel on PyTorch's own
 * OpenMP threads. The result is the same two-level inverse-CDF draw as
 * textgan_envs.sampling.sample_categorical_inverse_cdf: one uniform per row picks
 * a block of classes by its mass, then a class inside it.
 *
 * textgan_sample_rows_bf16 does the same on bfloat16 logits (a bfloat16 matmul
 * writes half the bytes at twice the float32 rate) and makes the draw exact by
 * rejection: a candidate v is accepted with probability exp((l_v - eps) / T) /
 * exp(l_hat_v / T) <= 1, where l_v is its float32 logit, recomputed here from the
 * features, and eps bounds |l - l_hat| (textgan_envs/projection_sampling.py).
 *
 * Written with GCC/Clang vector extensions (16 float lanes), not intrinsics, so
 * the compiler maps it onto whatever SIMD the CPU has. Built and loaded by
 * textgan_envs/native_sampling.py.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16
typedef float vfloat __attribute__((vector_size(4 * LANES)));
typedef int32_t vint __attribute__((vector_size(4 * LANES)));
typedef uint16_t vbf16 __attribute__((vector_size(2 * LANES)));

static inline vfloat splat(float x) { return (vfloat){0} + x; }

static inline vfloat load(const float *p) {
    vfloat v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Lane-wise mask ? a : b (C has no vector ?:). */
static inline vfloat blend(vint mask, vfloat a, vfloat b) {
    vint ia, ib, r;
    vfloat out;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    r = (ia & mask) | (ib & ~mask);
    memcpy(&out, &r, sizeof out);
    return out;
}

/* 2^y for y <= 0: y = n + f with n integer and |f| <= 1/2, and 2^f from its degree-6
 * Taylor polynomial (relative error < 2.5e-7 with float rounding). Below -126.5 the
 * exponent field is 0, so the result is exactly 0: -inf logits get no mass. */
static inline vfloat exp2_nonpositive(vfloat y) {
    const vfloat lowest = splat(-127.0f);
    y = blend(y > lowest, y, lowest);
    vfloat t = y + 12582912.0f; /* 1.5 * 2^23: adding it rounds y to an integer */
    vfloat n = t - 12582912.0f;
    vfloat f = y - n;
    vfloat p = splat(1.540353039338161e-4f); /* ln(2)^k / k!, k = 6 .. 0 */
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.618129107628477e-3f;
    p = p * f + 5.550410866482158e-2f;
    p = p * f + 2.402265069591007e-1f;
    p = p * f + 6.931471805599453e-1f;
    p = p * f + 1.0f;
    vint bits, exponent;
    vfloat scale;
    memcpy(&bits, &t, sizeof bits);
    exponent = (bits - (0x4B400000 - 127)) << 23; /* n + 127 in the exponent field */
    memcpy(&scale, &exponent, sizeof scale);
    return p * scale;
}

static inline float sum_lanes(vfloat v) {
    float s = 0.0f;
    for (int j = 0; j < LANES; j++) s += v[j];
    return s;
}

/* A row of logits: float32 or bfloat16 values, plus an optional float32 bias. */
typedef struct {
    const void *values;
    int bf16;
    const float *bias;
    int64_t v;
} row_t;

/* Values of classes k .. k+15 as floats (bfloat16 widened), bias not included;
 * classes >= v read as -inf. The test for the last, partial vector is the only branch. */
static inline __attribute__((always_inline)) vfloat values_at(row_t row, int64_t k) {
    vfloat x;
    if (__builtin_expect(k + LANES <= row.v, 1)) {
        if (row.bf16) {
            vbf16 raw;
            vint wide;
            memcpy(&raw, (const uint16_t *)row.values + k, sizeof raw);
            wide = __builtin_convertvector(raw, vint) << 16; /* bfloat16 = top half of a float */
            memcpy(&x, &wide, sizeof x);
        } else {
            x = load((const float *)row.values + k);
        }
        return x;
    }
    x = splat(-INFINITY);
    for (int64_t j = 0; k + j < row.v; j++) {
        if (row.bf16) {
            uint32_t bits = (uint32_t)((const uint16_t *)row.values)[k + j] << 16;
            memcpy(&x[j], &bits, sizeof bits);
        } else {
            x[j] = ((const float *)row.values)[k + j];
        }
    }
    return x;
}

/* Bias of classes k .. k+15 (row.bias must not be NULL); 0 past the last class. */
static inline __attribute__((always_inline)) vfloat bias_at(row_t row, int64_t k) {
    if (__builtin_expect(k + LANES <= row.v, 1)) return load(row.bias + k);
    vfloat b = (vfloat){0};
    for (int64_t j = 0; k + j < row.v; j++) b[j] = row.bias[k + j];
    return b;
}

/* Logits of classes k .. k+15, bias included; classes >= v read as -inf. */
static inline __attribute__((always_inline)) vfloat logits_at(row_t row, int64_t k) {
    if (__builtin_expect(k + LANES <= row.v, 1)) {
        vfloat x = values_at(row, k);
        return row.bias ? x + load(row.bias + k) : x;
    }
    vfloat x = values_at(row, k);
    return row.bias ? x + bias_at(row, k) : x;
}

/* Folds classes k .. k+15 into the running maxima of row_max. */
static inline __attribute__((always_inline)) void update_max(row_t row, int64_t k, int want_abs,
                                                             vfloat *running_max,
                                                             vfloat *running_abs, vint *nan) {
    vfloat value = values_at(row, k);
    vfloat x = row.bias ? value + bias_at(row, k) : value;
    *nan |= x != x;
    *running_max = blend(x > *running_max, x, *running_max);
    if (want_abs) {
        vfloat a = blend(value < 0, -value, value);
        a = blend(a == INFINITY, (vfloat){0}, a); /* the -inf padding of the last vector */
        *running_abs = blend(a > *running_abs, a, *running_abs);
    }
}

/* The row's largest logit (bias included) in *max, and where abs_max is not NULL the
 * largest |value| without the bias (what bfloat16 rounding error scales with). Returns
 * 0 if the row has a NaN or no finite maximum, or if the maximum overflows when scaled
 * by `scale`. */
static inline __attribute__((always_inline)) int row_max(row_t row, float scale, float *max,
                                                         float *abs_max) {
    vfloat running_max = splat(-INFINITY), running_abs = (vfloat){0};
    vint nan = (vint){0};
    const int64_t full = row.v - row.v % LANES;
    for (int64_t k = 0; k < full; k += LANES)
        update_max(row, k, abs_max != NULL, &running_max, &running_abs, &nan);
    if (full < row.v) update_max(row, full, abs_max != NULL, &running_max, &running_abs, &nan);
    int any_nan = 0;
    *max = -INFINITY;
    for (int j = 0; j < LANES; j++) {
        *max = running_max[j] > *max ? running_max[j] : *max;
        any_nan |= nan[j];
    }
    if (abs_max) {
        *abs_max = 0.0f;
        for (int j = 0; j < LANES; j++)
            *abs_max = running_abs[j] > *abs_max ? running_abs[j] : *abs_max;
    }
    return !any_nan && *max > -INFINITY && *max * scale < INFINITY;
}

/* Unnormalised probabilities 2^((x - max) * scale) of classes k .. k+15. */
static inline __attribute__((always_inline)) vfloat weights_at(row_t row, int64_t k, float scale,
                                                               float shift) {
    return exp2_nonpositive(logits_at(row, k) * scale - shift);
}

/* Mass of each block of `block` classes into blocks[]; returns their total. */
static inline __attribute__((always_inline)) float block_masses(row_t row, int64_t block,
                                                                float scale, float shift,
                                                                float *blocks) {
    const int64_t n_blocks = (row.v + block - 1) / block;
    float total = 0.0f;
    for (int64_t b = 0; b < n_blocks; b++) {
        vfloat mass = (vfloat){0};
        int64_t stop = (b + 1) * block < row.v ? (b + 1) * block : row.v;
        for (int64_t k = b * block; k < stop; k += LANES) mass += weights_at(row, k, scale, shift);
        blocks[b] = sum_lanes(mass);
        total += blocks[b];
    }
    return total;
}

/* The class where u * total falls: first its block, then the class inside it (whose
 * weight goes to *weight). Rounding can leave the remainder at or past the end: then
 * the last block / class with mass wins, so a class without mass is never returned. */
static inline __attribute__((always_inline)) int64_t inverse_cdf(row_t row, int64_t block,
                                                                 float scale, float shift,
                                                                 const float *blocks, float total,
                                                                 float u, float *weights,
                                                                 float *weight) {
    const int64_t n_blocks = (row.v + block - 1) / block;
    float remainder = u * total;
    int64_t chosen = -1, last_with_mass = 0;
    for (int64_t b = 0; b < n_blocks; b++) {
        if (blocks[b] > 0.0f) last_with_mass = b;
        if (remainder < blocks[b]) {
            chosen = b;
            break;
        }
        remainder -= blocks[b];
    }
    if (chosen < 0) {
        chosen = last_with_mass;
        remainder = blocks[chosen];
    }
    const int64_t start = chosen * block;
    const int64_t stop = start + block < row.v ? start + block : row.v;
    for (int64_t k = start; k < stop; k += LANES) {
        vfloat w = weights_at(row, k, scale, shift);
        memcpy(weights + (k - start), &w, sizeof w);
    }
    int64_t drawn = start;
    *weight = 0.0f;
    for (int64_t k = start; k < stop; k++) {
        float w = weights[k - start];
        if (w > 0.0f) {
            drawn = k;
            *weight = w;
            if (remainder < w) break;
            remainder -= w;
        }
    }
    return drawn;
}

/* Draw out[i] from softmax((logits[i] + bias) * inv_temperature) for each of n rows
 * (row stride ld floats; bias may be NULL) with uniform u[i] in [0, 1). block is a
 * multiple of 16. Rows with a NaN or without a finite maximum get -1; returns how
 * many. Runs on `threads` OpenMP threads where built with OpenMP. */
int64_t textgan_sample_rows(const float *logits, int64_t n, int64_t v, int64_t ld,
                            const float *bias, float inv_temperature, const float *u,
                            int64_t block, int32_t threads, int64_t *out) {
    const float scale = inv_temperature * 1.4426950408889634f; /* exp(x) = 2^(x log2 e) */
    const int64_t n_blocks = (v + block - 1) / block;
    int64_t failed = 0;
#pragma omp parallel num_threads(threads) reduction(+ : failed)
    {
        float *blocks = malloc(sizeof(float) * (size_t)(n_blocks + block));
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            row_t row = {logits + i * ld, 0, bias, v};
            float max, weight;
            if (!blocks) {
                out[i] = -2;
            } else if (!row_max(row, scale, &max, NULL)) {
                out[i] = -1;
            } else {
                float total = block_masses(row, block, scale, max * scale, blocks);
                out[i] = inverse_cdf(row, block, scale, max * scale, blocks, total, u[i],
                                     blocks + n_blocks, &weight);
            }
            failed += out[i] < 0;
        }
        free(blocks);
    }
    return failed;
}

/* The same draw from bfloat16 logits l_hat = bf16(h W) (row stride ld), made exact by
 * rejection. features: the float32 h, k floats per row; class_rows: W transposed,
 * [v, k] float32; bias: float32 [v] or NULL, added to both. eps_base[i] + output_unit *
 * max_v |l_hat_v| bounds |h W - l_hat| for row i. u holds 2 * candidates uniforms per
 * row (one candidate: pick, then accept). Rows whose candidates were all rejected get
 * -3 (draw them again from float32 logits); other codes as textgan_sample_rows. */
int64_t textgan_sample_rows_bf16(const uint16_t *logits, int64_t n, int64_t v, int64_t ld,
                                 const float *features, int64_t k, const float *class_rows,
                                 const float *bias, const float *eps_base, float output_unit,
                                 float inv_temperature, const float *u, int32_t candidates,
                                 int64_t block, int32_t threads, int64_t *out) {
    const float scale = inv_temperature * 1.4426950408889634f;
    const int64_t n_blocks = (v + block - 1) / block;
    int64_t failed = 0;
#pragma omp parallel num_threads(threads) reduction(+ : failed)
    {
        float *blocks = malloc(sizeof(float) * (size_t)(n_blocks + block));
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            row_t row = {logits + i * ld, 1, bias, v};
            float max, abs_max;
            if (!blocks) {
                out[i] = -2;
            } else if (!row_max(row, scale, &max, &abs_max)) {
                out[i] = -1;
            } else {
                const float *h = features + i * k;
                float eps = eps_base[i] + output_unit * abs_max;
                /* float32 rounding of the two exponents compared below, with margin */
                float slack = 1e-4f + 1e-6f * (abs_max + fabsf(max) + eps) * scale;
                float total = block_masses(row, block, scale, max * scale, blocks);
                out[i] = -3;
                for (int32_t c = 0; c < candidates; c++) {
                    float weight;
                    int64_t drawn = inverse_cdf(row, block, scale, max * scale, blocks, total,
                                                u[i * 2 * candidates + 2 * c], blocks + n_blocks,
                                                &weight);
                    float exact = bias ? bias[drawn] : 0.0f;
                    for (int64_t j = 0; j < k; j++) exact += h[j] * class_rows[drawn * k + j];
                    vfloat target = exp2_nonpositive(splat((exact - eps - max) * scale - slack));
                    if (u[i * 2 * candidates + 2 * c + 1] * weight < target[0]) {
                        out[i] = drawn;
                        break;
                    }
                }
            }
            failed += out[i] < 0;
        }
        free(blocks);
    }
    return failed;
}
