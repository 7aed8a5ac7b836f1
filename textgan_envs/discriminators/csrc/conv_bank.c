/* Backward pass of SeqGAN's convolution bank with max-over-time pooling.
 *
 * Why: after max pooling, each (sequence b, filter j) passes its gradient g[b, j] to one
 * window only, the one at its argmax position idx[b, j]. A dense GEMM over all positions
 * multiplies mostly zeros (positions-fold more work); here every nonzero (b, j) adds one
 * scaled window: 2 * B * sum_j(width_j * E) flops in all, on data that sits in cache.
 *
 * Layouts (float32 / int64, row-major, contiguous):
 *   x        [B, T, E]     padded embedded sequences (T >= every width)
 *   filters  packed rows   filter j is filters[offset[j] .. + width[j] * E), tap-major:
 *                          element (k, e) of its window at k * E + e
 *   g, idx   [B, F]        pooled gradient (0 where ReLU passed none) and argmax position
 *   grad_x   [B, T, E]     written (not accumulated) when want_grad_x
 *   grad_f   at the same offsets, but in nn.Conv1d's layout: element (e, k) of filter j
 *            at offset[j] + e * width[j] + k, so each width's part is its weight's gradient
 * The window of (b, j) is the contiguous run x[(b * T + idx[b, j]) * E .. + width[j] * E).
 * textgan_conv_bank_pack turns one Conv1d weight [maps, E, width] into tap-major rows;
 * textgan_conv_bank_pool is the forward's max-over-time pooling with its argmax.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_FLOATS (24 * 1024)  /* filters per pass of input_grads: ~96 KB, held in L2 */

/* grad_f[j] = sum_b g[b, j] * window(b, j): four windows streamed per pass over the row,
 * so the row (in L1) is loaded and stored once per four multiply-adds. */
static void filter_grad(const float *x, int64_t B, int64_t T, int64_t E, int64_t F,
                        int64_t j, int64_t width, const float *g, const int64_t *idx,
                        float *restrict row, float *coef, const float **src, float *out) {
    int64_t n = width * E;
    int64_t m = 0;
    for (int64_t b = 0; b < B; ++b) {
        float a = g[b * F + j];
        if (a != 0.0f) {
            coef[m] = a;
            src[m++] = x + (b * T + idx[b * F + j]) * E;
        }
    }
    memset(row, 0, (size_t)n * sizeof(float));
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
        const float *restrict s0 = src[i], *restrict s1 = src[i + 1];
        const float *restrict s2 = src[i + 2], *restrict s3 = src[i + 3];
        float a0 = coef[i], a1 = coef[i + 1], a2 = coef[i + 2], a3 = coef[i + 3];
        for (int64_t c = 0; c < n; ++c) row[c] += a0 * s0[c] + a1 * s1[c] + a2 * s2[c] + a3 * s3[c];
    }
    for (; i < m; ++i) {
        const float *restrict s0 = src[i];
        float a0 = coef[i];
        for (int64_t c = 0; c < n; ++c) row[c] += a0 * s0[c];
    }
    for (int64_t e = 0; e < E; ++e)  /* tap-major row (in L1) -> Conv1d layout, written in order */
        for (int64_t k = 0; k < width; ++k) out[e * width + k] = row[k * E + e];
}

static int filter_grads(const float *x, int64_t B, int64_t T, int64_t E, int64_t F,
                        const int64_t *width, const int64_t *offset, const float *g,
                        const int64_t *idx, float *grad_f, int threads) {
    int failed = 0;
    int64_t widest = 0;
    for (int64_t j = 0; j < F; ++j) widest = width[j] > widest ? width[j] : widest;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *coef = malloc((size_t)B * sizeof(float));
        const float **start = malloc((size_t)B * sizeof(const float *));
        float *row = malloc((size_t)(widest * E) * sizeof(float));
        if (coef == NULL || start == NULL || row == NULL) {
            failed = 1;
        } else {
#pragma omp for schedule(dynamic, 4)
            for (int64_t j = 0; j < F; ++j)
                filter_grad(x, B, T, E, F, j, width[j], g, idx, row, coef, start, grad_f + offset[j]);
        }
        free(coef);
        free((void *)start);
        free(row);
    }
    return failed;
}

static void axpy(int64_t n, float a, const float *restrict src, float *restrict dst) {
    for (int64_t i = 0; i < n; ++i) dst[i] += a * src[i];
}

/* grad_x[b] = sum_j g[b, j] * filter j placed at idx[b, j]; filters in blocks that fit L2,
 * each block applied to all of a thread's sequences before the next is read. (Bucketing the
 * taps by position to keep rows of grad_x in registers measured 5x slower: the taps are then
 * gathered from scattered addresses instead of streamed.) */
static void input_grads(int64_t B, int64_t T, int64_t E, int64_t F, const int64_t *width,
                        const int64_t *offset, const float *filters, const float *g,
                        const int64_t *idx, float *grad_x, int threads) {
    memset(grad_x, 0, (size_t)(B * T * E) * sizeof(float));
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        extern int omp_get_thread_num(void);
        extern int omp_get_num_threads(void);
        int64_t team = omp_get_num_threads(), me = omp_get_thread_num();
#else
        int64_t team = 1, me = 0;
#endif
        int64_t lo = B * me / team, hi = B * (me + 1) / team;
        for (int64_t j0 = 0; j0 < F;) {
            int64_t j1 = j0 + 1;
            while (j1 < F && offset[j1] + width[j1] * E - offset[j0] <= BLOCK_FLOATS) ++j1;
            for (int64_t b = lo; b < hi; ++b) {
                float *out = grad_x + b * T * E;
                for (int64_t j = j0; j < j1; ++j) {
                    float a = g[b * F + j];
                    if (a != 0.0f) axpy(width[j] * E, a, filters + offset[j], out + idx[b * F + j] * E);
                }
            }
            j0 = j1;
        }
    }
}

/* 0 on success; -1 a width outside [1, T]; -2 a window past the end; -3 out of memory. */
int64_t textgan_conv_bank_backward(const float *x, int64_t B, int64_t T, int64_t E, int64_t F,
                                   const int64_t *width, const int64_t *offset,
                                   const float *filters, const float *g, const int64_t *idx,
                                   float *grad_x, float *grad_f, int32_t want_grad_x,
                                   int32_t threads) {
    for (int64_t j = 0; j < F; ++j)
        if (width[j] < 1 || width[j] > T) return -1;
    for (int64_t i = 0; i < B * F; ++i)
        if (idx[i] < 0 || idx[i] + width[i % F] > T) return -2;
    if (threads < 1) threads = 1;
    if (filter_grads(x, B, T, E, F, width, offset, g, idx, grad_f, threads)) return -3;
    if (want_grad_x) input_grads(B, T, E, F, width, offset, filters, g, idx, grad_x, threads);
    return 0;
}

/* dst [maps, width, E] (tap-major, the GEMM operand) from a Conv1d weight src [maps, E, width]. */
void textgan_conv_bank_pack(const float *src, float *dst, int64_t maps, int64_t E, int64_t width,
                            int32_t threads) {
    if (threads < 1) threads = 1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t j = 0; j < maps; ++j) {
        const float *in = src + j * E * width;
        float *out = dst + j * E * width;
        for (int64_t k = 0; k < width; ++k)  /* sequential writes, reads strided by width */
            for (int64_t e = 0; e < E; ++e) out[k * E + e] = in[e * width + k];
    }
}

/* Max-over-time pooling of one width's scores [B, P, maps] (the GEMM's output): columns
 * col .. col + maps of pooled [B, F] get relu(max_t), of argmax [B, F] the position of the
 * maximum (the first one; a NaN wins and stays, as in max_pool1d and clamp_min).
 * The _bf16 variant reads bfloat16 scores (a bfloat16 GEMM's output), widened exactly. */
static inline float load_f32(const float *p, int64_t i) { return p[i]; }

static inline float load_bf16(const uint16_t *p, int64_t i) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)p[i] << 16};
    return v.f;
}

#define DEFINE_POOL(NAME, TYPE, LOAD)                                                       \
    int64_t NAME(const TYPE *scores, int64_t B, int64_t P, int64_t maps, int64_t F,         \
                 int64_t col, float *pooled, int64_t *argmax, int32_t threads) {            \
        int failed = 0;                                                                     \
        if (threads < 1) threads = 1;                                                       \
        _Pragma("omp parallel num_threads(threads) reduction(| : failed)") {                \
            float *best = malloc((size_t)maps * sizeof(float));                             \
            int32_t *at = malloc((size_t)maps * sizeof(int32_t));                           \
            _Pragma("omp for schedule(static)") for (int64_t b = 0; b < B; ++b) {           \
                const TYPE *s = scores + b * P * maps;                                      \
                if (best == NULL || at == NULL) {                                           \
                    failed = 1;                                                             \
                    continue;                                                               \
                }                                                                           \
                for (int64_t j = 0; j < maps; ++j) {                                        \
                    best[j] = LOAD(s, j);                                                   \
                    at[j] = 0;                                                              \
                }                                                                           \
                for (int32_t p = 1; p < P; ++p) {                                           \
                    const TYPE *row = s + p * maps;                                         \
                    for (int64_t j = 0; j < maps; ++j) {                                    \
                        float r = LOAD(row, j);                                             \
                        int take = (r > best[j]) | (r != r);                                \
                        best[j] = take ? r : best[j];                                       \
                        at[j] = take ? p : at[j];                                           \
                    }                                                                       \
                }                                                                           \
                for (int64_t j = 0; j < maps; ++j) {                                        \
                    float v = best[j];                                                      \
                    pooled[b * F + col + j] = (v > 0.0f || v != v) ? v : 0.0f;              \
                    argmax[b * F + col + j] = at[j];                                        \
                }                                                                           \
            }                                                                               \
            free(best);                                                                     \
            free(at);                                                                       \
        }                                                                                   \
        return failed ? -3 : 0;                                                             \
    }

DEFINE_POOL(textgan_conv_bank_pool, float, load_f32)
DEFINE_POOL(textgan_conv_bank_pool_bf16, uint16_t, load_bf16)
