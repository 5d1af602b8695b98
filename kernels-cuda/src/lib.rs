//! HSTU CUDA kernels for Hopper (sm_90a) and the pieces of a GPU training step.
//!
//! * [`CudaDevice`]: context + stream + kernel modules. [`CudaDevice::new`] returns
//!   [`CudaError::NoDriver`] (never panics) on machines without a CUDA driver.
//! * Fused HSTU attention (hstu-spec section 6), bf16 in, fp32 accumulation on tensor cores,
//!   jagged, causal, `num_targets`, `max_attn_len`, relative bias with its gradient:
//!   [`CudaDevice::hstu_attention_fwd`], [`CudaDevice::hstu_attention_bwd`]. Two kernel
//!   families ([`attention::AttnImpl`]): Hopper `wgmma` fed by TMA (forward, dQ, dK/dV; the
//!   default for D = 64/128 without rab) and `mma.sync m16n8k16` (rab, D = 256, fallback);
//!   host convenience [`host::attention_host`]; CPU f64 reference in [`reference`].
//!   The backward is deterministic for dq/dk/dv (two kernels, no atomics: dK/dV per key block,
//!   dQ per query block); the rab gradients are summed with float atomics (order varies).
//! * Element-wise kernels of the layer and trainer ([`elementwise`]): layer norm fwd/bwd, SiLU
//!   fwd/bwd, gating + dropout fwd/bwd (counter-based mask), embedding gather / scatter-add,
//!   sampled-softmax loss with gradients, AdamW; dense products through cuBLAS ([`gemm::Blas`]).
//!
//! # For the runtime (`hstu train --device cuda`)
//!
//! This crate does not depend on `hstu-runtime`; the runtime drives it with plain types:
//! device buffers are `cudarc::driver::CudaSlice<f32 | bf16 | i64>` made with
//! [`CudaDevice::upload`] / [`CudaDevice::zeros`] and read back with [`CudaDevice::download`].
//! One HSTU layer's training step maps onto these calls (shapes of hstu-spec section 1):
//! [`CudaDevice::embedding_fwd`] -> per layer [`CudaDevice::layer_norm_fwd`],
//! [`gemm::Blas::matmul_f32`] (`n @ W_uvqk`), [`CudaDevice::silu_fwd`], q/k/v to bf16 heads,
//! [`CudaDevice::hstu_attention_fwd`] (rab from `_rel_attn_bias._pos_w/_ts_w`),
//! [`CudaDevice::layer_norm_fwd`], [`CudaDevice::gate_dropout_fwd`], `matmul_f32` (`@ W_o^T`) ->
//! [`CudaDevice::sampled_softmax`] -> the same in reverse with the `_bwd` calls and
//! [`CudaDevice::hstu_attention_bwd`] -> [`CudaDevice::adamw_step`] per tensor. A fused
//! whole-step trainer (`ModelDims` + weights by reference tensor name) is not written yet.
//!
//! Kernels live in `csrc/` and are compiled by `build.rs` to sm_90a cubins when `nvcc` is
//! found, then embedded; otherwise they are loaded at run time from `HSTU_CUDA_PTX_DIR`
//! (`<stem>.cubin` or `<stem>.ptx`, stems in [`kernels::UNITS`]).
//!
//! ```no_run
//! use hstu_cuda::{CudaDevice, reference::AttentionProblem, host::attention_host};
//! let dev = CudaDevice::new(0)?; // Err(NoDriver) without CUDA
//! let p = AttentionProblem {
//!     seq_offsets: vec![0, 3], num_targets: None, heads: 1, dqk: 2, dv: 2,
//!     alpha: 1.0, norm_n: 3.0, max_attn_len: 0, rab: None,
//! };
//! let x = vec![0.5f32; 6];
//! let r = attention_host(&dev, &p, &x, &x, &x, Some(&x))?;
//! assert_eq!(r.out.len(), 6);
//! # Ok::<(), hstu_cuda::CudaError>(())
//! ```

pub mod attention;
pub mod device;
pub mod elementwise;
pub mod error;
pub mod gemm;
pub mod host;
pub mod kernels;
pub mod params;
pub mod reference;
pub mod train_ops;

pub use cudarc;
pub use device::{CudaDevice, cuda_available};
pub use error::{CudaError, Result};
