/* One Adam step of a float32 weight from a bfloat16 gradient, writing the weight's bfloat16 copy.
 *
 * Why: in bfloat16 training the highway's GEMMs read a bfloat16 copy of each 1720 x 1720
 * weight and produce a bfloat16 weight gradient. Widening that gradient for PyTorch's fused
 * Adam and rounding the updated weight again for the next forward are two extra passes over
 * 3M elements each, as costly as the update itself; here they ride along in its single pass.
 *
 * The arithmetic is PyTorch's fused CPU Adam (ATen/native/cpu/FusedAdamKernel.cpp, float32,
 * no weight decay, amsgrad or maximize), operation for operation, so the weight and moments
 * are the ones torch.optim.Adam(fused=True) computes from the widened gradient:
 *   m = fma(1 - beta1, g - m, m)          (exp_avg.lerp_(g, 1 - beta1) for 1 - beta1 < 0.5)
 *   v = v * beta2 + ((1 - beta2) * g) * g
 *   p = p + ((-step_size) * m) / (sqrt(v) / bias_correction2_sqrt + eps)
 * Contraction into FMAs is off here so each line rounds where PyTorch's vector code does.
 * low_p receives p rounded to bfloat16 the way Tensor.to(torch.bfloat16) rounds
 * (to nearest even, NaN to the quiet NaN 0x7fc0).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#define NO_CONTRACT
#elif defined(__GNUC__)
#define NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define NO_CONTRACT
#endif

#define CHUNK 4096 /* elements per OpenMP task: 64 KB of weight and moments per array */

static inline float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

NO_CONTRACT static void adam_chunk(float *restrict p, float *restrict m, float *restrict v,
                                   const uint16_t *restrict g, uint16_t *restrict low_p,
                                   int64_t n, float c1, float beta2, float c2, float neg_step,
                                   float bc2_sqrt, float eps) {
    for (int64_t i = 0; i < n; ++i) {
        float gi = bf16_to_float(g[i]);
        float mi = fmaf(c1, gi - m[i], m[i]);
        float vi = v[i] * beta2 + (c2 * gi) * gi;
        float pi = p[i] + (neg_step * mi) / (sqrtf(vi) / bc2_sqrt + eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
        low_p[i] = float_to_bf16(pi);
    }
}

/* step_size = lr / (1 - beta1^step) and bias_correction2_sqrt = sqrt(1 - beta2^step), both
 * computed by the caller in double precision as PyTorch does. */
void textgan_adam_bf16_grad(float *p, float *exp_avg, float *exp_avg_sq, const uint16_t *grad,
                            uint16_t *low_p, int64_t n, double beta1, double beta2,
                            double step_size, double bias_correction2_sqrt, double eps,
                            int threads) {
    const float c1 = (float)(1.0 - beta1), b2 = (float)beta2, c2 = (float)(1.0 - beta2);
    const float neg_step = (float)(-step_size), bc2 = (float)bias_correction2_sqrt;
    const float e = (float)eps;
    const int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
        int64_t start = c * CHUNK, count = n - start < CHUNK ? n - start : CHUNK;
        adam_chunk(p + start, exp_avg + start, exp_avg_sq + start, grad + start, low_p + start,
                   count, c1, b2, c2, neg_step, bc2, e);
    }
}
