//! The wgpu runtime: the WGSL kernels of `hstu-shaders` on any adapter wgpu offers (Vulkan, Metal,
//! DX12, GL), equal to the CPU reference under named tolerances.
//!
//! * [`GpuContext`]: adapter choice (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`), features, limits,
//!   pipeline / bind-group caches, buffer pool; every wgpu failure is an [`crate::Error::Gpu`].
//! * [`GpuModel`]: weights on the GPU; [`GpuModel::encode`], [`GpuModel::retrieve`] (only top-K
//!   comes back), M-FALCON ([`GpuModel::prefill`], [`GpuModel::score_candidates`],
//!   [`GpuModel::rank`]) and [`GpuModel::capture_attention`].
//! * [`ops`]: one recording function per kernel, for tests and benchmarks.
//! * [`record`]: command recording, timestamp profiling, the one readback path.
//!
//! ```no_run
//! use hstu_runtime::gpu::{GpuContext, GpuModel};
//! let ctx = GpuContext::new()?;
//! println!("{}", ctx.adapter_summary());
//! let model = hstu_runtime::checkpoint::Model::load("model-dir".as_ref())?;
//! let gpu = GpuModel::upload(&ctx, &model)?;
//! let seq = hstu_runtime::sequences::UserSequence::new(1, vec![3, 5, 9], vec![10, 20, 30]);
//! let top = gpu.retrieve(&[seq], 10)?;
//! # Ok::<(), hstu_runtime::Error>(())
//! ```

pub mod cache;
pub mod context;
pub mod model;
pub mod ops;
pub mod ranking;
pub mod record;
pub mod retrieve;

pub use context::{GpuContext, describe_adapter, enumerate_adapters};
pub use model::{GpuEncodeOutput, GpuModel, UploadOptions};
pub use ranking::GpuKvCache;
pub use record::{PassTime, Recorder};
