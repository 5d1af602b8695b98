// HSTU attention forward (hstu-spec section 6): out_i = sum_j valid(i,j) silu(alpha q_i.k_j + rab_ij) / n * v_j.
// Inputs q, k, v: [total_tokens, heads, D] bf16 jagged by seq_offsets; out: same shape, bf16.
// Grid: (ceil(max_len / BM), heads, batch), NW warps per block; each warp owns 16 query rows.
#include "hstu_attention_common_sm90.cuh"

namespace hstu {

template <int D, int BM, int BN, int NW, bool RAB>
__device__ __forceinline__ void attn_fwd(const HstuAttnParams& p) {
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
    rab = Rab{p.pos_w, p.ts_w, p.timestamps + start, p.t_next + start, p.bucket_divisor, p.rab_n,
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

// ---- instantiations (generated list: head dim D, tile BM x BN, warps; V = variant suffix) ----
// Mirrored by fwd_tile() in src/attention.rs.
#define HSTU_FWD(V, D, BM, BN, NW)                                                            \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_fwd_d##D##V(const HstuAttnParams p) {                                    \
    hstu::attn_fwd<D, BM, BN, NW, false>(p);                                                  \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(NW * 32)                                       \
      hstu_attention_fwd_rab_d##D##V(const HstuAttnParams p) {                                \
    hstu::attn_fwd<D, BM, BN, NW, true>(p);                                                   \
  }

HSTU_FWD(, 64, 128, 64, 8)
HSTU_FWD(, 128, 128, 64, 8)
HSTU_FWD(, 256, 64, 32, 4)
HSTU_FWD(_v1, 64, 64, 64, 4)
HSTU_FWD(_v1, 128, 64, 64, 4)
HSTU_FWD(_v1, 256, 64, 64, 4)
HSTU_FWD(_v2, 64, 128, 128, 8)
HSTU_FWD(_v2, 128, 128, 32, 8)
HSTU_FWD(_v2, 256, 128, 32, 8)
