// Parameter block shared by the Rust bindings (src/params.rs) and every attention kernel.
// Passed by value as the single kernel argument. Layout is checked on both sides:
// static_assert here, const asserts in Rust (HSTU_ATTN_PARAMS_SIZE).
#pragma once
#include <stdint.h>
#include <cuda_bf16.h>

struct HstuAttnParams {
  // ---- tensors (device pointers); q/k/v/out/dout/dq/dk/dv: [total_tokens, heads, head_dim] bf16
  const __nv_bfloat16* q;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  __nv_bfloat16* out;
  const __nv_bfloat16* dout;
  __nv_bfloat16* dq;
  __nv_bfloat16* dk;
  __nv_bfloat16* dv;
  const int64_t* seq_offsets;   // [batch + 1]
  const int64_t* num_targets;   // [batch] or null
  const int64_t* timestamps;    // [total_tokens] (rab only) or null
  const int64_t* t_next;        // [total_tokens] next token's time (rab only) or null
  const float* pos_w;           // [2 * rab_n - 1] or null (no rab)
  const float* ts_w;            // [num_buckets + 1]
  float* dpos_w;                // [2 * rab_n - 1] accumulated (+=) or null
  float* dts_w;                 // [num_buckets + 1] accumulated (+=) or null
  // ---- scalars
  float alpha;                  // scale of q.k
  float inv_n;                  // 1 / normaliser n
  float bucket_divisor;         // 0.301 (log buckets)
  int32_t batch;
  int32_t heads;
  int32_t head_dim;             // D of the kernel instantiation (padded)
  int32_t max_len;              // max L_b of the batch (grid size)
  int32_t max_attn_len;         // 0 = unlimited
  int32_t rab_n;                // N of pos_w (2N-1 entries)
  int32_t num_buckets;          // ts_w has num_buckets + 1 entries
  int64_t token_stride;         // elements between consecutive tokens (= heads * head_dim)
};

#ifdef __cplusplus
static_assert(sizeof(HstuAttnParams) == 176, "HstuAttnParams layout drifted from src/params.rs");
static_assert(offsetof(HstuAttnParams, alpha) == 128, "HstuAttnParams.alpha offset");
static_assert(offsetof(HstuAttnParams, token_stride) == 168, "HstuAttnParams.token_stride offset");
#endif
