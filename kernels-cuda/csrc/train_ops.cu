// Kernels of the fused GPU training step (hstu-spec sections 1 and 7) that elementwise.cu lacks:
// the uvqk split (SiLU fused, q/k/v to zero-padded bf16 heads for the attention kernels), the
// fused LN(attn) + gating + dropout forward and its backward (into d pre-activation and bf16
// d attn), the q/k/v gradient back into the pre-activation, residual layer-norm backward, bias
// rows and column sums, in-place dropout, negative sampling and a loss sum.
//
// Layouts: pre [T, U] with U = 2*H*dv + 2*H*dqk, columns u | v | q | k, each head-major
// (column h*d + c); padded heads [T, H, dk] bf16 with dk >= max(dqk, dv) (padding left zero).
#include <cuda_bf16.h>

#include "hstu_device_utils.cuh"

__device__ __forceinline__ float silu_f(float x) { return x / (1.f + __expf(-x)); }
__device__ __forceinline__ float silu_grad_f(float x) {
  float s = 1.f / (1.f + __expf(-x));
  return s * (1.f + x * (1.f - s));
}
__device__ __forceinline__ float keep_scale(float rate, uint64_t seed, uint64_t i) {
  return (rate > 0.f && hash_uniform(seed, i) < rate) ? 0.f : 1.f / (1.f - rate);
}

// u [T, H*dv] f32 = silu(pre[:, u]); q, k, v [T, H, dk] bf16 = silu(pre[:, q|k|v]), zero-padded.
extern "C" __global__ void hstu_uvqk_split_fwd(const float* pre, float* u, __nv_bfloat16* q,
                                               __nv_bfloat16* k, __nv_bfloat16* v, int64_t tokens,
                                               int heads, int dv, int dqk, int dk) {
  const int hdv = heads * dv, hdqk = heads * dqk, width = 2 * hdv + 2 * hdqk;
  GRID_STRIDE(i, tokens * hdv) {
    int64_t t = i / hdv;
    u[i] = silu_f(pre[t * width + (i % hdv)]);
  }
  GRID_STRIDE(i, tokens * heads * dk) {
    int64_t t = i / (heads * dk);
    int h = (int)((i / dk) % heads), c = (int)(i % dk);
    const float* row = pre + t * width;
    v[i] = __float2bfloat16(c < dv ? silu_f(row[hdv + h * dv + c]) : 0.f);
    q[i] = __float2bfloat16(c < dqk ? silu_f(row[2 * hdv + h * dqk + c]) : 0.f);
    k[i] = __float2bfloat16(c < dqk ? silu_f(row[2 * hdv + hdqk + h * dqk + c]) : 0.f);
  }
}

// One warp per token row t (block 256 = 8 rows): a = LN(attn_t) over its H*dv values read from
// the padded bf16 attention output, y_t = dropout(u_t * a); saves a and rstd for the backward.
extern "C" __global__ void hstu_attn_ln_gate_fwd(const __nv_bfloat16* attn, const float* u,
                                                 float* a_ln, float* rstd, float* y, int tokens,
                                                 int heads, int dv, int dk, float eps, float rate,
                                                 uint64_t seed) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= tokens) return;
  const int hdv = heads * dv;
  const __nv_bfloat16* xr = attn + (int64_t)row * heads * dk;
  auto at = [&](int j) { return __bfloat162float(xr[(j / dv) * dk + j % dv]); };
  float s = 0.f;
  for (int j = lane; j < hdv; j += 32) s += at(j);
  const float mean = warp_sum(s) / hdv;
  float var = 0.f;
  for (int j = lane; j < hdv; j += 32) {
    float d = at(j) - mean;
    var += d * d;
  }
  const float r = rsqrtf(warp_sum(var) / hdv + eps);
  const int64_t base = (int64_t)row * hdv;
  for (int j = lane; j < hdv; j += 32) {
    float a = (at(j) - mean) * r;
    a_ln[base + j] = a;
    y[base + j] = u[base + j] * a * keep_scale(rate, seed, base + j);
  }
  if (lane == 0) rstd[row] = r;
}

// Backward of hstu_attn_ln_gate_fwd, one warp per row: g = dy * mask;
// d_pre[:, u] = g * a * silu'(pre_u); d attn = LN backward of (g * u), written to padded bf16.
extern "C" __global__ void hstu_attn_ln_gate_bwd(const float* dy, const float* u, const float* a_ln,
                                                 const float* rstd, const float* pre, float* d_pre,
                                                 __nv_bfloat16* d_attn, int tokens, int heads,
                                                 int dv, int dqk, int dk, float rate,
                                                 uint64_t seed) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= tokens) return;
  const int hdv = heads * dv, width = 2 * hdv + 2 * heads * dqk;
  const int64_t base = (int64_t)row * hdv;
  float m1 = 0.f, m2 = 0.f;
  for (int j = lane; j < hdv; j += 32) {
    float da = dy[base + j] * keep_scale(rate, seed, base + j) * u[base + j];
    m1 += da;
    m2 += da * a_ln[base + j];
  }
  m1 = warp_sum(m1) / hdv;
  m2 = warp_sum(m2) / hdv;
  const float r = rstd[row];
  for (int j = lane; j < hdv; j += 32) {
    float g = dy[base + j] * keep_scale(rate, seed, base + j);
    float a = a_ln[base + j];
    d_pre[(int64_t)row * width + j] = g * a * silu_grad_f(pre[(int64_t)row * width + j]);
    float da = g * u[base + j];
    d_attn[(int64_t)row * heads * dk + (j / dv) * dk + j % dv] =
        __float2bfloat16(r * (da - m1 - a * m2));
  }
}

// d_pre[:, v|q|k] = (dv | dq | dk from padded bf16 heads) * silu'(pre).
extern "C" __global__ void hstu_qkv_grad_to_pre(const __nv_bfloat16* dq, const __nv_bfloat16* dk_,
                                                const __nv_bfloat16* dv_, const float* pre,
                                                float* d_pre, int64_t tokens, int heads, int dv,
                                                int dqk, int dk) {
  const int hdv = heads * dv, hdqk = heads * dqk, width = 2 * hdv + 2 * hdqk;
  const int cols = hdv + 2 * hdqk;
  GRID_STRIDE(i, tokens * cols) {
    int64_t t = i / cols;
    int c = (int)(i % cols);
    float g;
    if (c < hdv) {
      g = __bfloat162float(dv_[t * heads * dk + (c / dv) * dk + c % dv]);
    } else if (c < hdv + hdqk) {
      int x = c - hdv;
      g = __bfloat162float(dq[t * heads * dk + (x / dqk) * dk + x % dqk]);
    } else {
      int x = c - hdv - hdqk;
      g = __bfloat162float(dk_[t * heads * dk + (x / dqk) * dk + x % dqk]);
    }
    int64_t o = t * width + hdv + c;
    d_pre[o] = g * silu_grad_f(pre[o]);
  }
}

// dx += rstd * (dy - mean(dy) - y * mean(dy * y)) per row (layer norm backward into a residual).
extern "C" __global__ void hstu_layer_norm_bwd_acc(const float* dy, const float* y,
                                                   const float* rstd, float* dx, int rows,
                                                   int dim) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float* g = dy + (int64_t)row * dim;
  const float* yr = y + (int64_t)row * dim;
  float a = 0.f, b = 0.f;
  for (int c = lane; c < dim; c += 32) {
    a += g[c];
    b += g[c] * yr[c];
  }
  a = warp_sum(a) / dim;
  b = warp_sum(b) / dim;
  const float r = rstd[row];
  for (int c = lane; c < dim; c += 32) dx[(int64_t)row * dim + c] += r * (g[c] - a - yr[c] * b);
}

// x[r, c] += b[c].
extern "C" __global__ void hstu_add_bias_rows(float* x, const float* b, int64_t rows, int dim) {
  GRID_STRIDE(i, rows * dim) x[i] += b[i % dim];
}

// out[c] += sum_r x[r, c]: block (32, 8) covers 32 columns, blockIdx.y strides the rows.
extern "C" __global__ void hstu_col_sum_acc(const float* x, float* out, int64_t rows, int dim) {
  __shared__ float part[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.f;
  if (c < dim)
    for (int64_t r = blockIdx.y * 8 + threadIdx.y; r < rows; r += (int64_t)gridDim.y * 8)
      s += x[r * dim + c];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < dim) {
    float t = 0.f;
#pragma unroll
    for (int k = 0; k < 8; ++k) t += part[k][threadIdx.x];
    atomicAdd(out + c, t);
  }
}

// x *= dropout mask (same mask for the same seed: forward and backward of input dropout).
extern "C" __global__ void hstu_dropout_inplace(float* x, int64_t n, float rate, uint64_t seed) {
  GRID_STRIDE(i, n) x[i] *= keep_scale(rate, seed, i);
}

// out[i] = 1 + floor(uniform * num_items): uniform with replacement over ids 1..=num_items.
extern "C" __global__ void hstu_sample_negatives(int64_t* out, int64_t n, int64_t num_items,
                                                 uint64_t seed) {
  GRID_STRIDE(i, n) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    double uni = (double)(z >> 11) * (1.0 / 9007199254740992.0);
    int64_t id = 1 + (int64_t)(uni * (double)num_items);
    out[i] = id > num_items ? num_items : id;
  }
}

// out[0] += sum(x) (one atomic per block of 256).
extern "C" __global__ void hstu_sum_acc(const float* x, int64_t n, float* out) {
  __shared__ float part[8];
  float s = 0.f;
  GRID_STRIDE(i, n) s += x[i];
  s = warp_sum(s);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.f;
    t = warp_sum(t);
    if (threadIdx.x == 0) atomicAdd(out, t);
  }
}
