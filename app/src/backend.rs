//! The seam between the explorer and an inference engine.
//!
//! Today every call runs on the CPU reference of `hstu-runtime`. The GPU runtime
//! (`hstu_runtime::gpu`) will plug in here: [`SharedDevice`] carries eframe's own wgpu device and
//! queue to the worker, where `GpuContext::from_device(..)` can wrap them so that inference and
//! drawing share one device (no second adapter, no copies between devices).

use hstu_runtime::checkpoint::Weights;
use hstu_runtime::config::ModelConfig;
use hstu_runtime::reference::{self, KvCache, LayerCapture};
use hstu_runtime::sequences::UserSequence;
use hstu_runtime::tensor::Mat;

/// What the explorer asks of an engine; all inputs are one user (history already truncated).
pub trait InferenceBackend: Send {
    /// A short name for the status bar.
    fn name(&self) -> String;
    /// `a_ij` of every layer and head: `[L][H]` of `[T, T]`.
    fn capture_attention(
        &self,
        cfg: &ModelConfig,
        w: &Weights<f32>,
        seq: &UserSequence,
    ) -> Vec<LayerCapture<f32>>;
    /// The user embedding `o_{L-1}`: [D].
    fn encode_user(&self, cfg: &ModelConfig, w: &Weights<f32>, seq: &UserSequence) -> Vec<f32>;
    /// M-FALCON prefill: the history's K/V of every layer.
    fn prefill(&self, cfg: &ModelConfig, w: &Weights<f32>, seq: &UserSequence) -> KvCache<f32>;
    /// One micro-batch of candidates against the cache: final `e_c` (before L2), `[m, D]`.
    fn score_candidates(
        &self,
        cfg: &ModelConfig,
        w: &Weights<f32>,
        cache: &KvCache<f32>,
        candidates: &[u32],
    ) -> Mat<f32>;
}

/// The CPU reference (the spec itself).
pub struct CpuBackend;

impl InferenceBackend for CpuBackend {
    fn name(&self) -> String {
        "CPU reference".into()
    }

    fn capture_attention(
        &self,
        cfg: &ModelConfig,
        w: &Weights<f32>,
        seq: &UserSequence,
    ) -> Vec<LayerCapture<f32>> {
        reference::encoder::capture_attention(cfg, w, seq)
    }

    fn encode_user(&self, cfg: &ModelConfig, w: &Weights<f32>, seq: &UserSequence) -> Vec<f32> {
        reference::encode_user(cfg, w, seq).user_embedding
    }

    fn prefill(&self, cfg: &ModelConfig, w: &Weights<f32>, seq: &UserSequence) -> KvCache<f32> {
        reference::prefill(cfg, w, seq)
    }

    fn score_candidates(
        &self,
        cfg: &ModelConfig,
        w: &Weights<f32>,
        cache: &KvCache<f32>,
        candidates: &[u32],
    ) -> Mat<f32> {
        reference::score_candidates(cfg, w, cache, candidates)
    }
}

/// eframe's wgpu device, handed to the worker for a future GPU backend.
#[derive(Clone)]
pub struct SharedDevice {
    pub device: eframe::wgpu::Device,
    pub queue: eframe::wgpu::Queue,
    pub adapter: String,
}

/// The engine for this session: the CPU reference until `hstu_runtime::gpu` offers
/// `GpuContext::from_device`, then a GPU backend on `device` when one is given.
pub fn select_backend(device: Option<&SharedDevice>) -> (Box<dyn InferenceBackend>, String) {
    let note = match device {
        Some(d) => format!(
            "CPU reference (GPU runtime not wired yet; drawing on {})",
            d.adapter
        ),
        None => "CPU reference".to_string(),
    };
    (Box::new(CpuBackend), note)
}
