//! HSTU CUDA kernels for Hopper (sm_90a) and the pieces of a GPU training step.
//!
//! * [`CudaDevice`]: context + stream + kernel modules. [`CudaDevice::new`] returns
//!   [`CudaError::NoDriver`] (never panics) on machines without a CUDA driver.
//! * Fused HSTU attention (hstu-spec section 6), bf16 in, fp32 accumulation on tensor cores
//!   (`mma.sync m16n8k16`), jagged, causal, `num_targets`, `max_attn_len`, relative bias with
//!   its gradient: [`CudaDevice::hstu_attention_fwd`], [`CudaDevice::hstu_attention_bwd`];
//!   host convenience [`host::attention_host`]; CPU f64 reference in [`reference`].
//! * Element-wise kernels of the trainer: [`CudaDevice::adamw_step`].
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

pub use device::{CudaDevice, cuda_available};
pub use error::{CudaError, Result};
