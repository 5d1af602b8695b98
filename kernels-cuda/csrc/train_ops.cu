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
    double uni = (double)(hash_u64(seed, (uint64_t)i) >> 11) * (1.0 / 9007199254740992.0);
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

// ---- Sampled softmax without per-element atomics (hstu-spec 7) ----
// 1. items_n = normalize(item_emb) once per step (hstu_l2_normalize_rows).
// 2. hstu_sampled_softmax_rows: one warp per query row, logits against items_n, loss, d_o, and
//    the coefficient dl[r][k] of every (row, candidate) pair; q_n = normalize(o_r) saved.
// 3. A counting sort of the pairs by item id (count, scan, scatter; integer atomics only),
//    then hstu_item_grad_from_pairs: one warp per item sums dl * q_n over its pairs (no float
//    atomics) into d_items_n, and hstu_l2_normalize_bwd_acc folds that into d item_emb.

constexpr int SS_MAXC = 32;  // dim <= 32 * SS_MAXC

// y[r] = x[r] / max(|x[r]|, eps), one warp per row.
extern "C" __global__ void hstu_l2_normalize_rows(const float* x, float* y, int rows, int dim,
                                                  float eps) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float* xr = x + (int64_t)row * dim;
  float s = 0.f;
  for (int c = lane; c < dim; c += 32) s += xr[c] * xr[c];
  const float inv = 1.f / fmaxf(sqrtf(warp_sum(s)), eps);
  for (int c = lane; c < dim; c += 32) y[(int64_t)row * dim + c] = xr[c] * inv;
}

// dx[r] += d normalize(x[r]) given dy[r]: (dy - y (y . dy)) / |x|, or dy / eps when clamped.
extern "C" __global__ void hstu_l2_normalize_bwd_acc(const float* x, const float* dy, float* dx,
                                                     int rows, int dim, float eps) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float* xr = x + (int64_t)row * dim;
  const float* gr = dy + (int64_t)row * dim;
  float s = 0.f, d = 0.f;
  for (int c = lane; c < dim; c += 32) {
    s += xr[c] * xr[c];
    d += xr[c] * gr[c];
  }
  const float norm = sqrtf(warp_sum(s));
  d = warp_sum(d);
  if (norm <= eps) {
    for (int c = lane; c < dim; c += 32) dx[(int64_t)row * dim + c] += gr[c] / eps;
    return;
  }
  const float inv = 1.f / norm, dot = d * inv;  // y . dy
  for (int c = lane; c < dim; c += 32)
    dx[(int64_t)row * dim + c] += (gr[c] - xr[c] * inv * dot) * inv;
}

__device__ __forceinline__ int64_t ss_item(const int64_t* pos_ids, const int64_t* neg_ids,
                                           int64_t row, int num_neg, int k) {
  return k == 0 ? pos_ids[row] : neg_ids[row * num_neg + k - 1];
}

// One warp per row (block 128 = 4 rows; shared: 4 * (K + 1) logits).
extern "C" __global__ void hstu_sampled_softmax_rows(const float* o, const float* items_n,
                                                     const int64_t* pos_ids,
                                                     const int64_t* neg_ids, float* loss,
                                                     float* d_o, float* q_n, float* coef,
                                                     int rows, int dim, int num_neg,
                                                     float temperature, float eps, float weight) {
  extern __shared__ float sh[];
  const int wpb = blockDim.x / 32, w = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int row = blockIdx.x * wpb + w;
  if (row >= rows) return;
  const int kc = num_neg + 1;
  float* lg = sh + w * kc;
  float* cr = coef + (int64_t)row * kc;
  float* dor = d_o + (int64_t)row * dim;
  float* qr = q_n + (int64_t)row * dim;
  const int64_t pid = pos_ids[row];
  if (pid == 0) {
    for (int c = lane; c < dim; c += 32) dor[c] = qr[c] = 0.f;
    for (int k = lane; k < kc; k += 32) cr[k] = 0.f;
    if (lane == 0) loss[row] = 0.f;
    return;
  }
  float q[SS_MAXC], dq[SS_MAXC];
  float qn = 0.f;
#pragma unroll
  for (int r = 0; r < SS_MAXC; ++r) {
    int c = lane + 32 * r;
    q[r] = c < dim ? o[(int64_t)row * dim + c] : 0.f;
    dq[r] = 0.f;
    qn += q[r] * q[r];
  }
  const float onorm = sqrtf(warp_sum(qn));
  const float qinv = 1.f / fmaxf(onorm, eps);
#pragma unroll
  for (int r = 0; r < SS_MAXC; ++r) {
    q[r] *= qinv;
    int c = lane + 32 * r;
    if (c < dim) qr[c] = q[r];
  }
  const float inv_t = 1.f / temperature;
  float mx = -INFINITY;
  for (int k = 0; k < kc; ++k) {
    const int64_t id = ss_item(pos_ids, neg_ids, row, num_neg, k);
    const float* e = items_n + id * dim;
    float dot = 0.f;
#pragma unroll
    for (int r = 0; r < SS_MAXC; ++r) {
      int c = lane + 32 * r;
      if (c < dim) dot += e[c] * q[r];
    }
    dot = warp_sum(dot);
    float l = (k > 0 && id == pid) ? -INFINITY : dot * inv_t;
    if (lane == 0) lg[k] = l;
    mx = fmaxf(mx, l);
  }
  __syncwarp();
  float se = 0.f;
  for (int k = lane; k < kc; k += 32) se += __expf(lg[k] - mx);
  se = warp_sum(se);
  const float lse = mx + __logf(se);
  if (lane == 0) loss[row] = weight * (lse - lg[0]);
  for (int k = lane; k < kc; k += 32)
    cr[k] = weight * (__expf(lg[k] - lse) - (k == 0 ? 1.f : 0.f)) * inv_t;
  __syncwarp();
  for (int k = 0; k < kc; ++k) {
    const float dl = cr[k];
    if (dl == 0.f) continue;
    const float* e = items_n + ss_item(pos_ids, neg_ids, row, num_neg, k) * dim;
#pragma unroll
    for (int r = 0; r < SS_MAXC; ++r) {
      int c = lane + 32 * r;
      if (c < dim) dq[r] += dl * e[c];
    }
  }
  float qd = 0.f;
#pragma unroll
  for (int r = 0; r < SS_MAXC; ++r) qd += q[r] * dq[r];
  qd = warp_sum(qd);
  const bool clamped = onorm < eps;
#pragma unroll
  for (int r = 0; r < SS_MAXC; ++r) {
    int c = lane + 32 * r;
    if (c < dim) dor[c] = clamped ? dq[r] * qinv : (dq[r] - q[r] * qd) * qinv;
  }
}

// counts[id] += 1 for every (row, k) pair.
extern "C" __global__ void hstu_pair_count(const int64_t* pos_ids, const int64_t* neg_ids,
                                           int* counts, int64_t rows, int num_neg) {
  const int kc = num_neg + 1;
  GRID_STRIDE(i, rows * kc) {
    atomicAdd(counts + ss_item(pos_ids, neg_ids, i / kc, num_neg, (int)(i % kc)), 1);
  }
}

// offsets[0..n] = exclusive prefix sum of counts[0..n) (offsets[n] = total); cursor = offsets.
// One block of 1024 threads, chunked.
extern "C" __global__ void hstu_exclusive_scan(const int* counts, int* offsets, int* cursor,
                                               int n) {
  __shared__ int warp_tot[32];
  __shared__ int carry;
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  const int lane = threadIdx.x & 31, w = threadIdx.x / 32;
  for (int base = 0; base < n; base += blockDim.x) {
    int i = base + threadIdx.x;
    int v = i < n ? counts[i] : 0, x = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      int y = __shfl_up_sync(0xffffffffu, x, o);
      if (lane >= o) x += y;
    }
    if (lane == 31) warp_tot[w] = x;
    __syncthreads();
    if (w == 0) {
      int t = lane < blockDim.x / 32 ? warp_tot[lane] : 0, s = t;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        int y = __shfl_up_sync(0xffffffffu, s, o);
        if (lane >= o) s += y;
      }
      warp_tot[lane] = s - t;  // exclusive over warps
    }
    __syncthreads();
    int excl = carry + warp_tot[w] + x - v;
    if (i < n) offsets[i] = cursor[i] = excl;
    __syncthreads();
    if (threadIdx.x == blockDim.x - 1) carry = excl + v;
    __syncthreads();
  }
  if (threadIdx.x == 0) offsets[n] = cursor[n] = carry;
}

// pairs[cursor[id]++] = flat pair index r * (K + 1) + k.
extern "C" __global__ void hstu_pair_scatter(const int64_t* pos_ids, const int64_t* neg_ids,
                                             int* cursor, int* pairs, int64_t rows, int num_neg) {
  const int kc = num_neg + 1;
  GRID_STRIDE(i, rows * kc) {
    int64_t id = ss_item(pos_ids, neg_ids, i / kc, num_neg, (int)(i % kc));
    pairs[atomicAdd(cursor + id, 1)] = (int)i;
  }
}

// d_items_n[id] = sum over the pairs of item id of coef * q_n[row]; one warp per item.
extern "C" __global__ void hstu_item_grad_from_pairs(const int* offsets, const int* pairs,
                                                     const float* coef, const float* q_n,
                                                     float* d_items_n, int items, int dim,
                                                     int num_neg) {
  int id = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (id >= items) return;
  float acc[SS_MAXC];
#pragma unroll
  for (int r = 0; r < SS_MAXC; ++r) acc[r] = 0.f;
  const int kc = num_neg + 1;
  for (int p = offsets[id]; p < offsets[id + 1]; ++p) {
    const int pair = pairs[p];
    const float c = coef[pair];
    if (c == 0.f) continue;
    const float* qr = q_n + (int64_t)(pair / kc) * dim;
#pragma unroll
    for (int r = 0; r < SS_MAXC; ++r) {
      int col = lane + 32 * r;
      if (col < dim) acc[r] += c * qr[col];
    }
  }
#pragma unroll
  for (int r = 0; r < SS_MAXC; ++r) {
    int col = lane + 32 * r;
    if (col < dim) d_items_n[(int64_t)id * dim + col] = acc[r];
  }
}
