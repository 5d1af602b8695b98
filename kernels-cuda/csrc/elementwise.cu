// Element-wise and small fused kernels of the HSTU layer and trainer, f32 (hstu-spec 1 and 7):
// layer norm (no affine) fwd/bwd, SiLU fwd/bwd, gating u * x with dropout fwd/bwd, embedding
// gather (item * scale + position) and its scatter-add backward, sampled-softmax loss with its
// gradient, AdamW. Row kernels use one warp per row (block 256 = 8 rows); flat kernels grid-stride.

#include "hstu_device_utils.cuh"

// y = (x - mean) * rstd per row of [rows, dim]; saves rstd [rows] for the backward.
extern "C" __global__ void hstu_layer_norm_fwd_f32(const float* x, float* y, float* rstd, int rows,
                                                   int dim, float eps) {
  int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float* xr = x + (int64_t)row * dim;
  float s = 0.f;
  for (int c = lane; c < dim; c += 32) s += xr[c];
  float mean = warp_sum(s) / dim;
  float v = 0.f;
  for (int c = lane; c < dim; c += 32) {
    float d = xr[c] - mean;
    v += d * d;
  }
  float r = rsqrtf(warp_sum(v) / dim + eps);
  for (int c = lane; c < dim; c += 32) y[(int64_t)row * dim + c] = (xr[c] - mean) * r;
  if (lane == 0) rstd[row] = r;
}

// dx = rstd * (dy - mean(dy) - y * mean(dy * y)), y the normalised forward output.
extern "C" __global__ void hstu_layer_norm_bwd_f32(const float* dy, const float* y,
                                                   const float* rstd, float* dx, int rows, int dim) {
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
  float r = rstd[row];
  for (int c = lane; c < dim; c += 32) dx[(int64_t)row * dim + c] = r * (g[c] - a - yr[c] * b);
}

extern "C" __global__ void hstu_silu_fwd_f32(const float* x, float* y, int64_t n) {
  GRID_STRIDE(i, n) {
    float v = x[i];
    y[i] = v / (1.f + __expf(-v));
  }
}
// dx = dy * sig(x) * (1 + x (1 - sig(x))).
extern "C" __global__ void hstu_silu_bwd_f32(const float* x, const float* dy, float* dx, int64_t n) {
  GRID_STRIDE(i, n) {
    float v = x[i], s = 1.f / (1.f + __expf(-v));
    dx[i] = dy[i] * s * (1.f + v * (1.f - s));
  }
}

// y = dropout(u * a): keep with probability 1 - rate, scaled by 1 / (1 - rate); rate 0 = off.
extern "C" __global__ void hstu_gate_dropout_fwd_f32(const float* u, const float* a, float* y,
                                                     int64_t n, float rate, uint64_t seed) {
  float scale = 1.f / (1.f - rate);
  GRID_STRIDE(i, n) {
    float keep = (rate > 0.f && hash_uniform(seed, i) < rate) ? 0.f : scale;
    y[i] = u[i] * a[i] * keep;
  }
}
extern "C" __global__ void hstu_gate_dropout_bwd_f32(const float* u, const float* a, const float* dy,
                                                     float* du, float* da, int64_t n, float rate,
                                                     uint64_t seed) {
  float scale = 1.f / (1.f - rate);
  GRID_STRIDE(i, n) {
    float keep = (rate > 0.f && hash_uniform(seed, i) < rate) ? 0.f : scale;
    float g = dy[i] * keep;
    du[i] = g * a[i];
    da[i] = g * u[i];
  }
}

// out[t] = item_emb[ids[t]] * scale + pos_emb[pos[t]], [tokens, dim].
extern "C" __global__ void hstu_embedding_fwd_f32(const float* item_emb, const float* pos_emb,
                                                  const int64_t* ids, const int64_t* pos, float* out,
                                                  int64_t tokens, int dim, float scale) {
  GRID_STRIDE(i, tokens * dim) {
    int64_t t = i / dim;
    int c = (int)(i % dim);
    out[i] = item_emb[ids[t] * dim + c] * scale + pos_emb[pos[t] * dim + c];
  }
}
// Scatter-add backward: ditem[ids[t]] += dout[t] * scale, dpos[pos[t]] += dout[t] (atomics).
extern "C" __global__ void hstu_embedding_bwd_f32(const float* dout, const int64_t* ids,
                                                  const int64_t* pos, float* ditem, float* dpos,
                                                  int64_t tokens, int dim, float scale) {
  GRID_STRIDE(i, tokens * dim) {
    int64_t t = i / dim;
    int c = (int)(i % dim);
    atomicAdd(ditem + ids[t] * dim + c, dout[i] * scale);
    atomicAdd(dpos + pos[t] * dim + c, dout[i]);
  }
}

// Sampled softmax (hstu-spec 7), one warp per query row p (dim <= 1024, K <= 255):
//   q = o_p / max(|o_p|, eps), e_c = normalize(item_emb[c]) for c in {pos_p, neg_p[0..K)},
//   logits = q . e_c / temperature, a negative equal to the positive is masked (-inf),
//   loss_p = logsumexp(logits) - logits[0]; rows with pos_p == 0 are skipped (loss 0).
// Gradients of weight * loss_p: d_o [P, dim] written, d_item_emb scatter-added (atomics).
extern "C" __global__ void hstu_sampled_softmax_f32(const float* o, const float* item_emb,
                                                    const int64_t* pos_ids, const int64_t* neg_ids,
                                                    float* loss, float* d_o, float* d_item, int rows,
                                                    int dim, int num_neg, float temperature,
                                                    float eps, float weight) {
  extern __shared__ float sh[];  // per warp: num_neg + 1 logits
  const int wpb = blockDim.x / 32, w = threadIdx.x / 32, lane = threadIdx.x & 31;
  const int row = blockIdx.x * wpb + w;
  if (row >= rows) return;
  float* lg = sh + w * (num_neg + 1);
  const int64_t pid = pos_ids[row];
  float* dor = d_o + (int64_t)row * dim;
  if (pid == 0) {
    for (int c = lane; c < dim; c += 32) dor[c] = 0.f;
    if (lane == 0) loss[row] = 0.f;
    return;
  }
  constexpr int MAXC = 32;  // dim <= 32 * MAXC
  float q[MAXC], dq[MAXC];
  float qn = 0.f;
#pragma unroll
  for (int r = 0; r < MAXC; ++r) {
    int c = lane + 32 * r;
    q[r] = c < dim ? o[(int64_t)row * dim + c] : 0.f;
    dq[r] = 0.f;
    qn += q[r] * q[r];
  }
  const float onorm = sqrtf(warp_sum(qn));
  const float qinv = 1.f / fmaxf(onorm, eps);
#pragma unroll
  for (int r = 0; r < MAXC; ++r) q[r] *= qinv;
  auto item = [&](int k) -> int64_t { return k == 0 ? pid : neg_ids[(int64_t)row * num_neg + k - 1]; };
  float mx = -INFINITY;
  for (int k = 0; k <= num_neg; ++k) {
    const int64_t id = item(k);
    const float* e = item_emb + id * dim;
    float dot = 0.f, en = 0.f;
#pragma unroll
    for (int r = 0; r < MAXC; ++r) {
      int c = lane + 32 * r;
      float x = c < dim ? e[c] : 0.f;
      dot += x * q[r];
      en += x * x;
    }
    dot = warp_sum(dot);
    en = warp_sum(en);
    float l = (k > 0 && id == pid) ? -INFINITY : dot / (fmaxf(sqrtf(en), eps) * temperature);
    if (lane == 0) lg[k] = l;
    mx = fmaxf(mx, l);
  }
  __syncwarp();
  float se = 0.f;
  for (int k = lane; k <= num_neg; k += 32) se += __expf(lg[k] - mx);
  se = warp_sum(se);
  const float lse = mx + __logf(se);
  if (lane == 0) loss[row] = weight * (lse - lg[0]);
  for (int k = 0; k <= num_neg; ++k) {
    const int64_t id = item(k);
    const float pk = __expf(lg[k] - lse);
    const float dl = weight * (pk - (k == 0 ? 1.f : 0.f)) / temperature;  // d loss / d (q . e_hat)
    if (dl == 0.f) continue;
    const float* e = item_emb + id * dim;
    float en = 0.f, dot = 0.f;
#pragma unroll
    for (int r = 0; r < MAXC; ++r) {
      int c = lane + 32 * r;
      float x = c < dim ? e[c] : 0.f;
      en += x * x;
      dot += x * q[r];
    }
    const float enorm = fmaxf(sqrtf(warp_sum(en)), eps);
    dot = warp_sum(dot) / enorm;  // q . e_hat
    const bool e_clamped = sqrtf(warp_sum(en)) < eps;
#pragma unroll
    for (int r = 0; r < MAXC; ++r) {
      int c = lane + 32 * r;
      if (c < dim) {
        float eh = e[c] / enorm;
        dq[r] += dl * eh;
        // d e = dl * (q - e_hat (q . e_hat)) / |e|   (plain q / eps when the norm is clamped)
        float g = e_clamped ? dl * q[r] / enorm : dl * (q[r] - eh * dot) / enorm;
        atomicAdd(d_item + id * dim + c, g);
      }
    }
  }
  // Through q = o / |o|: d o = (dq - q (q . dq)) / |o|.
  float qd = 0.f;
#pragma unroll
  for (int r = 0; r < MAXC; ++r) qd += q[r] * dq[r];
  qd = warp_sum(qd);
  const bool o_clamped = onorm < eps;
#pragma unroll
  for (int r = 0; r < MAXC; ++r) {
    int c = lane + 32 * r;
    if (c < dim) dor[c] = o_clamped ? dq[r] * qinv : (dq[r] - q[r] * qd) * qinv;
  }
}

// AdamW (decoupled weight decay), bias-corrected: p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p).
// bc1 = 1 - beta1^t, bc2 = 1 - beta2^t precomputed on the host.
extern "C" __global__ void hstu_adamw_f32(float* p, const float* g, float* m, float* v, int64_t n,
                                          float lr, float beta1, float beta2, float eps, float wd,
                                          float bc1, float bc2) {
  GRID_STRIDE(i, n) {
    float gi = g[i];
    float mi = beta1 * m[i] + (1.f - beta1) * gi;
    float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float upd = (mi / bc1) / (sqrtf(vi / bc2) + eps);
    p[i] -= lr * (upd + wd * p[i]);
  }
}
