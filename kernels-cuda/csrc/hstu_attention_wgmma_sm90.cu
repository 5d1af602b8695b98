// HSTU attention forward (hstu-spec section 6) on Hopper warpgroup MMAs:
//   out_i = sum_j valid(i,j) silu(alpha q_i.k_j) / n * v_j   (no relative bias; rab falls back
//   to the mma.sync kernels of hstu_attention_fwd_sm90.cu).
//
// One block = BM = 128 query rows of one (sequence, head): 3 warpgroups' worth of roles in
// 288 threads: warps 0-3 and 4-7 are two consumer warpgroups (64 rows each), warp 8 is the
// producer. The producer's lane 0 streams K/V tiles of BN keys with the bulk tensor copy
// engine (cp.async.bulk.tensor, 128-byte swizzle) into an NS-stage ring guarded by mbarriers
// (full_k / full_v: transaction bytes; empty: one arrive per consumer warp). Each consumer
// warpgroup computes S = Q K^T with wgmma (A = Q and B = K from shared memory, K-major
// descriptors), turns S in registers into P = valid ? silu(alpha S) / n : 0 as bf16 A
// fragments, and accumulates O += P V with wgmma (A from registers, B = V from shared memory,
// N-major descriptor). HSTU needs no running max or rescaling, so O is final after the last
// tile. Jagged sequences: the tensor maps cover all [total_tokens, heads * D]; a tile that runs
// past its sequence reads the next sequence's (finite) rows or TMA zero fill; those scores are
// masked to exactly 0 and the rows are never stored.
#include "hstu_attention_common_sm90.cuh"

// CUtensorMap (cuda.h of CUDA 13): 128 opaque bytes, 128-byte aligned, encoded on the host by
// cuTensorMapEncodeTiled (src/attention.rs) and passed by value as a __grid_constant__.
struct alignas(128) HstuTmaDesc {
  unsigned long long opaque[16];
};

namespace hstu {
namespace wg {

// D[64 x 64] (+)= A[64 x 16] * B[16 x 64]; A, B from shared memory (both K-major).
__device__ __forceinline__ void wgmma_ss_n64(float* d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}
// D[64 x 64] += A[64 x 16] (registers) * B[16 x 64] (shared, N-major: imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_n64(float* d, const uint32_t* a, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}

// D[64 x 128] (+)= A[64 x 16] * B[16 x 128]; A, B from shared memory (both K-major).
__device__ __forceinline__ void wgmma_ss_n128(float* d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(scale_d));
}
// D[64 x 128] += A[64 x 16] (registers) * B[16 x 128] (shared, N-major: imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_n128(float* d, const uint32_t* a, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}

// D[64 x 256] (+)= A[64 x 16] * B[16 x 256]; A, B from shared memory (both K-major).
__device__ __forceinline__ void wgmma_ss_n256(float* d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
        "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(scale_d));
}
// D[64 x 256] += A[64 x 16] (registers) * B[16 x 256] (shared, N-major: imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_n256(float* d, const uint32_t* a, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, {%128, %129, %130, %131}, %132, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
        "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}


template <int N>
__device__ __forceinline__ void mma_ss(float* d, uint64_t da, uint64_t db, int scale_d) {
  if constexpr (N == 64) wgmma_ss_n64(d, da, db, scale_d);
  else if constexpr (N == 128) wgmma_ss_n128(d, da, db, scale_d);
  else wgmma_ss_n256(d, da, db, scale_d);
}
template <int N>
__device__ __forceinline__ void mma_rs(float* d, const uint32_t* a, uint64_t db, int scale_d) {
  if constexpr (N == 64) wgmma_rs_n64(d, a, db, scale_d);
  else if constexpr (N == 128) wgmma_rs_n128(d, a, db, scale_d);
  else wgmma_rs_n256(d, a, db, scale_d);
}

__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving reads/writes of accumulator registers across wgmma issue/wait.
template <int R>
__device__ __forceinline__ void fence_regs(float* d) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
template <int R>
__device__ __forceinline__ void fence_regs_u(uint32_t* d) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

// Shared-memory matrix descriptor, 128-byte swizzle. K-major operands: SBO = 1024 (8 rows of
// 128 bytes), LBO unused. N-major (transposed B): LBO = bytes between 64-column chunks,
// SBO = 1024 (8 K-rows). Tiles are 1024-byte aligned (base offset 0).
__device__ __forceinline__ uint64_t desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) |
         ((uint64_t)(sbo >> 4) << 32) | (1ull << 62);
}

// ---------------------------------------------------------------- mbarrier + TMA
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const HstuTmaDesc* map, int c0, int c1,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, "
      "%3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void tma_prefetch(const HstuTmaDesc* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

}  // namespace wg

// Shared-memory bytes of one instantiation (mirrored by wgmma_fwd_smem() in src/attention.rs):
// Q tile + NS stages of (K, V) tiles + 1 KB alignment slack; mbarriers are static.
__host__ __device__ constexpr int wg_fwd_smem(int d, int bn, int ns) {
  return 128 * d * 2 + ns * 2 * bn * d * 2 + 1024;
}

template <int D, int BN, int NS>
__device__ __forceinline__ void attn_fwd_wgmma(const HstuAttnParams& p, const HstuTmaDesc* tq,
                                               const HstuTmaDesc* tk, const HstuTmaDesc* tv) {
  constexpr int BM = 128;
  constexpr int KS = D / 64;                 // 64-column (128-byte) sub-tiles per row
  constexpr uint32_t Q_BYTES = BM * D * 2;
  constexpr uint32_t KV_BYTES = BN * D * 2;  // one K or V stage
  static_assert(D % 64 == 0 && BN % 16 == 0 && BN <= 256, "tile shape");
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t bars[1 + 3 * NS];

  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t sQ = base;
  auto sK = [&](int st) { return base + Q_BYTES + st * KV_BYTES; };
  auto sV = [&](int st) { return base + Q_BYTES + (NS + st) * KV_BYTES; };
  const uint32_t bar_q = smem_u32(&bars[0]);
  auto bar_k = [&](int st) { return smem_u32(&bars[1 + st]); };
  auto bar_v = [&](int st) { return smem_u32(&bars[1 + NS + st]); };
  auto bar_e = [&](int st) { return smem_u32(&bars[1 + 2 * NS + st]); };

  const int mblk = gridDim.x - 1 - blockIdx.x;  // longest rows first
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t start = p.seq_offsets[b];
  const int L = (int)(p.seq_offsets[b + 1] - start);
  const int i0 = mblk * BM;
  if (i0 >= L) return;
  const int U = L - (p.num_targets ? (int)p.num_targets[b] : 0);
  const int hi = min(L, i0 + BM);
  int lo = 0;
  if (p.max_attn_len > 0) lo = max(0, min(i0, U) - p.max_attn_len);
  lo = (lo / BN) * BN;
  const int nblocks = (hi - lo + BN - 1) / BN;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid == 0) {
    wg::mbar_init(bar_q, 1);
    for (int s = 0; s < NS; ++s) {
      wg::mbar_init(bar_k(s), 1);
      wg::mbar_init(bar_v(s), 1);
      wg::mbar_init(bar_e(s), 8);  // lane 0 of each consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (warp == 8) {
    // ------------------------------------------------------------ producer
    if (lane == 0) {
      wg::tma_prefetch(tq);
      wg::tma_prefetch(tk);
      wg::tma_prefetch(tv);
      const int c0 = h * D;
      wg::mbar_expect_tx(bar_q, Q_BYTES);
#pragma unroll
      for (int ks = 0; ks < KS; ++ks)
        wg::tma_load_2d(sQ + ks * BM * 128, tq, c0 + 64 * ks, (int)(start + i0), bar_q);
      for (int it = 0; it < nblocks; ++it) {
        const int st = it % NS, u = it / NS;
        if (u > 0) wg::mbar_wait(bar_e(st), (u - 1) & 1);
        const int row = (int)(start + lo + it * BN);
        wg::mbar_expect_tx(bar_k(st), KV_BYTES);
#pragma unroll
        for (int ks = 0; ks < KS; ++ks)
          wg::tma_load_2d(sK(st) + ks * BN * 128, tk, c0 + 64 * ks, row, bar_k(st));
        wg::mbar_expect_tx(bar_v(st), KV_BYTES);
#pragma unroll
        for (int ks = 0; ks < KS; ++ks)
          wg::tma_load_2d(sV(st) + ks * BN * 128, tv, c0 + 64 * ks, row, bar_v(st));
      }
    }
    return;
  }

  // -------------------------------------------------------------- consumers
  const int wgi = warp >> 2, ww = warp & 3;
  const int g = lane >> 2, t4 = lane & 3;
  const SeqMask mask{L, U, p.max_attn_len};
  const int wr0 = i0 + 64 * wgi;               // first row of this warpgroup
  const int wlast = min(wr0 + 64, L) - 1;      // last row < L (< wr0 when none)
  const float c_half = 0.5f * p.alpha;         // silu(a s) / n = (a s / 2n) (1 + tanh(a s / 2))
  const float c_out = 0.5f * p.alpha * p.inv_n;

  float o[D / 2];
#pragma unroll
  for (int x = 0; x < D / 2; ++x) o[x] = 0.f;
  float s[BN / 2];
#pragma unroll
  for (int x = 0; x < BN / 2; ++x) s[x] = 0.f;

  wg::mbar_wait(bar_q, 0);
  const uint32_t qrow = sQ + wgi * 64 * 128;  // this warpgroup's 64 rows in each sub-tile

  for (int it = 0; it < nblocks; ++it) {
    const int st = it % NS;
    const uint32_t par = (it / NS) & 1;
    const int j0 = lo + it * BN;
    bool skip = wlast < j0;  // all j > i (or no rows < L)
    if (p.max_attn_len > 0 && min(wr0, U) - min(j0 + BN - 1, U) > p.max_attn_len) skip = true;
    wg::mbar_wait(bar_k(st), par);
    if (!skip) {
      // S = Q K^T over D in k16 steps
      wg::fence_regs<BN / 2>(s);
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t off = (kk % 4) * 32;  // k16 step inside the 128-byte swizzle row
        const uint64_t da = wg::desc(qrow + (kk / 4) * BM * 128 + off, 16, 1024);
        const uint64_t db = wg::desc(sK(st) + (kk / 4) * BN * 128 + off, 16, 1024);
        wg::mma_ss<BN>(s, da, db, kk > 0);
      }
      wg::commit();
      wg::wait<0>();
      wg::fence_regs<BN / 2>(s);

      // P = valid ? silu(alpha S) / n : 0 -> bf16 A fragments
      const bool full = mask.tile_full(wr0, 64, j0, BN);
      uint32_t pf[BN / 16][4];
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb) {
        float y[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float x = s[4 * nb + e];
          const float t = tanh_approx(x * c_half);
          const float c = x * c_out;
          y[e] = fmaf(c, t, c);
        }
        if (!full) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int i = wr0 + 16 * ww + g + 8 * (e >> 1);
            const int j = j0 + 8 * nb + 2 * t4 + (e & 1);
            if (!mask.valid(i, j)) y[e] = 0.f;
          }
        }
        pf[nb >> 1][2 * (nb & 1) + 0] = pack_bf16(y[0], y[1]);
        pf[nb >> 1][2 * (nb & 1) + 1] = pack_bf16(y[2], y[3]);
      }

      // O += P V over the BN keys in k16 steps (V read N-major)
      wg::mbar_wait(bar_v(st), par);
      wg::fence_regs<D / 2>(o);
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        const uint64_t db = wg::desc(sV(st) + kk * 16 * 128, BN * 128, 1024);
        wg::mma_rs<D>(o, pf[kk], db, 1);
      }
      wg::commit();
      wg::wait<0>();
      wg::fence_regs<D / 2>(o);
    } else {
      wg::mbar_wait(bar_v(st), par);
    }
    __syncwarp();
    if (lane == 0) wg::mbar_arrive(bar_e(st));
  }

  // Epilogue: rows < L only; each thread writes pairs of bf16.
  const int64_t stride = p.token_stride;
  bf16* ob = p.out + start * stride + h * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = wr0 + 16 * ww + g + 8 * r;
    if (i < L) {
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb) {
        const uint32_t v = pack_bf16(o[4 * nb + 2 * r], o[4 * nb + 2 * r + 1]);
        *reinterpret_cast<uint32_t*>(ob + (int64_t)i * stride + nb * 8 + 2 * t4) = v;
      }
    }
  }
}

// dQ of the backward (hstu-spec section 6), same block shape and pipeline as the forward:
//   S = Q K^T, G = dO V^T (both wgmma from shared memory), dS = valid ? G silu'(alpha S) / n : 0
//   in registers as bf16 A fragments, dQ += dS K (K read N-major), dq = alpha dQ.
// Q and dO of the block arrive once (one mbarrier), K/V tiles stream through the NS-stage ring.
__host__ __device__ constexpr int wg_dq_smem(int d, int bn, int ns) {
  return 2 * 128 * d * 2 + ns * 2 * bn * d * 2 + 1024;
}

template <int D, int BN, int NS>
__device__ __forceinline__ void attn_bwd_dq_wgmma(const HstuAttnParams& p, const HstuTmaDesc* tq,
                                                  const HstuTmaDesc* tdo, const HstuTmaDesc* tk,
                                                  const HstuTmaDesc* tv) {
  constexpr int BM = 128;
  constexpr int KS = D / 64;
  constexpr uint32_t Q_BYTES = BM * D * 2;
  constexpr uint32_t KV_BYTES = BN * D * 2;
  static_assert(D % 64 == 0 && BN % 16 == 0 && BN <= 256, "tile shape");
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t bars[1 + 3 * NS];

  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t sQ = base;
  const uint32_t sO = base + Q_BYTES;
  auto sK = [&](int st) { return base + 2 * Q_BYTES + st * KV_BYTES; };
  auto sV = [&](int st) { return base + 2 * Q_BYTES + (NS + st) * KV_BYTES; };
  const uint32_t bar_q = smem_u32(&bars[0]);
  auto bar_k = [&](int st) { return smem_u32(&bars[1 + st]); };
  auto bar_v = [&](int st) { return smem_u32(&bars[1 + NS + st]); };
  auto bar_e = [&](int st) { return smem_u32(&bars[1 + 2 * NS + st]); };

  const int mblk = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t start = p.seq_offsets[b];
  const int L = (int)(p.seq_offsets[b + 1] - start);
  const int i0 = mblk * BM;
  if (i0 >= L) return;
  const int U = L - (p.num_targets ? (int)p.num_targets[b] : 0);
  const int hi = min(L, i0 + BM);
  int lo = 0;
  if (p.max_attn_len > 0) lo = max(0, min(i0, U) - p.max_attn_len);
  lo = (lo / BN) * BN;
  const int nblocks = (hi - lo + BN - 1) / BN;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid == 0) {
    wg::mbar_init(bar_q, 1);
    for (int s = 0; s < NS; ++s) {
      wg::mbar_init(bar_k(s), 1);
      wg::mbar_init(bar_v(s), 1);
      wg::mbar_init(bar_e(s), 8);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (warp == 8) {
    if (lane == 0) {
      wg::tma_prefetch(tq);
      wg::tma_prefetch(tdo);
      wg::tma_prefetch(tk);
      wg::tma_prefetch(tv);
      const int c0 = h * D;
      wg::mbar_expect_tx(bar_q, 2 * Q_BYTES);
#pragma unroll
      for (int ks = 0; ks < KS; ++ks) {
        wg::tma_load_2d(sQ + ks * BM * 128, tq, c0 + 64 * ks, (int)(start + i0), bar_q);
        wg::tma_load_2d(sO + ks * BM * 128, tdo, c0 + 64 * ks, (int)(start + i0), bar_q);
      }
      for (int it = 0; it < nblocks; ++it) {
        const int st = it % NS, u = it / NS;
        if (u > 0) wg::mbar_wait(bar_e(st), (u - 1) & 1);
        const int row = (int)(start + lo + it * BN);
        wg::mbar_expect_tx(bar_k(st), KV_BYTES);
#pragma unroll
        for (int ks = 0; ks < KS; ++ks)
          wg::tma_load_2d(sK(st) + ks * BN * 128, tk, c0 + 64 * ks, row, bar_k(st));
        wg::mbar_expect_tx(bar_v(st), KV_BYTES);
#pragma unroll
        for (int ks = 0; ks < KS; ++ks)
          wg::tma_load_2d(sV(st) + ks * BN * 128, tv, c0 + 64 * ks, row, bar_v(st));
      }
    }
    return;
  }

  const int wgi = warp >> 2, ww = warp & 3;
  const int g = lane >> 2, t4 = lane & 3;
  const SeqMask mask{L, U, p.max_attn_len};
  const int wr0 = i0 + 64 * wgi;
  const int wlast = min(wr0 + 64, L) - 1;
  const float alpha = p.alpha, inv_n = p.inv_n;

  float dq[D / 2];
#pragma unroll
  for (int x = 0; x < D / 2; ++x) dq[x] = 0.f;
  float s[BN / 2], gp[BN / 2];
#pragma unroll
  for (int x = 0; x < BN / 2; ++x) s[x] = gp[x] = 0.f;

  wg::mbar_wait(bar_q, 0);
  const uint32_t qrow = sQ + wgi * 64 * 128;
  const uint32_t orow = sO + wgi * 64 * 128;

  for (int it = 0; it < nblocks; ++it) {
    const int st = it % NS;
    const uint32_t par = (it / NS) & 1;
    const int j0 = lo + it * BN;
    bool skip = wlast < j0;
    if (p.max_attn_len > 0 && min(wr0, U) - min(j0 + BN - 1, U) > p.max_attn_len) skip = true;
    wg::mbar_wait(bar_k(st), par);
    if (!skip) {
      wg::fence_regs<BN / 2>(s);
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t off = (kk % 4) * 32;
        wg::mma_ss<BN>(s, wg::desc(qrow + (kk / 4) * BM * 128 + off, 16, 1024),
                       wg::desc(sK(st) + (kk / 4) * BN * 128 + off, 16, 1024), kk > 0);
      }
      wg::commit();
      wg::mbar_wait(bar_v(st), par);
      wg::fence_regs<BN / 2>(gp);
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t off = (kk % 4) * 32;
        wg::mma_ss<BN>(gp, wg::desc(orow + (kk / 4) * BM * 128 + off, 16, 1024),
                       wg::desc(sV(st) + (kk / 4) * BN * 128 + off, 16, 1024), kk > 0);
      }
      wg::commit();
      wg::wait<0>();
      wg::fence_regs<BN / 2>(s);
      wg::fence_regs<BN / 2>(gp);

      const bool full = mask.tile_full(wr0, 64, j0, BN);
      uint32_t pf[BN / 16][4];
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb) {
        float y[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float x = alpha * s[4 * nb + e];
          const float sg = sigmoid_fast(x);
          y[e] = gp[4 * nb + e] * inv_n * sg * fmaf(x, 1.f - sg, 1.f);
        }
        if (!full) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int i = wr0 + 16 * ww + g + 8 * (e >> 1);
            const int j = j0 + 8 * nb + 2 * t4 + (e & 1);
            if (!mask.valid(i, j)) y[e] = 0.f;
          }
        }
        pf[nb >> 1][2 * (nb & 1) + 0] = pack_bf16(y[0], y[1]);
        pf[nb >> 1][2 * (nb & 1) + 1] = pack_bf16(y[2], y[3]);
      }

      wg::fence_regs<D / 2>(dq);
      wg::fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk)
        wg::mma_rs<D>(dq, pf[kk], wg::desc(sK(st) + kk * 16 * 128, BN * 128, 1024), 1);
      wg::commit();
      wg::wait<0>();
      wg::fence_regs<D / 2>(dq);
    } else {
      wg::mbar_wait(bar_v(st), par);
    }
    __syncwarp();
    if (lane == 0) wg::mbar_arrive(bar_e(st));
  }

  const int64_t stride = p.token_stride;
  bf16* qb = p.dq + start * stride + h * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = wr0 + 16 * ww + g + 8 * r;
    if (i < L) {
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb) {
        const uint32_t v = pack_bf16(alpha * dq[4 * nb + 2 * r], alpha * dq[4 * nb + 2 * r + 1]);
        *reinterpret_cast<uint32_t*>(qb + (int64_t)i * stride + nb * 8 + 2 * t4) = v;
      }
    }
  }
}

// dK/dV of the backward (hstu-spec section 6), the mirror image of the dQ kernel: one block =
// BNK = 128 keys of one (sequence, head), 384 threads: warpgroups 0 and 1 are consumers (64 keys
// each, K and V rows resident in shared memory), warpgroup 2 the producer (warp 8 lane 0 streams
// the Q and dO tiles of BM query rows by TMA into an NS-stage ring). setmaxnreg moves registers
// from the producer (40) to the consumers (232) for the dK + dV accumulators. Per query tile:
//   S^T = K Q^T, G^T = V dO^T (wgmma, both operands from shared memory),
//   A^T = valid silu(alpha S^T) / n, dS^T = valid G^T silu'(alpha S^T) / n (registers, bf16),
//   dV += A^T dO, dK += dS^T Q (wgmma, A from registers, dO / Q read N-major); dk = alpha dK.
// Deterministic: each key row's dk / dv is owned by one thread pair, written once.
// Query rows past the sequence (next sequence or TMA zero fill) are masked to exactly 0.
__host__ __device__ constexpr int wg_dkdv_smem(int d, int bm, int ns) {
  return 2 * 128 * d * 2 + ns * 2 * bm * d * 2 + 1024;
}

template <int D, int BM, int NS>
__device__ __forceinline__ void attn_bwd_dkdv_wgmma(const HstuAttnParams& p, const HstuTmaDesc* tq,
                                                    const HstuTmaDesc* tdo, const HstuTmaDesc* tk,
                                                    const HstuTmaDesc* tv) {
  constexpr int BNK = 128;
  constexpr int KS = D / 64;
  constexpr uint32_t KV_BYTES = BNK * D * 2;
  constexpr uint32_t QT_BYTES = BM * D * 2;  // one Q or dO stage
  static_assert(D % 64 == 0 && BM % 16 == 0 && BM <= 256, "tile shape");
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  __shared__ __align__(8) uint64_t bars[1 + 3 * NS];

  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t sK = base;
  const uint32_t sV = base + KV_BYTES;
  auto sQ = [&](int st) { return base + 2 * KV_BYTES + st * QT_BYTES; };
  auto sO = [&](int st) { return base + 2 * KV_BYTES + (NS + st) * QT_BYTES; };
  const uint32_t bar_kv = smem_u32(&bars[0]);
  auto bar_q = [&](int st) { return smem_u32(&bars[1 + st]); };
  auto bar_o = [&](int st) { return smem_u32(&bars[1 + NS + st]); };
  auto bar_e = [&](int st) { return smem_u32(&bars[1 + 2 * NS + st]); };

  const int h = blockIdx.y, b = blockIdx.z;
  const int64_t start = p.seq_offsets[b];
  const int L = (int)(p.seq_offsets[b + 1] - start);
  const int j0 = blockIdx.x * BNK;  // most query tiles first
  if (j0 >= L) return;
  const int U = L - (p.num_targets ? (int)p.num_targets[b] : 0);
  // Query rows that can see keys [j0, j0 + BNK) (as the mma.sync kernel).
  const int qlo = (j0 / BM) * BM;
  int qhi = L;
  if (j0 >= U) qhi = min(L, j0 + BNK);
  else if (p.max_attn_len > 0 && U == L) qhi = min(L, j0 + BNK + p.max_attn_len);
  const int nblocks = (qhi - qlo + BM - 1) / BM;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid == 0) {
    wg::mbar_init(bar_kv, 1);
    for (int s = 0; s < NS; ++s) {
      wg::mbar_init(bar_q(s), 1);
      wg::mbar_init(bar_o(s), 1);
      wg::mbar_init(bar_e(s), 8);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (warp >= 8) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
    if (warp == 8 && lane == 0) {
      wg::tma_prefetch(tq);
      wg::tma_prefetch(tdo);
      wg::tma_prefetch(tk);
      wg::tma_prefetch(tv);
      const int c0 = h * D;
      wg::mbar_expect_tx(bar_kv, 2 * KV_BYTES);
#pragma unroll
      for (int ks = 0; ks < KS; ++ks) {
        wg::tma_load_2d(sK + ks * BNK * 128, tk, c0 + 64 * ks, (int)(start + j0), bar_kv);
        wg::tma_load_2d(sV + ks * BNK * 128, tv, c0 + 64 * ks, (int)(start + j0), bar_kv);
      }
      for (int it = 0; it < nblocks; ++it) {
        const int st = it % NS, u = it / NS;
        if (u > 0) wg::mbar_wait(bar_e(st), (u - 1) & 1);
        const int row = (int)(start + qlo + it * BM);
        wg::mbar_expect_tx(bar_q(st), QT_BYTES);
#pragma unroll
        for (int ks = 0; ks < KS; ++ks)
          wg::tma_load_2d(sQ(st) + ks * BM * 128, tq, c0 + 64 * ks, row, bar_q(st));
        wg::mbar_expect_tx(bar_o(st), QT_BYTES);
#pragma unroll
        for (int ks = 0; ks < KS; ++ks)
          wg::tma_load_2d(sO(st) + ks * BM * 128, tdo, c0 + 64 * ks, row, bar_o(st));
      }
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
    const int wgi = warp >> 2, ww = warp & 3;
    const int g = lane >> 2, t4 = lane & 3;
    const SeqMask mask{L, U, p.max_attn_len};
    const int wj0 = j0 + 64 * wgi;              // first key of this warpgroup
    const bool none = wj0 >= L;                 // no key < L: nothing to compute or store
    const float alpha = p.alpha, inv_n = p.inv_n;

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int x = 0; x < D / 2; ++x) dk[x] = dv[x] = 0.f;
    float s[BM / 2], gp[BM / 2];
#pragma unroll
    for (int x = 0; x < BM / 2; ++x) s[x] = gp[x] = 0.f;

    wg::mbar_wait(bar_kv, 0);
    const uint32_t krow = sK + wgi * 64 * 128;
    const uint32_t vrow = sV + wgi * 64 * 128;

    for (int it = 0; it < nblocks; ++it) {
      const int st = it % NS;
      const uint32_t par = (it / NS) & 1;
      const int i0 = qlo + it * BM;
      bool skip = none || i0 + BM - 1 < wj0;  // every i < j
      if (p.max_attn_len > 0 && min(i0, U) - min(wj0 + 63, U) > p.max_attn_len) skip = true;
      if (wj0 >= U && i0 > wj0 + 63) skip = true;  // target keys: seen by themselves only
      wg::mbar_wait(bar_q(st), par);
      if (!skip) {
        wg::fence_regs<BM / 2>(s);
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          const uint32_t off = (kk % 4) * 32;
          wg::mma_ss<BM>(s, wg::desc(krow + (kk / 4) * BNK * 128 + off, 16, 1024),
                         wg::desc(sQ(st) + (kk / 4) * BM * 128 + off, 16, 1024), kk > 0);
        }
        wg::commit();
        wg::mbar_wait(bar_o(st), par);
        wg::fence_regs<BM / 2>(gp);
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          const uint32_t off = (kk % 4) * 32;
          wg::mma_ss<BM>(gp, wg::desc(vrow + (kk / 4) * BNK * 128 + off, 16, 1024),
                         wg::desc(sO(st) + (kk / 4) * BM * 128 + off, 16, 1024), kk > 0);
        }
        wg::commit();
        wg::wait<0>();
        wg::fence_regs<BM / 2>(s);
        wg::fence_regs<BM / 2>(gp);

        // rows of S^T are keys, columns queries; query rows >= L must contribute 0
        const bool full = i0 + BM <= L && mask.tile_full(i0, BM, wj0, 64);
        uint32_t af[BM / 16][4], sf[BM / 16][4];
#pragma unroll
        for (int nb = 0; nb < BM / 8; ++nb) {
          float ya[4], yd[4];
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float x = alpha * s[4 * nb + e];
            const float sg = sigmoid_fast(x);
            ya[e] = x * sg * inv_n;
            yd[e] = gp[4 * nb + e] * inv_n * sg * fmaf(x, 1.f - sg, 1.f);
          }
          if (!full) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int j = wj0 + 16 * ww + g + 8 * (e >> 1);
              const int i = i0 + 8 * nb + 2 * t4 + (e & 1);
              if (!mask.valid(i, j)) ya[e] = yd[e] = 0.f;
            }
          }
          af[nb >> 1][2 * (nb & 1) + 0] = pack_bf16(ya[0], ya[1]);
          af[nb >> 1][2 * (nb & 1) + 1] = pack_bf16(ya[2], ya[3]);
          sf[nb >> 1][2 * (nb & 1) + 0] = pack_bf16(yd[0], yd[1]);
          sf[nb >> 1][2 * (nb & 1) + 1] = pack_bf16(yd[2], yd[3]);
        }

        wg::fence_regs<D / 2>(dv);
        wg::fence_regs<D / 2>(dk);
        wg::fence();
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk)
          wg::mma_rs<D>(dv, af[kk], wg::desc(sO(st) + kk * 16 * 128, BM * 128, 1024), 1);
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk)
          wg::mma_rs<D>(dk, sf[kk], wg::desc(sQ(st) + kk * 16 * 128, BM * 128, 1024), 1);
        wg::commit();
        wg::wait<0>();
        wg::fence_regs<D / 2>(dv);
        wg::fence_regs<D / 2>(dk);
      } else {
        wg::mbar_wait(bar_o(st), par);
      }
      __syncwarp();
      if (lane == 0) wg::mbar_arrive(bar_e(st));
    }

    const int64_t stride = p.token_stride;
    bf16* kb = p.dk + start * stride + h * D;
    bf16* vb = p.dv + start * stride + h * D;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int j = wj0 + 16 * ww + g + 8 * r;
      if (j < L) {
#pragma unroll
        for (int nb = 0; nb < D / 8; ++nb) {
          const int64_t off = (int64_t)j * stride + nb * 8 + 2 * t4;
          *reinterpret_cast<uint32_t*>(kb + off) =
              pack_bf16(alpha * dk[4 * nb + 2 * r], alpha * dk[4 * nb + 2 * r + 1]);
          *reinterpret_cast<uint32_t*>(vb + off) =
              pack_bf16(dv[4 * nb + 2 * r], dv[4 * nb + 2 * r + 1]);
        }
      }
    }
  }
}

}  // namespace hstu

// ---- instantiations (head dim D, key tile BN, pipeline stages NS; V = variant suffix),
// 288 threads, 1 block per SM. Mirrored by wgmma_fwd_cfg() in src/attention.rs.
#define HSTU_FWD_WGMMA(V, D, BN, NS)                                                           \
  extern "C" __global__ void __launch_bounds__(288, 1) hstu_attention_fwd_wgmma_d##D##V(       \
      const HstuAttnParams p, const __grid_constant__ HstuTmaDesc tq,                          \
      const __grid_constant__ HstuTmaDesc tk, const __grid_constant__ HstuTmaDesc tv) {        \
    hstu::attn_fwd_wgmma<D, BN, NS>(p, &tq, &tk, &tv);                                         \
  }
// variant 0 (default)
HSTU_FWD_WGMMA(, 64, 128, 3)
HSTU_FWD_WGMMA(, 128, 128, 2)
// variant 1: deeper ring
HSTU_FWD_WGMMA(_v1, 64, 128, 4)
HSTU_FWD_WGMMA(_v1, 128, 128, 3)
// variant 2: narrower key tile, deeper ring
HSTU_FWD_WGMMA(_v2, 64, 64, 4)
HSTU_FWD_WGMMA(_v2, 128, 64, 4)
// dQ of the backward (wgmma): BN 64 keeps S, dO V^T and dQ in the 168 registers.
#define HSTU_BWD_DQ_WGMMA(V, D, BN, NS)                                                        \
  extern "C" __global__ void __launch_bounds__(288, 1) hstu_attention_bwd_dq_wgmma_d##D##V(    \
      const HstuAttnParams p, const __grid_constant__ HstuTmaDesc tq,                          \
      const __grid_constant__ HstuTmaDesc tdo, const __grid_constant__ HstuTmaDesc tk,         \
      const __grid_constant__ HstuTmaDesc tv) {                                                \
    hstu::attn_bwd_dq_wgmma<D, BN, NS>(p, &tq, &tdo, &tk, &tv);                                \
  }
HSTU_BWD_DQ_WGMMA(, 64, 64, 4)
HSTU_BWD_DQ_WGMMA(, 128, 64, 4)
// dK/dV of the backward (wgmma): 128 keys per block, BM query rows per streamed tile, 384
// threads (2 consumer warpgroups + producer warpgroup, setmaxnreg 232 / 40).
#define HSTU_BWD_DKDV_WGMMA(V, D, BM, NS)                                                      \
  extern "C" __global__ void __launch_bounds__(384, 1) hstu_attention_bwd_dkdv_wgmma_d##D##V(  \
      const HstuAttnParams p, const __grid_constant__ HstuTmaDesc tq,                          \
      const __grid_constant__ HstuTmaDesc tdo, const __grid_constant__ HstuTmaDesc tk,         \
      const __grid_constant__ HstuTmaDesc tv) {                                                \
    hstu::attn_bwd_dkdv_wgmma<D, BM, NS>(p, &tq, &tdo, &tk, &tv);                              \
  }
HSTU_BWD_DKDV_WGMMA(, 64, 64, 4)
HSTU_BWD_DKDV_WGMMA(, 128, 64, 3)
// D = 256 (BN 64) needs more than the 168 registers ptxas grants 288 threads: not instantiated yet.
