// HSTU attention forward (hstu-spec section 6): out_i = sum_j valid(i,j) silu(alpha q_i.k_j + rab_ij) / n * v_j.
// Inputs q, k, v: [total_tokens, heads, D] bf16 jagged by seq_offsets; out: same shape, bf16.
// Grid: (ceil(max_len / BM), heads, batch), NW warps per block; each warp owns MT m16 tiles
// (16 MT consecutive query rows), BM = 16 MT NW. K/V tiles of BN keys are double-buffered with
// cp.async; S stays in registers and becomes the A fragments of the P V MMA.
// Warps whose rows all lie above a key tile (j > i everywhere) skip it; the mask is evaluated
// only on tiles that are not entirely valid for the warp.
// With rab the per-tile slice of pos_w (BM + BN - 1 entries), the keys' timestamps and the
// whole ts_w table are staged in shared memory, so each score costs two shared loads and one
// MUFU lg2 for the time bucket.
#include "hstu_attention_common_sm90.cuh"

namespace hstu {

// Shared-memory bytes of one instantiation (mirrored by fwd_smem() in src/attention.rs).
__host__ __device__ constexpr int fwd_pos_pad(int bm, int bn) { return (bm + bn - 1 + 3) / 4 * 4; }

template <int D, int MT, int BN, int NW, bool RAB>
__device__ __forceinline__ void attn_fwd(const HstuAttnParams& p) {
  constexpr int NT = NW * 32;
  constexpr int WR = 16 * MT;  // rows per warp
  constexpr int BM = WR * NW;
  constexpr int NPP = fwd_pos_pad(BM, BN);
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sK = sQ + BM * D;       // [2][BN][D]
  bf16* sV = sK + 2 * BN * D;   // [2][BN][D]
  int64_t* sTs = reinterpret_cast<int64_t*>(sV + 2 * BN * D);  // [2][BN]      (RAB)
  float* sPos = reinterpret_cast<float*>(sTs + 2 * BN);        // [2][NPP]     (RAB)
  float* sTsw = sPos + 2 * NPP;                                 // [nb + 1]     (RAB)

  const int mblk = gridDim.x - 1 - blockIdx.x;  // longest rows first
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
  const bf16* qb = p.q + start * stride + h * D;
  const bf16* kb = p.k + start * stride + h * D;
  const bf16* vb = p.v + start * stride + h * D;

  const int hi = min(L, i0 + BM);
  int lo = 0;
  if (p.max_attn_len > 0) lo = max(0, min(i0, U) - p.max_attn_len);
  lo = (lo / BN) * BN;
  const int nblocks = (hi - lo + BN - 1) / BN;

  const int wr0 = i0 + warp * WR;             // first row of this warp
  const int wlast = min(wr0 + WR, L) - 1;     // last row < L (< wr0 when the warp has none)

  // rab: per-row constants (next-token time; offset into the per-tile pos_w slice)
  const int64_t* tsb = RAB ? p.timestamps + start : nullptr;
  const int irow_hi = min(i0 + BM - 1, U);
  const int np = 2 * p.rab_n - 1;
  const float lg2_scale = RAB ? 0.69314718f / p.bucket_divisor : 0.f;
  int64_t tn[MT][2];
  int ri[MT][2];
  if (RAB) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        int i = wr0 + mt * 16 + g + 8 * r;
        tn[mt][r] = i < L ? p.t_next[start + i] : 0;
        ri[mt][r] = irow_hi - min(i, U);
      }
    for (int x = tid; x <= p.num_buckets; x += NT) sTsw[x] = p.ts_w[x];
  }
  auto load_rab = [&](int stg, int j0) {
    for (int x = tid; x < BN; x += NT) {
      const bool ok = j0 + x < L;
      cp_async8(sTs + stg * BN + x, ok ? tsb + j0 + x : tsb, ok);
    }
    const int base = p.rab_n - 1 + min(j0, U) - irow_hi;
    for (int x = tid; x < BM + BN - 1; x += NT) {
      const int gi = base + x;
      const bool ok = gi >= 0 && gi < np;
      cp_async4(sPos + stg * NPP + x, ok ? p.pos_w + gi : p.pos_w, ok);
    }
  };

  load_tile<BM, D, NT>(sQ, qb, stride, i0, L, tid);
  load_tile<BN, D, NT>(sK, kb, stride, lo, L, tid);
  load_tile<BN, D, NT>(sV, vb, stride, lo, L, tid);
  if (RAB) load_rab(0, lo);
  cp_async_commit();

  float o[MT][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int a = 0; a < D / 8; ++a) o[mt][a][0] = o[mt][a][1] = o[mt][a][2] = o[mt][a][3] = 0.f;

  for (int it = 0; it < nblocks; ++it) {
    const int j0 = lo + it * BN;
    const int st = it & 1;
    if (it + 1 < nblocks) {
      load_tile<BN, D, NT>(sK + (st ^ 1) * BN * D, kb, stride, j0 + BN, L, tid);
      load_tile<BN, D, NT>(sV + (st ^ 1) * BN * D, vb, stride, j0 + BN, L, tid);
      if (RAB) load_rab(st ^ 1, j0 + BN);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    if (wlast >= j0) {  // else every (i, j) of this warp has j > i: fully masked
      float s[MT][BN / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int a = 0; a < BN / 8; ++a) s[mt][a][0] = s[mt][a][1] = s[mt][a][2] = s[mt][a][3] = 0.f;
      warp_gemm_nt_mt<D, BN, MT>(s, sQ, warp * WR, sK + st * BN * D, 0, lane);

      const bool full = mask.tile_full(wr0, WR, j0, BN);
      const int cj0 = min(j0, U);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int i = wr0 + mt * 16 + g + 8 * (e >> 1);
            const int jl = nt * 8 + 2 * t4 + (e & 1);
            const int j = j0 + jl;
            float x = p.alpha * s[mt][nt][e];
            const bool ok = full || mask.valid(i, j);
            if (RAB) {
              // indices stay inside the staged slices for every (i, j) of the tile
              const int pi = min(j, U) - cj0 + ri[mt][e >> 1];
              const int tb = time_bucket(tn[mt][e >> 1] - sTs[st * BN + jl], lg2_scale, p.num_buckets);
              x += sPos[st * NPP + pi] + sTsw[tb];
            }
            const float y = x * sigmoid_fast(x) * p.inv_n;
            s[mt][nt][e] = ok ? y : 0.f;
          }
        }
      }
      uint32_t pf[MT][BN / 16][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) acc_to_afrag<BN>(pf[mt], s[mt]);
      warp_gemm_pn_mt<BN, D, MT>(o, pf, sV + st * BN * D, 0, lane);
    }
    __syncthreads();
  }

  // Epilogue: rows < L only; each thread writes pairs of bf16.
  bf16* ob = p.out + start * stride + h * D;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = wr0 + mt * 16 + g + 8 * r;
      if (i < L) {
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt) {
          uint32_t v = pack_bf16(o[mt][nt][2 * r], o[mt][nt][2 * r + 1]);
          *reinterpret_cast<uint32_t*>(ob + (int64_t)i * stride + nt * 8 + 2 * t4) = v;
        }
      }
    }
}

// Previous version (16 rows per warp, global-memory rab lookups), kept as variant 3: measured
// faster than the MT kernel for D = 64 and D = 256 without rab (BENCHMARKS-cuda.md).
template <int D, int BM, int BN, int NW, bool RAB>
__device__ __forceinline__ void attn_fwd_legacy(const HstuAttnParams& p) {
  constexpr int NT = NW * 32;
  static_assert(BM == 16 * NW, "one warp per 16 query rows");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sK = sQ + BM * D;       // [2][BN][D]
  bf16* sV = sK + 2 * BN * D;   // [2][BN][D]

  const int mblk = gridDim.x - 1 - blockIdx.x;  // longest rows first
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
  const bf16* qb = p.q + start * stride + h * D;
  const bf16* kb = p.k + start * stride + h * D;
  const bf16* vb = p.v + start * stride + h * D;

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

  load_tile<BM, D, NT>(sQ, qb, stride, i0, L, tid);
  load_tile<BN, D, NT>(sK, kb, stride, lo, L, tid);
  load_tile<BN, D, NT>(sV, vb, stride, lo, L, tid);
  cp_async_commit();

  float o[D / 8][4];
#pragma unroll
  for (int a = 0; a < D / 8; ++a) o[a][0] = o[a][1] = o[a][2] = o[a][3] = 0.f;

  for (int it = 0; it < nblocks; ++it) {
    const int j0 = lo + it * BN;
    const int st = it & 1;
    if (it + 1 < nblocks) {
      load_tile<BN, D, NT>(sK + (st ^ 1) * BN * D, kb, stride, j0 + BN, L, tid);
      load_tile<BN, D, NT>(sV + (st ^ 1) * BN * D, vb, stride, j0 + BN, L, tid);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    float s[BN / 8][4];
#pragma unroll
    for (int a = 0; a < BN / 8; ++a) s[a][0] = s[a][1] = s[a][2] = s[a][3] = 0.f;
    warp_gemm_nt<D, BN>(s, sQ, warp * 16, sK + st * BN * D, 0, lane);

    const bool full = mask.tile_full(i0, BM, j0, BN);
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = i0 + warp * 16 + g + 8 * (e >> 1);
        const int j = j0 + nt * 8 + 2 * t4 + (e & 1);
        float x = p.alpha * s[nt][e];
        bool ok = full || mask.valid(i, j);
        if (RAB && ok) x += rab.bias(tn[e >> 1], i, j);
        float y = x * sigmoid_fast(x) * p.inv_n;
        s[nt][e] = ok ? y : 0.f;
      }
    }
    uint32_t pf[BN / 16][4];
    acc_to_afrag<BN>(pf, s);
    warp_gemm_pn<BN, D>(o, pf, sV + st * BN * D, 0, lane);
    __syncthreads();
  }

  // Epilogue: rows < L only; each thread writes pairs of bf16.
  bf16* ob = p.out + start * stride + h * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = i0 + warp * 16 + g + 8 * r;
    if (i < L) {
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) {
        uint32_t v = pack_bf16(o[nt][2 * r], o[nt][2 * r + 1]);
        *reinterpret_cast<uint32_t*>(ob + (int64_t)i * stride + nt * 8 + 2 * t4) = v;
      }
    }
  }
}

}  // namespace hstu

// ---- instantiations (head dim D, MT m16 tiles per warp, key tile BN, warps; V = variant) ----
// Mirrored by fwd_tile() in src/attention.rs (rows per block = 16 MT NW).
#define HSTU_FWD(V, D, MT, BN, NW, MINB)                                                      \
  extern "C" __global__ void __launch_bounds__(NW * 32, MINB)                                 \
      hstu_attention_fwd_d##D##V(const HstuAttnParams p) {                                    \
    hstu::attn_fwd<D, MT, BN, NW, false>(p);                                                  \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(NW * 32, MINB)                                 \
      hstu_attention_fwd_rab_d##D##V(const HstuAttnParams p) {                                \
    hstu::attn_fwd<D, MT, BN, NW, true>(p);                                                   \
  }

// variant 0 (default): 32 rows per warp
HSTU_FWD(, 64, 2, 64, 4, 2)
HSTU_FWD(, 128, 2, 64, 4, 2)
HSTU_FWD(, 256, 1, 32, 4, 1)
// variant 1: 32 rows per warp, narrower key tile
HSTU_FWD(_v1, 64, 2, 32, 4, 2)
HSTU_FWD(_v1, 128, 2, 32, 4, 2)
HSTU_FWD(_v1, 256, 1, 64, 4, 1)
// variant 2: 8 warps x 32 rows
HSTU_FWD(_v2, 64, 2, 64, 8, 1)
HSTU_FWD(_v2, 128, 2, 64, 8, 1)
HSTU_FWD(_v2, 256, 1, 32, 8, 1)
// variant 3: previous version, verbatim (tile BM x BN, 16 rows per warp)
#define HSTU_FWD_LEGACY(V, D, BM, BN, NW)                                                     \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_fwd_d##D##V(const HstuAttnParams p) {                                    \
    hstu::attn_fwd_legacy<D, BM, BN, NW, false>(p);                                           \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_fwd_rab_d##D##V(const HstuAttnParams p) {                                \
    hstu::attn_fwd_legacy<D, BM, BN, NW, true>(p);                                            \
  }
HSTU_FWD_LEGACY(_v3, 64, 128, 64, 8)
HSTU_FWD_LEGACY(_v3, 128, 128, 64, 8)
HSTU_FWD_LEGACY(_v3, 256, 64, 32, 4)
