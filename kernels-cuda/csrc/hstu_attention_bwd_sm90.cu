// HSTU attention backward (hstu-spec section 6), deterministic (no atomics on dq/dk/dv):
//   hstu_attention_bwd_dkdv_*: grid (ceil(max_len/BNK), heads, batch); each warp owns 16 keys and
//     loops over query tiles: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += alpha dS^T Q.
//     With rab it also sums dS into dpos_w / dts_w (shared-memory histograms, then atomics).
//   hstu_attention_bwd_dq_*: grid (ceil(max_len/BM), heads, batch); each warp owns 16 queries
//     and loops over key tiles: S = Q K^T, dP = dO V^T, dQ += alpha dS K.
// Tensors [total_tokens, heads, D] bf16 jagged by seq_offsets; outputs written (not accumulated).
#include "hstu_attention_common_sm90.cuh"
#include "hstu_device_utils.cuh"

namespace hstu {

// a = valid * silu(x) / n, ds = valid * g * sig * (1 + x (1 - sig)) / n, x = alpha s + rab.
__device__ __forceinline__ void silu_bwd(float x, float g, float inv_n, float& a, float& ds) {
  float sg = sigmoid_fast(x);
  a = x * sg * inv_n;
  ds = g * sg * fmaf(x, 1.f - sg, 1.f) * inv_n;
}

template <int D, int MT, int BMQ, int NW, bool RAB, bool DO_DK, bool DO_DV>
__device__ __forceinline__ void attn_bwd_dkdv(const HstuAttnParams& p) {
  constexpr int NT = NW * 32;
  constexpr int WK = 16 * MT;  // keys per warp
  constexpr int BNK = WK * NW;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);  // [BNK][D]
  bf16* sV = sK + BNK * D;                        // [BNK][D]
  bf16* sQ = sV + BNK * D;                        // [2][BMQ][D]
  bf16* sO = sQ + 2 * BMQ * D;                    // [2][BMQ][D]  (dout)
  float* hpos = reinterpret_cast<float*>(sO + 2 * BMQ * D);  // [2 rab_n - 1]  (RAB)
  float* hts = hpos + (2 * p.rab_n - 1);                      // [num_buckets + 1]
  float* sdiag = hts + (p.num_buckets + 1);                   // [NW][WK][BMQ + 1] dS^T scratch

  const int nblk = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t start = p.seq_offsets[b];
  const int L = (int)(p.seq_offsets[b + 1] - start);
  const int j0 = nblk * BNK;
  if (j0 >= L) return;
  const int U = L - (p.num_targets ? (int)p.num_targets[b] : 0);
  const SeqMask mask{L, U, p.max_attn_len};
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t stride = p.token_stride;
  const int64_t hoff = start * stride + h * D;
  const int wj0 = j0 + warp * WK;  // first key of this warp

  // Query rows that can see keys [j0, j0 + BNK).
  int qlo = (j0 / BMQ) * BMQ;
  int qhi = L;
  if (j0 >= U) qhi = min(L, j0 + BNK);  // candidate keys are seen by themselves only
  else if (p.max_attn_len > 0 && U == L) qhi = min(L, j0 + BNK + p.max_attn_len);
  const int nblocks = (qhi - qlo + BMQ - 1) / BMQ;

  Rab rab;
  if (RAB) {
    rab = Rab{p.pos_w, p.ts_w, p.timestamps + start, p.t_next + start,
              0.69314718f / p.bucket_divisor, p.rab_n, p.num_buckets, U};
    const int nh = 2 * p.rab_n - 1 + p.num_buckets + 1;
    for (int x = tid; x < nh; x += NT) hpos[x] = 0.f;
  }

  load_tile<BNK, D, NT>(sK, p.k + hoff, stride, j0, L, tid);
  load_tile<BNK, D, NT>(sV, p.v + hoff, stride, j0, L, tid);
  load_tile<BMQ, D, NT>(sQ, p.q + hoff, stride, qlo, L, tid);
  load_tile<BMQ, D, NT>(sO, p.dout + hoff, stride, qlo, L, tid);
  cp_async_commit();

  constexpr int DKN = DO_DK ? D / 8 : 1;
  constexpr int DVN = DO_DV ? D / 8 : 1;
  float dk[MT][DKN][4];
  float dv[MT][DVN][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int a = 0; a < DKN; ++a) dk[mt][a][0] = dk[mt][a][1] = dk[mt][a][2] = dk[mt][a][3] = 0.f;
#pragma unroll
    for (int a = 0; a < DVN; ++a) dv[mt][a][0] = dv[mt][a][1] = dv[mt][a][2] = dv[mt][a][3] = 0.f;
  }

  for (int it = 0; it < nblocks; ++it) {
    const int i0 = qlo + it * BMQ;
    const int st = it & 1;
    if (it + 1 < nblocks) {
      load_tile<BMQ, D, NT>(sQ + (st ^ 1) * BMQ * D, p.q + hoff, stride, i0 + BMQ, L, tid);
      load_tile<BMQ, D, NT>(sO + (st ^ 1) * BMQ * D, p.dout + hoff, stride, i0 + BMQ, L, tid);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* q_t = sQ + st * BMQ * D;
    const bf16* o_t = sO + st * BMQ * D;

    // Skip when every key of this warp is >= L or lies after every query row of the tile.
    if (wj0 < L && wj0 <= min(i0 + BMQ, L) - 1) {
      float s[MT][BMQ / 8][4];  // S^T: rows = this warp's keys, cols = BMQ queries
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int a = 0; a < BMQ / 8; ++a) s[mt][a][0] = s[mt][a][1] = s[mt][a][2] = s[mt][a][3] = 0.f;
      warp_gemm_nt_mt<D, BMQ, MT>(s, sK, warp * WK, q_t, 0, lane);
      float gp[MT][DO_DK ? BMQ / 8 : 1][4];  // dP^T
      if constexpr (DO_DK) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int a = 0; a < BMQ / 8; ++a)
            gp[mt][a][0] = gp[mt][a][1] = gp[mt][a][2] = gp[mt][a][3] = 0.f;
        warp_gemm_nt_mt<D, BMQ, MT>(gp, sV, warp * WK, o_t, 0, lane);
      }

      const bool full = mask.tile_full(i0, BMQ, wj0, WK);
      // d_rab: pos_w by diagonals through a per-warp scratch tile when the whole tile is history
      // (pos index n-1+j-i), else per element; ts_w by runs of equal buckets per thread.
      const bool rab_grad = RAB && DO_DK && p.dpos_w != nullptr;
      const bool diag = i0 + BMQ <= U && j0 + BNK <= U;
      float* sd = sdiag + warp * WK * (BMQ + 1);
      int run_t = -1;
      float run_sum = 0.f;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int nt = 0; nt < BMQ / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int jl = mt * 16 + g + 8 * (e >> 1), il = nt * 8 + 2 * t4 + (e & 1);
            const int j = wj0 + jl;
            const int i = i0 + il;
            bool ok = full || mask.valid(i, j);
            float x = p.alpha * s[mt][nt][e];
            int pidx = 0, tidx = 0;
            if (RAB && ok) {
              pidx = rab.pos_index(i, j);
              tidx = rab.ts_index(rab.t_next[i], j);
              x += __ldg(rab.pos_w + pidx) + __ldg(rab.ts_w + tidx);
            }
            float a, ds;
            silu_bwd(x, DO_DK ? gp[mt][DO_DK ? nt : 0][e] : 0.f, p.inv_n, a, ds);
            ds = ok ? ds : 0.f;
            s[mt][nt][e] = ok ? a : 0.f;
            if (DO_DK) gp[mt][DO_DK ? nt : 0][e] = ds;
            if (rab_grad) {
              if (diag) sd[jl * (BMQ + 1) + il] = ds;
              else if (ok) atomicAdd(hpos + pidx, ds);
              if (ok) {
                if (tidx != run_t) {
                  if (run_t >= 0) atomicAdd(hts + run_t, run_sum);
                  run_t = tidx;
                  run_sum = 0.f;
                }
                run_sum += ds;
              }
            }
          }
        }
      }
      if (rab_grad) {
        if (run_t >= 0) atomicAdd(hts + run_t, run_sum);
        if (diag) {
          __syncwarp();
          const int base = p.rab_n - 1 + (wj0 - i0) - (BMQ - 1);
          for (int dd = lane; dd < WK + BMQ - 1; dd += 32) {
            float acc = 0.f;
#pragma unroll
            for (int jl = 0; jl < WK; ++jl) {
              int il = jl - dd + BMQ - 1;
              if (il >= 0 && il < BMQ) acc += sd[jl * (BMQ + 1) + il];
            }
            int pidx = base + dd;
            if (acc != 0.f && pidx >= 0 && pidx < 2 * p.rab_n - 1) atomicAdd(hpos + pidx, acc);
          }
          __syncwarp();
        }
      }
      if constexpr (DO_DV) {
        uint32_t pf[MT][BMQ / 16][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) acc_to_afrag<BMQ>(pf[mt], s[mt]);
        warp_gemm_pn_mt<BMQ, D, MT>(dv, pf, o_t, 0, lane);
      }
      if constexpr (DO_DK) {
        uint32_t pf[MT][BMQ / 16][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) acc_to_afrag<BMQ>(pf[mt], gp[mt]);
        warp_gemm_pn_mt<BMQ, D, MT>(dk, pf, q_t, 0, lane);
      }
    }
    __syncthreads();
  }

  // Epilogue: keys < L only.
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int j = wj0 + mt * 16 + g + 8 * r;
      if (j < L) {
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt) {
          const int64_t off = hoff + (int64_t)j * stride + nt * 8 + 2 * t4;
          if (DO_DK)
            *reinterpret_cast<uint32_t*>(p.dk + off) =
                pack_bf16(p.alpha * dk[mt][DO_DK ? nt : 0][2 * r],
                          p.alpha * dk[mt][DO_DK ? nt : 0][2 * r + 1]);
          if (DO_DV)
            *reinterpret_cast<uint32_t*>(p.dv + off) =
                pack_bf16(dv[mt][DO_DV ? nt : 0][2 * r], dv[mt][DO_DV ? nt : 0][2 * r + 1]);
        }
      }
    }
  if (RAB && DO_DK && p.dpos_w) {
    __syncthreads();
    const int np = 2 * p.rab_n - 1;
    for (int x = tid; x < np; x += NT)
      if (hpos[x] != 0.f) atomicAdd(p.dpos_w + x, hpos[x]);
    for (int x = tid; x <= p.num_buckets; x += NT)
      if (hts[x] != 0.f) atomicAdd(p.dts_w + x, hts[x]);
  }
}

template <int D, int MT, int BN, int NW, bool RAB>
__device__ __forceinline__ void attn_bwd_dq(const HstuAttnParams& p) {
  constexpr int NT = NW * 32;
  constexpr int WR = 16 * MT;
  constexpr int BM = WR * NW;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [BM][D]
  bf16* sO = sQ + BM * D;                         // [BM][D] (dout)
  bf16* sK = sO + BM * D;                         // [2][BN][D]
  bf16* sV = sK + 2 * BN * D;                     // [2][BN][D]

  const int mblk = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t start = p.seq_offsets[b];
  const int L = (int)(p.seq_offsets[b + 1] - start);
  const int i0 = mblk * BM;
  if (i0 >= L) return;
  const int U = L - (p.num_targets ? (int)p.num_targets[b] : 0);
  const SeqMask mask{L, U, p.max_attn_len};
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t stride = p.token_stride;
  const int64_t hoff = start * stride + h * D;

  const int hi = min(L, i0 + BM);
  int lo = 0;
  if (p.max_attn_len > 0) lo = max(0, min(i0, U) - p.max_attn_len);
  lo = (lo / BN) * BN;
  const int nblocks = (hi - lo + BN - 1) / BN;
  const int wr0 = i0 + warp * WR;
  const int wlast = min(wr0 + WR, L) - 1;

  Rab rab;
  int64_t tn[MT][2];
  if (RAB) {
    rab = Rab{p.pos_w, p.ts_w, p.timestamps + start, p.t_next + start,
              0.69314718f / p.bucket_divisor, p.rab_n, p.num_buckets, U};
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        int i = wr0 + mt * 16 + g + 8 * r;
        tn[mt][r] = i < L ? rab.t_next[i] : 0;
      }
  }

  load_tile<BM, D, NT>(sQ, p.q + hoff, stride, i0, L, tid);
  load_tile<BM, D, NT>(sO, p.dout + hoff, stride, i0, L, tid);
  load_tile<BN, D, NT>(sK, p.k + hoff, stride, lo, L, tid);
  load_tile<BN, D, NT>(sV, p.v + hoff, stride, lo, L, tid);
  cp_async_commit();

  float dq[MT][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int a = 0; a < D / 8; ++a) dq[mt][a][0] = dq[mt][a][1] = dq[mt][a][2] = dq[mt][a][3] = 0.f;

  for (int it = 0; it < nblocks; ++it) {
    const int j0 = lo + it * BN;
    const int st = it & 1;
    if (it + 1 < nblocks) {
      load_tile<BN, D, NT>(sK + (st ^ 1) * BN * D, p.k + hoff, stride, j0 + BN, L, tid);
      load_tile<BN, D, NT>(sV + (st ^ 1) * BN * D, p.v + hoff, stride, j0 + BN, L, tid);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* k_t = sK + st * BN * D;
    const bf16* v_t = sV + st * BN * D;

    if (wlast >= j0) {
      float s[MT][BN / 8][4], gp[MT][BN / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int a = 0; a < BN / 8; ++a) {
          s[mt][a][0] = s[mt][a][1] = s[mt][a][2] = s[mt][a][3] = 0.f;
          gp[mt][a][0] = gp[mt][a][1] = gp[mt][a][2] = gp[mt][a][3] = 0.f;
        }
      warp_gemm_nt_mt<D, BN, MT>(s, sQ, warp * WR, k_t, 0, lane);
      warp_gemm_nt_mt<D, BN, MT>(gp, sO, warp * WR, v_t, 0, lane);

      const bool full = mask.tile_full(wr0, WR, j0, BN);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int i = wr0 + mt * 16 + g + 8 * (e >> 1);
            const int j = j0 + nt * 8 + 2 * t4 + (e & 1);
            bool ok = full || mask.valid(i, j);
            float x = p.alpha * s[mt][nt][e];
            if (RAB && ok) x += rab.bias(tn[mt][e >> 1], i, j);
            float a, ds;
            silu_bwd(x, gp[mt][nt][e], p.inv_n, a, ds);
            gp[mt][nt][e] = ok ? ds : 0.f;
          }
        }
      uint32_t pf[MT][BN / 16][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) acc_to_afrag<BN>(pf[mt], gp[mt]);
      warp_gemm_pn_mt<BN, D, MT>(dq, pf, k_t, 0, lane);
    }
    __syncthreads();
  }

#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = wr0 + mt * 16 + g + 8 * r;
      if (i < L) {
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt) {
          const int64_t off = hoff + (int64_t)i * stride + nt * 8 + 2 * t4;
          *reinterpret_cast<uint32_t*>(p.dq + off) =
              pack_bf16(p.alpha * dq[mt][nt][2 * r], p.alpha * dq[mt][nt][2 * r + 1]);
        }
      }
    }
}

// Previous version (16 keys / rows per warp), kept as variant 3.
template <int D, int BNK, int BMQ, int NW, bool RAB, bool DO_DK, bool DO_DV>
__device__ __forceinline__ void attn_bwd_dkdv_legacy(const HstuAttnParams& p) {
  constexpr int NT = NW * 32;
  static_assert(BNK == 16 * NW, "one warp per 16 keys");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);  // [BNK][D]
  bf16* sV = sK + BNK * D;                        // [BNK][D]
  bf16* sQ = sV + BNK * D;                        // [2][BMQ][D]
  bf16* sO = sQ + 2 * BMQ * D;                    // [2][BMQ][D]  (dout)
  float* hpos = reinterpret_cast<float*>(sO + 2 * BMQ * D);  // [2 rab_n - 1]  (RAB)
  float* hts = hpos + (2 * p.rab_n - 1);                      // [num_buckets + 1]
  float* sdiag = hts + (p.num_buckets + 1);                   // [NW][16][BMQ + 1] dS^T scratch

  const int nblk = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t start = p.seq_offsets[b];
  const int L = (int)(p.seq_offsets[b + 1] - start);
  const int j0 = nblk * BNK;
  if (j0 >= L) return;
  const int U = L - (p.num_targets ? (int)p.num_targets[b] : 0);
  const SeqMask mask{L, U, p.max_attn_len};
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t stride = p.token_stride;
  const int64_t hoff = start * stride + h * D;

  // Query rows that can see keys [j0, j0 + BNK).
  int qlo = (j0 / BMQ) * BMQ;
  int qhi = L;
  if (j0 >= U) qhi = min(L, j0 + BNK);  // candidate keys are seen by themselves only
  else if (p.max_attn_len > 0 && U == L) qhi = min(L, j0 + BNK + p.max_attn_len);
  const int nblocks = (qhi - qlo + BMQ - 1) / BMQ;

  Rab rab;
  if (RAB) {
    rab = Rab{p.pos_w, p.ts_w, p.timestamps + start, p.t_next + start, 0.69314718f / p.bucket_divisor, p.rab_n,
              p.num_buckets, U};
    const int nh = 2 * p.rab_n - 1 + p.num_buckets + 1;
    for (int x = tid; x < nh; x += NT) hpos[x] = 0.f;
  }

  load_tile<BNK, D, NT>(sK, p.k + hoff, stride, j0, L, tid);
  load_tile<BNK, D, NT>(sV, p.v + hoff, stride, j0, L, tid);
  load_tile<BMQ, D, NT>(sQ, p.q + hoff, stride, qlo, L, tid);
  load_tile<BMQ, D, NT>(sO, p.dout + hoff, stride, qlo, L, tid);
  cp_async_commit();

  float dk[DO_DK ? D / 8 : 1][4];
  float dv[DO_DV ? D / 8 : 1][4];
#pragma unroll
  for (int a = 0; a < (DO_DK ? D / 8 : 1); ++a) dk[a][0] = dk[a][1] = dk[a][2] = dk[a][3] = 0.f;
#pragma unroll
  for (int a = 0; a < (DO_DV ? D / 8 : 1); ++a) dv[a][0] = dv[a][1] = dv[a][2] = dv[a][3] = 0.f;

  for (int it = 0; it < nblocks; ++it) {
    const int i0 = qlo + it * BMQ;
    const int st = it & 1;
    if (it + 1 < nblocks) {
      load_tile<BMQ, D, NT>(sQ + (st ^ 1) * BMQ * D, p.q + hoff, stride, i0 + BMQ, L, tid);
      load_tile<BMQ, D, NT>(sO + (st ^ 1) * BMQ * D, p.dout + hoff, stride, i0 + BMQ, L, tid);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* q_t = sQ + st * BMQ * D;
    const bf16* o_t = sO + st * BMQ * D;

    float s[BMQ / 8][4];  // S^T: rows = this warp's 16 keys, cols = BMQ queries
#pragma unroll
    for (int a = 0; a < BMQ / 8; ++a) s[a][0] = s[a][1] = s[a][2] = s[a][3] = 0.f;
    warp_gemm_nt<D, BMQ>(s, sK, warp * 16, q_t, 0, lane);
    float gp[DO_DK ? BMQ / 8 : 1][4];  // dP^T
    if (DO_DK) {
#pragma unroll
      for (int a = 0; a < BMQ / 8; ++a) gp[a][0] = gp[a][1] = gp[a][2] = gp[a][3] = 0.f;
      warp_gemm_nt<D, BMQ>(gp, sV, warp * 16, o_t, 0, lane);
    }

    const bool full = mask.tile_full(i0, BMQ, j0, BNK);
    // d_rab: pos_w by diagonals through a per-warp scratch tile when the whole tile is history
    // (pos index n-1+j-i), else per element; ts_w by runs of equal buckets per thread.
    const bool rab_grad = RAB && DO_DK && p.dpos_w != nullptr;
    const bool diag = i0 + BMQ <= U && j0 + BNK <= U;
    float* sd = sdiag + warp * 16 * (BMQ + 1);
    int run_t = -1;
    float run_sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < BMQ / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int jl = g + 8 * (e >> 1), il = nt * 8 + 2 * t4 + (e & 1);
        const int j = j0 + warp * 16 + jl;
        const int i = i0 + il;
        bool ok = full || mask.valid(i, j);
        float x = p.alpha * s[nt][e];
        int pidx = 0, tidx = 0;
        if (RAB && ok) {
          pidx = rab.pos_index(i, j);
          tidx = rab.ts_index(rab.t_next[i], j);
          x += __ldg(rab.pos_w + pidx) + __ldg(rab.ts_w + tidx);
        }
        float a, ds;
        silu_bwd(x, DO_DK ? gp[DO_DK ? nt : 0][e] : 0.f, p.inv_n, a, ds);
        ds = ok ? ds : 0.f;
        s[nt][e] = ok ? a : 0.f;
        if (DO_DK) gp[DO_DK ? nt : 0][e] = ds;
        if (rab_grad) {
          if (diag) sd[jl * (BMQ + 1) + il] = ds;
          else if (ok) atomicAdd(hpos + pidx, ds);
          if (ok) {
            if (tidx != run_t) {
              if (run_t >= 0) atomicAdd(hts + run_t, run_sum);
              run_t = tidx;
              run_sum = 0.f;
            }
            run_sum += ds;
          }
        }
      }
    }
    if (rab_grad) {
      if (run_t >= 0) atomicAdd(hts + run_t, run_sum);
      if (diag) {
        __syncwarp();
        const int base = p.rab_n - 1 + (j0 + warp * 16 - i0) - (BMQ - 1);
        for (int dd = lane; dd < 16 + BMQ - 1; dd += 32) {
          float acc = 0.f;
#pragma unroll
          for (int jl = 0; jl < 16; ++jl) {
            int il = jl - dd + BMQ - 1;
            if (il >= 0 && il < BMQ) acc += sd[jl * (BMQ + 1) + il];
          }
          int pidx = base + dd;
          if (acc != 0.f && pidx >= 0 && pidx < 2 * p.rab_n - 1) atomicAdd(hpos + pidx, acc);
        }
        __syncwarp();
      }
    }
    if (DO_DV) {
      uint32_t pf[BMQ / 16][4];
      acc_to_afrag<BMQ>(pf, s);
      warp_gemm_pn<BMQ, D>(dv, pf, o_t, 0, lane);
    }
    if (DO_DK) {
      uint32_t pf[BMQ / 16][4];
      acc_to_afrag<BMQ>(pf, gp);
      warp_gemm_pn<BMQ, D>(dk, pf, q_t, 0, lane);
    }
    __syncthreads();
  }

  // Epilogue: keys < L only.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int j = j0 + warp * 16 + g + 8 * r;
    if (j < L) {
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) {
        const int64_t off = hoff + (int64_t)j * stride + nt * 8 + 2 * t4;
        if (DO_DK)
          *reinterpret_cast<uint32_t*>(p.dk + off) =
              pack_bf16(p.alpha * dk[DO_DK ? nt : 0][2 * r], p.alpha * dk[DO_DK ? nt : 0][2 * r + 1]);
        if (DO_DV)
          *reinterpret_cast<uint32_t*>(p.dv + off) =
              pack_bf16(dv[DO_DV ? nt : 0][2 * r], dv[DO_DV ? nt : 0][2 * r + 1]);
      }
    }
  }
  if (RAB && DO_DK && p.dpos_w) {
    __syncthreads();
    const int np = 2 * p.rab_n - 1;
    for (int x = tid; x < np; x += NT)
      if (hpos[x] != 0.f) atomicAdd(p.dpos_w + x, hpos[x]);
    for (int x = tid; x <= p.num_buckets; x += NT)
      if (hts[x] != 0.f) atomicAdd(p.dts_w + x, hts[x]);
  }
}

template <int D, int BM, int BN, int NW, bool RAB>
__device__ __forceinline__ void attn_bwd_dq_legacy(const HstuAttnParams& p) {
  constexpr int NT = NW * 32;
  static_assert(BM == 16 * NW, "one warp per 16 query rows");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [BM][D]
  bf16* sO = sQ + BM * D;                         // [BM][D] (dout)
  bf16* sK = sO + BM * D;                         // [2][BN][D]
  bf16* sV = sK + 2 * BN * D;                     // [2][BN][D]

  const int mblk = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t start = p.seq_offsets[b];
  const int L = (int)(p.seq_offsets[b + 1] - start);
  const int i0 = mblk * BM;
  if (i0 >= L) return;
  const int U = L - (p.num_targets ? (int)p.num_targets[b] : 0);
  const SeqMask mask{L, U, p.max_attn_len};
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t stride = p.token_stride;
  const int64_t hoff = start * stride + h * D;

  const int hi = min(L, i0 + BM);
  int lo = 0;
  if (p.max_attn_len > 0) lo = max(0, min(i0, U) - p.max_attn_len);
  lo = (lo / BN) * BN;
  const int nblocks = (hi - lo + BN - 1) / BN;

  Rab rab;
  int64_t tn[2] = {0, 0};
  if (RAB) {
    rab = Rab{p.pos_w, p.ts_w, p.timestamps + start, p.t_next + start, 0.69314718f / p.bucket_divisor, p.rab_n,
              p.num_buckets, U};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      int i = i0 + warp * 16 + g + 8 * r;
      tn[r] = i < L ? rab.t_next[i] : 0;
    }
  }

  load_tile<BM, D, NT>(sQ, p.q + hoff, stride, i0, L, tid);
  load_tile<BM, D, NT>(sO, p.dout + hoff, stride, i0, L, tid);
  load_tile<BN, D, NT>(sK, p.k + hoff, stride, lo, L, tid);
  load_tile<BN, D, NT>(sV, p.v + hoff, stride, lo, L, tid);
  cp_async_commit();

  float dq[D / 8][4];
#pragma unroll
  for (int a = 0; a < D / 8; ++a) dq[a][0] = dq[a][1] = dq[a][2] = dq[a][3] = 0.f;

  for (int it = 0; it < nblocks; ++it) {
    const int j0 = lo + it * BN;
    const int st = it & 1;
    if (it + 1 < nblocks) {
      load_tile<BN, D, NT>(sK + (st ^ 1) * BN * D, p.k + hoff, stride, j0 + BN, L, tid);
      load_tile<BN, D, NT>(sV + (st ^ 1) * BN * D, p.v + hoff, stride, j0 + BN, L, tid);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* k_t = sK + st * BN * D;
    const bf16* v_t = sV + st * BN * D;

    float s[BN / 8][4], gp[BN / 8][4];
#pragma unroll
    for (int a = 0; a < BN / 8; ++a) {
      s[a][0] = s[a][1] = s[a][2] = s[a][3] = 0.f;
      gp[a][0] = gp[a][1] = gp[a][2] = gp[a][3] = 0.f;
    }
    warp_gemm_nt<D, BN>(s, sQ, warp * 16, k_t, 0, lane);
    warp_gemm_nt<D, BN>(gp, sO, warp * 16, v_t, 0, lane);

    const bool full = mask.tile_full(i0, BM, j0, BN);
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = i0 + warp * 16 + g + 8 * (e >> 1);
        const int j = j0 + nt * 8 + 2 * t4 + (e & 1);
        bool ok = full || mask.valid(i, j);
        float x = p.alpha * s[nt][e];
        if (RAB && ok) x += rab.bias(tn[e >> 1], i, j);
        float a, ds;
        silu_bwd(x, gp[nt][e], p.inv_n, a, ds);
        gp[nt][e] = ok ? ds : 0.f;
      }
    }
    uint32_t pf[BN / 16][4];
    acc_to_afrag<BN>(pf, gp);
    warp_gemm_pn<BN, D>(dq, pf, k_t, 0, lane);
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = i0 + warp * 16 + g + 8 * r;
    if (i < L) {
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) {
        const int64_t off = hoff + (int64_t)i * stride + nt * 8 + 2 * t4;
        *reinterpret_cast<uint32_t*>(p.dq + off) =
            pack_bf16(p.alpha * dq[nt][2 * r], p.alpha * dq[nt][2 * r + 1]);
      }
    }
  }
}

}  // namespace hstu

// ---- instantiations (V = variant suffix; MT = m16 tiles per warp, rows per block 16 MT NW) ----
// Mirrored by dkdv_tile() / dq_tile() in src/attention.rs.
// dK/dV kernels: NAME "" = both, "_dk" / "_dv" = one of them (used for D = 256).
#define HSTU_BWD_DKDV(NAME, V, D, MT, BMQ, NW, DK, DV)                                       \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_bwd_dkdv##NAME##_d##D##V(const HstuAttnParams p) {                       \
    hstu::attn_bwd_dkdv<D, MT, BMQ, NW, false, DK, DV>(p);                                    \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_bwd_dkdv##NAME##_rab_d##D##V(const HstuAttnParams p) {                   \
    hstu::attn_bwd_dkdv<D, MT, BMQ, NW, true, DK, DV>(p);                                     \
  }
#define HSTU_BWD_DQ(V, D, MT, BN, NW)                                                         \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_bwd_dq_d##D##V(const HstuAttnParams p) {                                 \
    hstu::attn_bwd_dq<D, MT, BN, NW, false>(p);                                               \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_bwd_dq_rab_d##D##V(const HstuAttnParams p) {                             \
    hstu::attn_bwd_dq<D, MT, BN, NW, true>(p);                                                \
  }

// variant 0 (default)
HSTU_BWD_DKDV(, , 64, 2, 32, 4, true, true)
HSTU_BWD_DKDV(, , 128, 1, 32, 4, true, true)
HSTU_BWD_DKDV(_dk, , 256, 1, 32, 4, true, false)
HSTU_BWD_DKDV(_dv, , 256, 1, 32, 4, false, true)
HSTU_BWD_DQ(, 64, 2, 64, 4)
HSTU_BWD_DQ(, 128, 2, 32, 4)
HSTU_BWD_DQ(, 256, 1, 32, 4)
// variant 1: 8 warps
HSTU_BWD_DKDV(, _v1, 64, 2, 32, 8, true, true)
HSTU_BWD_DKDV(, _v1, 128, 1, 32, 8, true, true)
HSTU_BWD_DKDV(_dk, _v1, 256, 1, 32, 8, true, false)
HSTU_BWD_DKDV(_dv, _v1, 256, 1, 32, 8, false, true)
HSTU_BWD_DQ(_v1, 64, 2, 32, 8)
HSTU_BWD_DQ(_v1, 128, 2, 32, 8)
HSTU_BWD_DQ(_v1, 256, 1, 32, 8)
// variant 2: dK and dV passes split with 32 keys per warp (D = 64 / 128), narrower tiles
HSTU_BWD_DKDV(_dk, _v2, 64, 2, 64, 4, true, false)
HSTU_BWD_DKDV(_dv, _v2, 64, 2, 64, 4, false, true)
HSTU_BWD_DKDV(_dk, _v2, 128, 2, 32, 4, true, false)
HSTU_BWD_DKDV(_dv, _v2, 128, 2, 32, 4, false, true)
HSTU_BWD_DKDV(_dk, _v2, 256, 1, 16, 4, true, false)
HSTU_BWD_DKDV(_dv, _v2, 256, 1, 16, 4, false, true)
HSTU_BWD_DQ(_v2, 64, 2, 32, 4)
HSTU_BWD_DQ(_v2, 128, 2, 16, 4)
HSTU_BWD_DQ(_v2, 256, 1, 16, 4)
// variant 3: previous version, verbatim (dK/dV: BNK keys x BMQ queries; dQ: BM x BN)
#define HSTU_BWD_DKDV_LEGACY(NAME, V, D, BNK, BMQ, NW, DK, DV)                               \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_bwd_dkdv##NAME##_d##D##V(const HstuAttnParams p) {                       \
    hstu::attn_bwd_dkdv_legacy<D, BNK, BMQ, NW, false, DK, DV>(p);                            \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_bwd_dkdv##NAME##_rab_d##D##V(const HstuAttnParams p) {                   \
    hstu::attn_bwd_dkdv_legacy<D, BNK, BMQ, NW, true, DK, DV>(p);                             \
  }
#define HSTU_BWD_DQ_LEGACY(V, D, BM, BN, NW)                                                  \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_bwd_dq_d##D##V(const HstuAttnParams p) {                                 \
    hstu::attn_bwd_dq_legacy<D, BM, BN, NW, false>(p);                                        \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_bwd_dq_rab_d##D##V(const HstuAttnParams p) {                             \
    hstu::attn_bwd_dq_legacy<D, BM, BN, NW, true>(p);                                         \
  }
HSTU_BWD_DKDV_LEGACY(, _v3, 64, 64, 64, 4, true, true)
HSTU_BWD_DKDV_LEGACY(, _v3, 128, 64, 32, 4, true, true)
HSTU_BWD_DKDV_LEGACY(_dk, _v3, 256, 128, 32, 8, true, false)
HSTU_BWD_DKDV_LEGACY(_dv, _v3, 256, 128, 32, 8, false, true)
HSTU_BWD_DQ_LEGACY(_v3, 64, 64, 64, 4)
HSTU_BWD_DQ_LEGACY(_v3, 128, 64, 64, 4)
HSTU_BWD_DQ_LEGACY(_v3, 256, 128, 32, 8)

// ---- deterministic relative-bias gradient (RabGrads::deterministic) ----
// The dK/dV kernels sum dS into dpos_w / dts_w through shared-memory and global float atomics,
// whose order changes from run to run. This pair of kernels gives a bitwise repeatable sum
// instead (dq/dk/dv are repeatable already), at the price of recomputing every dS_ij in f32:
//   hstu_attention_rab_grad_det: one warp per (sequence b, head h, chunk of RG_CHUNK pos_w
//     indices). For each index it walks the query rows i in order; the key j with
//     pos_index(i, j) = idx is unique (min(j, U) = idx - (n - 1) + min(i, U), a target row's own
//     key when that is U). The lanes split the head dims of q_i.k_j and dout_i.v_j, a butterfly
//     sum gives every lane the same bits, and lane 0 adds ds_ij to the index's sum and to the
//     warp's ts_w histogram (shared memory) in that fixed order. Outputs: part_pos [B][H][2n-1]
//     (every entry written) and part_ts [warps][nb + 1].
//   hstu_attention_rab_grad_reduce: dpos_w[x] += the (b, h) partials in order, dts_w[x] += the
//     warps' histograms in order.
namespace hstu {
constexpr int RG_CHUNK = 16;
constexpr int RG_WARPS = 4;
}  // namespace hstu

extern "C" __global__ void __launch_bounds__(hstu::RG_WARPS * 32)
    hstu_attention_rab_grad_det(const HstuAttnParams p, float* part_pos, float* part_ts) {
  using namespace hstu;
  extern __shared__ float rg_hist[];  // [RG_WARPS][num_buckets + 1]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int nidx = 2 * p.rab_n - 1, nts = p.num_buckets + 1;
  const int chunks = (nidx + RG_CHUNK - 1) / RG_CHUNK;
  const int64_t gw = (int64_t)blockIdx.x * RG_WARPS + warp;
  const int64_t total = (int64_t)p.batch * p.heads * chunks;
  float* th = rg_hist + warp * nts;
  for (int x = lane; x < nts; x += 32) th[x] = 0.f;
  __syncwarp();
  if (gw >= total) return;
  const int c = (int)(gw % chunks);
  const int h = (int)((gw / chunks) % p.heads);
  const int b = (int)(gw / ((int64_t)chunks * p.heads));
  const int64_t start = p.seq_offsets[b];
  const int L = (int)(p.seq_offsets[b + 1] - start);
  const int U = L - (p.num_targets ? (int)p.num_targets[b] : 0);
  const SeqMask mask{L, U, p.max_attn_len};
  const Rab rab{p.pos_w, p.ts_w, p.timestamps + start, p.t_next + start,
                0.69314718f / p.bucket_divisor, p.rab_n, p.num_buckets, U};
  const int64_t stride = p.token_stride;
  const int D = p.head_dim;
  const bf16* q = p.q + start * stride + h * D;
  const bf16* k = p.k + start * stride + h * D;
  const bf16* v = p.v + start * stride + h * D;
  const bf16* dout = p.dout + start * stride + h * D;
  const int idx_end = min(nidx, (c + 1) * RG_CHUNK);
  for (int idx = c * RG_CHUNK; idx < idx_end; ++idx) {
    const int off = idx - (p.rab_n - 1);  // min(j, U) - min(i, U)
    float acc = 0.f;
    for (int i = max(0, -off); i < L; ++i) {
      const int m = off + min(i, U);
      int j;
      if (m >= 0 && m < U) j = m;
      else if (m == U && i >= U) j = i;
      else continue;
      if (!mask.valid(i, j)) continue;
      float qk = 0.f, g = 0.f;
      for (int d = lane; d < D; d += 32) {
        qk = fmaf(__bfloat162float(q[i * stride + d]), __bfloat162float(k[j * stride + d]), qk);
        g = fmaf(__bfloat162float(dout[i * stride + d]), __bfloat162float(v[j * stride + d]), g);
      }
      // butterfly sums: a + b == b + a, so every lane ends with the same bits
      qk = warp_sum(qk);
      g = warp_sum(g);
      const int tidx = rab.ts_index(rab.t_next[i], j);
      const float x = p.alpha * qk + __ldg(rab.pos_w + idx) + __ldg(rab.ts_w + tidx);
      const float sg = 1.f / (1.f + __expf(-x));
      const float ds = g * sg * fmaf(x, 1.f - sg, 1.f) * p.inv_n;
      acc += ds;
      if (lane == 0) th[tidx] += ds;
    }
    if (lane == 0) part_pos[((int64_t)b * p.heads + h) * nidx + idx] = acc;
  }
  __syncwarp();
  for (int x = lane; x < nts; x += 32) part_ts[gw * nts + x] = th[x];
}

extern "C" __global__ void hstu_attention_rab_grad_reduce(const float* part_pos,
                                                          const float* part_ts, float* dpos_w,
                                                          float* dts_w, int nidx, int nts,
                                                          int64_t bh, int64_t warps) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  if (x < nidx) {
    float s = 0.f;
    for (int64_t r = 0; r < bh; ++r) s += part_pos[r * nidx + x];
    dpos_w[x] += s;
  } else if (x < nidx + nts) {
    const int y = x - nidx;
    float s = 0.f;
    for (int64_t w = 0; w < warps; ++w) s += part_ts[w * nts + y];
    dts_w[y] += s;
  }
}
