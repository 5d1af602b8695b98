// Element-wise kernels of the HSTU layer and trainer (f32): AdamW update.
// Each kernel is a flat grid-stride loop over its elements.
#include <stdint.h>

// AdamW (decoupled weight decay), bias-corrected: p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p).
// bc1 = 1 - beta1^t, bc2 = 1 - beta2^t precomputed on the host.
extern "C" __global__ void hstu_adamw_f32(float* p, const float* g, float* m, float* v, int64_t n,
                                          float lr, float beta1, float beta2, float eps, float wd,
                                          float bc1, float bc2) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    float gi = g[i];
    float mi = beta1 * m[i] + (1.f - beta1) * gi;
    float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float upd = (mi / bc1) / (sqrtf(vi / bc2) + eps);
    p[i] -= lr * (upd + wd * p[i]);
  }
}
