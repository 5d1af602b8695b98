//! The one parameter block every attention kernel takes, mirrored from `csrc/hstu_params.h`.

use cudarc::driver::DeviceRepr;

/// `HstuAttnParams` of `csrc/hstu_params.h`; pointers are raw device addresses (0 = null).
/// Tensors q/k/v/out/dout/dq/dk/dv: `[total_tokens, heads, head_dim]` bf16, jagged by `seq_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HstuAttnParams {
    pub q: u64,
    pub k: u64,
    pub v: u64,
    pub out: u64,
    pub dout: u64,
    pub dq: u64,
    pub dk: u64,
    pub dv: u64,
    /// `[batch + 1]` i64.
    pub seq_offsets: u64,
    /// `[batch]` i64 or 0.
    pub num_targets: u64,
    /// `[total_tokens]` i64 unix seconds (rab only).
    pub timestamps: u64,
    /// `[total_tokens]` i64, the next token's time (rab only).
    pub t_next: u64,
    /// `[2 * rab_n - 1]` f32 or 0 (no rab).
    pub pos_w: u64,
    /// `[num_buckets + 1]` f32.
    pub ts_w: u64,
    /// Gradient of `pos_w`, accumulated (+=), or 0.
    pub dpos_w: u64,
    /// Gradient of `ts_w`, accumulated (+=), or 0.
    pub dts_w: u64,
    pub alpha: f32,
    pub inv_n: f32,
    pub bucket_divisor: f32,
    pub batch: i32,
    pub heads: i32,
    pub head_dim: i32,
    pub max_len: i32,
    pub max_attn_len: i32,
    pub rab_n: i32,
    pub num_buckets: i32,
    pub token_stride: i64,
}

/// Size of the C struct (static_assert in `csrc/hstu_params.h`).
pub const HSTU_ATTN_PARAMS_SIZE: usize = 176;
const _: () = assert!(std::mem::size_of::<HstuAttnParams>() == HSTU_ATTN_PARAMS_SIZE);
const _: () = assert!(std::mem::offset_of!(HstuAttnParams, alpha) == 128);
const _: () = assert!(std::mem::offset_of!(HstuAttnParams, token_stride) == 168);

// SAFETY: plain-old-data, `#[repr(C)]`, layout checked against the C declaration above.
unsafe impl DeviceRepr for HstuAttnParams {}
