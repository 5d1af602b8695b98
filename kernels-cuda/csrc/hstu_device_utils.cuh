// Helpers shared by the element-wise and training-step kernels: grid-stride loops, warp
// reductions and the counter-based dropout uniform (the same mask in forward and backward).
#pragma once
#include <stdint.h>

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Counter-based 64-bit hash of (seed, index) (splitmix64 finaliser of seed + golden * (i + 1)).
__device__ __forceinline__ uint64_t hash_u64(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Counter-based uniform in [0, 1) from (seed, index): the same mask in forward and backward.
__device__ __forceinline__ float hash_uniform(uint64_t seed, uint64_t i) {
  return (float)(hash_u64(seed, i) >> 40) * (1.0f / 16777216.0f);
}
