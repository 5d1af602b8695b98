// Building blocks shared by the HSTU attention kernels (forward, dK/dV, dQ):
// cp.async tile loads into XOR-swizzled shared memory, ldmatrix fragment loads,
// mma.sync m16n8k16 bf16 -> fp32 warp GEMMs, the validity mask and the relative bias.
#pragma once
#include "hstu_params.h"

namespace hstu {

typedef __nv_bfloat16 bf16;

// ---------------------------------------------------------------- async copies
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy; when !pred the destination is zero-filled and src is not read.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool pred) {
  int bytes = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(bytes));
}
// 4- and 8-byte async copies (through L1), zero-filled when !pred.
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool pred) {
  int bytes = pred ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(bytes));
}
__device__ __forceinline__ void cp_async8(void* dst, const void* src, bool pred) {
  int bytes = pred ? 8 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Tiles are [ROWS][D] bf16 in shared memory; 16-byte chunk c of row r lives at chunk c ^ (r & 7)
// so that the 8 row addresses of one ldmatrix hit 8 distinct bank groups.
template <int D>
__device__ __forceinline__ int swz(int row, int col) {
  return row * D + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

// Copy rows [row0, row0 + ROWS) of one head (base points at token 0 of the sequence, head h)
// into a swizzled tile; rows >= nrows are zero-filled.
template <int ROWS, int D, int NT>
__device__ __forceinline__ void load_tile(bf16* tile, const bf16* base, int64_t stride, int row0,
                                          int nrows, int tid) {
  constexpr int CPR = D / 8;  // chunks per row
  constexpr int TOTAL = ROWS * CPR;
#pragma unroll
  for (int c = tid; c < TOTAL; c += NT) {
    int r = c / CPR, ch = c % CPR;
    bool ok = (row0 + r) < nrows;
    const bf16* src = ok ? base + (int64_t)(row0 + r) * stride + ch * 8 : base;
    cp_async16(tile + r * D + ((ch ^ (r & 7)) << 3), src, ok);
  }
}

// ---------------------------------------------------------------- tensor-core fragments
__device__ __forceinline__ void ldsm_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                        const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                          const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_u32(p)));
}
__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// acc[NC/8][4] += A(16 x KD, rows a_row0.. of tile sA) * B^T, B = rows b_row0..b_row0+NC of sB.
// Both tiles are row-major [rows][KD] swizzled (e.g. S = Q K^T, dP = dO V^T, S^T = K Q^T).
template <int KD, int NC>
__device__ __forceinline__ void warp_gemm_nt(float (*acc)[4], const bf16* sA, int a_row0,
                                             const bf16* sB, int b_row0, int lane) {
#pragma unroll
  for (int kk = 0; kk < KD / 16; ++kk) {
    uint32_t a[4];
    {
      int r = a_row0 + (lane & 15), c = kk * 16 + ((lane >> 4) << 3);
      ldsm_x4(a[0], a[1], a[2], a[3], sA + swz<KD>(r, c));
    }
#pragma unroll
    for (int nn = 0; nn < NC / 16; ++nn) {
      uint32_t b0, b1, b2, b3;
      int r = b_row0 + nn * 16 + (lane & 7) + ((lane >> 4) << 3);
      int c = kk * 16 + (((lane >> 3) & 1) << 3);
      ldsm_x4(b0, b1, b2, b3, sB + swz<KD>(r, c));
      mma16816(acc[2 * nn], a, b0, b1);
      mma16816(acc[2 * nn + 1], a, b2, b3);
    }
  }
}

// acc[D/8][4] += P(16 x KN, register A fragments) * B, B = rows b_row0..b_row0+KN of tile sB
// ([rows][D] swizzled, read transposed). P fragments: pf[KN/16][4] (e.g. O += P V, dK += dS^T Q).
template <int KN, int D>
__device__ __forceinline__ void warp_gemm_pn(float (*acc)[4], const uint32_t (*pf)[4],
                                             const bf16* sB, int b_row0, int lane) {
#pragma unroll
  for (int kk = 0; kk < KN / 16; ++kk) {
#pragma unroll
    for (int nn = 0; nn < D / 16; ++nn) {
      uint32_t b0, b1, b2, b3;
      int r = b_row0 + kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
      int c = nn * 16 + ((lane >> 4) << 3);
      ldsm_x4_t(b0, b1, b2, b3, sB + swz<D>(r, c));
      mma16816(acc[2 * nn], pf[kk], b0, b1);
      mma16816(acc[2 * nn + 1], pf[kk], b2, b3);
    }
  }
}

// Accumulator tiles s[NC/8][4] (16 rows x NC cols) -> bf16 A fragments pf[NC/16][4].
template <int NC>
__device__ __forceinline__ void acc_to_afrag(uint32_t (*pf)[4], const float (*s)[4]) {
#pragma unroll
  for (int kk = 0; kk < NC / 16; ++kk) {
    pf[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
    pf[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
    pf[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    pf[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
  }
}

// Multi-tile versions: the warp owns MT m16 tiles (rows a_row0 + 16 mt), so every B fragment
// loaded by ldmatrix feeds 2 * MT MMAs instead of 2 (shared-memory traffic per FLOP / MT).
// acc[MT][NC/8][4] += A(16 MT x KD) * B^T, B = rows b_row0..b_row0+NC of sB.
template <int KD, int NC, int MT>
__device__ __forceinline__ void warp_gemm_nt_mt(float (*acc)[NC / 8][4], const bf16* sA,
                                                int a_row0, const bf16* sB, int b_row0,
                                                int lane) {
#pragma unroll
  for (int kk = 0; kk < KD / 16; ++kk) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      int r = a_row0 + mt * 16 + (lane & 15), c = kk * 16 + ((lane >> 4) << 3);
      ldsm_x4(a[mt][0], a[mt][1], a[mt][2], a[mt][3], sA + swz<KD>(r, c));
    }
#pragma unroll
    for (int nn = 0; nn < NC / 16; ++nn) {
      uint32_t b0, b1, b2, b3;
      int r = b_row0 + nn * 16 + (lane & 7) + ((lane >> 4) << 3);
      int c = kk * 16 + (((lane >> 3) & 1) << 3);
      ldsm_x4(b0, b1, b2, b3, sB + swz<KD>(r, c));
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma16816(acc[mt][2 * nn], a[mt], b0, b1);
        mma16816(acc[mt][2 * nn + 1], a[mt], b2, b3);
      }
    }
  }
}

// acc[MT][D/8][4] += P(16 MT x KN, register A fragments pf[MT][KN/16][4]) * B,
// B = rows b_row0..b_row0+KN of tile sB ([rows][D] swizzled, read transposed).
template <int KN, int D, int MT>
__device__ __forceinline__ void warp_gemm_pn_mt(float (*acc)[D / 8][4],
                                                const uint32_t (*pf)[KN / 16][4],
                                                const bf16* sB, int b_row0, int lane) {
#pragma unroll
  for (int kk = 0; kk < KN / 16; ++kk) {
#pragma unroll
    for (int nn = 0; nn < D / 16; ++nn) {
      uint32_t b0, b1, b2, b3;
      int r = b_row0 + kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
      int c = nn * 16 + ((lane >> 4) << 3);
      ldsm_x4_t(b0, b1, b2, b3, sB + swz<D>(r, c));
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma16816(acc[mt][2 * nn], pf[mt][kk], b0, b1);
        mma16816(acc[mt][2 * nn + 1], pf[mt][kk], b2, b3);
      }
    }
  }
}

// ---------------------------------------------------------------- pointwise math
__device__ __forceinline__ float tanh_approx(float x) {
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float sigmoid_fast(float x) { return fmaf(0.5f, tanh_approx(0.5f * x), 0.5f); }

// Mask of hstu-spec section 6 for one sequence: id(i) = min(i, U),
// valid(i, j) = i < L && j < L && (i == j || (0 < id(i) - id(j) [<= max_attn_len])).
struct SeqMask {
  int L, U, mal;
  __device__ __forceinline__ bool valid(int i, int j) const {
    if (i >= L || j >= L) return false;
    if (i == j) return true;
    int d = min(i, U) - min(j, U);
    return d > 0 && (mal == 0 || d <= mal);
  }
  // True when every (i, j) of the tile rows [i0, i0+BM) x cols [j0, j0+BN) is valid for rows < L.
  __device__ __forceinline__ bool tile_full(int i0, int bm, int j0, int bn) const {
    if (j0 + bn > U) return false;
    if (j0 + bn - 1 >= i0) return false;
    if (mal != 0 && min(i0 + bm - 1, U) - j0 > mal) return false;
    return true;
  }
};

// Relative attention bias rab_ij = pos_w[N - 1 + id(j) - id(i)] + ts_w[bucket(t_next(i) - t_j)].
// lg2_scale = ln(2) / divisor, so floor(ln(a) / divisor) = floor(lg2(a) * lg2_scale): one MUFU
// lg2 and one multiply (no division); a flip needs ln(a) within ~1e-6 of a bucket edge.
__device__ __forceinline__ int time_bucket(int64_t dt, float lg2_scale, int nb) {
  long long a = dt < 0 ? -dt : dt;
  if (a < 1) a = 1;
  int b = (int)floorf(__log2f((float)a) * lg2_scale);
  return b < 0 ? 0 : (b > nb ? nb : b);
}

struct Rab {
  const float* pos_w;
  const float* ts_w;
  const int64_t* ts;      // timestamps of this sequence (token 0 of the sequence)
  const int64_t* t_next;  // next-token times of this sequence
  float div;  // ln(2) / bucket_divisor (see time_bucket)
  int n, nb, U;
  __device__ __forceinline__ int pos_index(int i, int j) const { return n - 1 + min(j, U) - min(i, U); }
  __device__ __forceinline__ int ts_index(int64_t tnext_i, int j) const {
    return time_bucket(tnext_i - ts[j], div, nb);
  }
  __device__ __forceinline__ float bias(int64_t tnext_i, int i, int j) const {
    return __ldg(pos_w + pos_index(i, j)) + __ldg(ts_w + ts_index(tnext_i, j));
  }
};

}  // namespace hstu
