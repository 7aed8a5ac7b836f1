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
 * textgan_sample_projected goes one step further for models whose logits are
 * h W + b: it computes them itself, 8 rows at a time into a per-thread buffer that
 * stays in cache, so no [rows, V] array exists at all; with avx512_bf16 it uses
 * bfloat16 dot products (twice the float32 rate) and the same rejection step.
 *
 * Written with GCC/Clang vector extensions as wide as the target's registers (below),
 * so the compiler maps them onto whatever SIMD the CPU has; only the bfloat16 dot
 * product uses intrinsics, where the build target has them. Built and loaded by textgan_envs/native_sampling.py.
 */
#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>
#define HAVE_BF16_DOT 1
#else
#define HAVE_BF16_DOT 0
#endif
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The vector width follows the build target, so each vector maps onto one register:
 * 16 floats with AVX-512, 8 with AVX/AVX2, 4 otherwise (SSE2, NEON, or the portable
 * build). Wider GCC vectors than the target has are lowered lane by lane, with scalar
 * compares: that made the AVX2 build 4x slower than PyTorch. The Python side pads
 * classes to multiples of 16, which every width divides. */
#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
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

/* Values of classes k .. k+LANES-1 as floats (bfloat16 widened), bias not included;
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

/* Bias of classes k .. k+LANES-1 (row.bias must not be NULL); 0 past the last class. */
static inline __attribute__((always_inline)) vfloat bias_at(row_t row, int64_t k) {
    if (__builtin_expect(k + LANES <= row.v, 1)) return load(row.bias + k);
    vfloat b = (vfloat){0};
    for (int64_t j = 0; k + j < row.v; j++) b[j] = row.bias[k + j];
    return b;
}

/* Logits of classes k .. k+LANES-1, bias included; classes >= v read as -inf. */
static inline __attribute__((always_inline)) vfloat logits_at(row_t row, int64_t k) {
    if (__builtin_expect(k + LANES <= row.v, 1)) {
        vfloat x = values_at(row, k);
        return row.bias ? x + load(row.bias + k) : x;
    }
    vfloat x = values_at(row, k);
    return row.bias ? x + bias_at(row, k) : x;
}

/* Folds classes k .. k+LANES-1 into the running maxima of row_max. */
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

/* Unnormalised probabilities 2^((x - max) * scale) of classes k .. k+LANES-1. */
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

/* One exact draw from a row whose largest logit is max, with uniform u. blocks holds
 * ceil(v / block) + block floats of scratch. */
static inline __attribute__((always_inline)) int64_t draw_exact(row_t row, float max, float scale,
                                                                float u, int64_t block,
                                                                float *blocks) {
    const int64_t n_blocks = (row.v + block - 1) / block;
    float weight;
    float total = block_masses(row, block, scale, max * scale, blocks);
    return inverse_cdf(row, block, scale, max * scale, blocks, total, u, blocks + n_blocks,
                       &weight);
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
            float max;
            if (!blocks) {
                out[i] = -2;
            } else if (!row_max(row, scale, &max, NULL)) {
                out[i] = -1;
            } else {
                out[i] = draw_exact(row, max, scale, u[i], block, blocks);
            }
            failed += out[i] < 0;
        }
        free(blocks);
    }
    return failed;
}

/* One draw from a row of approximate logits, made exact by rejection: a candidate from
 * the row's inverse CDF is accepted with probability 2^((l - eps - l_hat) * scale), l its
 * float32 logit bias + h . class_rows[drawn]. -3 if all `candidates` were rejected. */
static int64_t draw_with_rejection(row_t row, float max, float eps, const float *h, int64_t k,
                                   const float *class_rows, const float *bias, float scale,
                                   const float *u, int32_t candidates, int64_t block,
                                   float *blocks) {
    const int64_t n_blocks = (row.v + block - 1) / block;
    float total = block_masses(row, block, scale, max * scale, blocks);
    for (int32_t c = 0; c < candidates; c++) {
        float weight;
        int64_t drawn = inverse_cdf(row, block, scale, max * scale, blocks, total, u[2 * c],
                                    blocks + n_blocks, &weight);
        float exact = bias ? bias[drawn] : 0.0f;
        for (int64_t j = 0; j < k; j++) exact += h[j] * class_rows[drawn * k + j];
        /* float32 rounding of the two exponents compared, with margin */
        float slack = 1e-4f + 1e-6f * (fabsf(exact) + fabsf(max) + eps) * scale;
        vfloat target = exp2_nonpositive(splat((exact - eps - max) * scale - slack));
        if (u[2 * c + 1] * weight < target[0]) return drawn;
    }
    return -3;
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
                out[i] = draw_with_rejection(row, max, eps_base[i] + output_unit * abs_max,
                                             features + i * k, k, class_rows, bias, scale,
                                             u + i * 2 * candidates, candidates, block, blocks);
            }
            failed += out[i] < 0;
        }
        free(blocks);
    }
    return failed;
}

/* ------------------------------------------------------------------ fused projection */

#define ROWS 8 /* rows projected together: each weight vector is loaded once for all */

/* Whether this build computes bfloat16 dot products natively (avx512_bf16). */
int32_t textgan_has_bf16_dot(void) { return HAVE_BF16_DOT; }

/* logits[r][c] = bias[c] + sum_j h[r][j] weight[j][c] for ROWS rows of h (k floats each)
 * and all vpad classes (a multiple of 16; weight [k][vpad], bias [vpad], -inf past v). */
static void project_f32(const float *h, int64_t k, const float *weight, const float *bias,
                        int64_t vpad, float *logits) {
    for (int64_t c = 0; c < vpad; c += LANES) {
        vfloat acc[ROWS];
        for (int r = 0; r < ROWS; r++) acc[r] = (vfloat){0};
        for (int64_t j = 0; j < k; j++) {
            vfloat w = load(weight + j * vpad + c);
            for (int r = 0; r < ROWS; r++) acc[r] += h[r * k + j] * w;
        }
        vfloat b = load(bias + c);
        for (int r = 0; r < ROWS; r++) {
            acc[r] += b;
            memcpy(logits + r * vpad + c, &acc[r], sizeof acc[r]);
        }
    }
}

#if HAVE_BF16_DOT
/* The same with bfloat16 inputs and float32 sums: pairs holds each row's (h[2p], h[2p+1])
 * as bfloat16 pairs (k2 per row); packed holds, for each group of 16 classes and each p,
 * the 16 pairs (W[2p][c], W[2p+1][c]). One vdpbf16ps does two multiply-adds per lane. */
static void project_bf16(const uint32_t *pairs, int64_t k2, const uint32_t *packed,
                         const float *bias, int64_t vpad, float *logits) {
    for (int64_t g = 0; g < vpad / LANES; g++) {
        __m512 acc[ROWS];
        for (int r = 0; r < ROWS; r++) acc[r] = _mm512_setzero_ps();
        for (int64_t p = 0; p < k2; p++) {
            __m512bh w = (__m512bh)_mm512_loadu_si512(packed + (g * k2 + p) * LANES);
            for (int r = 0; r < ROWS; r++) {
                __m512bh x = (__m512bh)_mm512_set1_epi32((int)pairs[r * k2 + p]);
                acc[r] = _mm512_dpbf16_ps(acc[r], x, w);
            }
        }
        /* the bias after the sums: their rounding is what the error bound covers */
        __m512 b = _mm512_loadu_ps(bias + g * LANES);
        for (int r = 0; r < ROWS; r++)
            _mm512_storeu_ps(logits + r * vpad + g * LANES, _mm512_add_ps(acc[r], b));
    }
}
#endif

/* Draw out[i] from softmax((h_i W + bias) * inv_temperature) for n rows of features
 * (float32, k per row) without a [n, v] logits array: ROWS rows at a time are projected
 * into a per-thread buffer and drawn from there. bias_padded has vpad entries, -inf past v.
 * With pairs == NULL, weight is float32 [k][vpad] and each row is drawn exactly with u[i].
 * Otherwise (a build with HAVE_BF16_DOT) weight is the packed bfloat16 layout of
 * project_bf16, pairs the bfloat16 features, and each row is drawn by rejection as in
 * textgan_sample_rows_bf16 (u: 2 * candidates per row; eps_base[i] bounds the error).
 * Returns the number of rows with negative codes (-1 bad row, -2 no memory, -3 rejected,
 * -4 bfloat16 requested from a build without it). */
int64_t textgan_sample_projected(const float *features, const uint32_t *pairs, int64_t n,
                                 int64_t k, int64_t k2, const void *weight,
                                 const float *bias_padded, int64_t v, int64_t vpad,
                                 const float *class_rows, const float *eps_base,
                                 float inv_temperature, const float *u, int32_t candidates,
                                 int64_t block, int32_t threads, int64_t *out) {
    const float scale = inv_temperature * 1.4426950408889634f;
    const int64_t n_blocks = (v + block - 1) / block;
    const int64_t groups = (n + ROWS - 1) / ROWS;
    int64_t failed = 0;
#pragma omp parallel num_threads(threads) reduction(+ : failed)
    {
        float *logits = malloc(sizeof(float) * (size_t)(ROWS * vpad + n_blocks + block));
        float *h = calloc((size_t)(ROWS * k), sizeof(float));
        uint32_t *hp = calloc((size_t)(ROWS * (k2 > 0 ? k2 : 1)), sizeof(uint32_t));
        float *blocks = logits ? logits + ROWS * vpad : NULL;
#pragma omp for schedule(static)
        for (int64_t g = 0; g < groups; g++) {
            const int64_t first = g * ROWS;
            const int rows = n - first < ROWS ? (int)(n - first) : ROWS;
            int ok = logits && h && hp;
            if (ok) { /* the group's rows, zero-padded to ROWS */
                memset(h, 0, sizeof(float) * (size_t)(ROWS * k));
                memcpy(h, features + first * k, sizeof(float) * (size_t)(rows * k));
                if (pairs) {
                    memset(hp, 0, sizeof(uint32_t) * (size_t)(ROWS * k2));
                    memcpy(hp, pairs + first * k2, sizeof(uint32_t) * (size_t)(rows * k2));
                }
                if (!pairs) {
                    project_f32(h, k, (const float *)weight, bias_padded, vpad, logits);
                } else {
#if HAVE_BF16_DOT
                    project_bf16(hp, k2, (const uint32_t *)weight, bias_padded, vpad, logits);
#else
                    ok = -1;
#endif
                }
            }
            for (int r = 0; r < rows; r++) {
                const int64_t i = first + r;
                row_t row = {logits + r * vpad, 0, NULL, v};
                float max;
                if (ok != 1) {
                    out[i] = ok == -1 ? -4 : -2;
                } else if (!row_max(row, scale, &max, NULL)) {
                    out[i] = -1;
                } else if (!pairs) {
                    out[i] = draw_exact(row, max, scale, u[i], block, blocks);
                } else {
                    out[i] = draw_with_rejection(row, max, eps_base[i], h + r * k, k,
                                                 class_rows, bias_padded, scale,
                                                 u + i * 2 * candidates, candidates, block,
                                                 blocks);
                }
                failed += out[i] < 0;
            }
        }
        free(logits);
        free(h);
        free(hp);
    }
    return failed;
}
