//! The seam between the explorer and an inference engine.
//!
//! [`CpuBackend`] runs the CPU reference of `hstu-runtime`. [`GpuBackend`] runs the WGSL runtime
//! (`hstu_runtime::gpu`) on eframe's own wgpu device and queue ([`SharedDevice`], wrapped by
//! `GpuContext::from_device`), so inference and drawing share one device: attention capture and
//! user encoding go to the GPU; the M-FALCON stepper keeps the CPU cache (its cache is what the
//! panel shows) and any GPU error falls back to the CPU with the reason in the log.

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
    pub info: eframe::wgpu::AdapterInfo,
}

/// The WGSL runtime on eframe's device; uploads a model the first time it sees its weights.
pub struct GpuBackend {
    ctx: hstu_runtime::gpu::GpuContext,
    /// (identity of the weights, the uploaded model).
    model: std::sync::Mutex<Option<(WeightsKey, hstu_runtime::gpu::GpuModel)>>,
}

/// Identifies a weights object cheaply: address, sizes and a few values.
#[derive(Clone, Debug, PartialEq)]
struct WeightsKey {
    address: usize,
    rows: usize,
    blocks: usize,
    probe: Vec<u32>,
}

impl WeightsKey {
    fn of(w: &Weights<f32>) -> Self {
        let d = &w.item_emb.data;
        WeightsKey {
            address: d.as_ptr() as usize,
            rows: w.item_emb.rows,
            blocks: w.layers.len(),
            probe: d
                .iter()
                .step_by(d.len() / 16 + 1)
                .map(|x| x.to_bits())
                .collect(),
        }
    }
}

impl GpuBackend {
    pub fn new(device: &SharedDevice) -> Self {
        let ctx = hstu_runtime::gpu::GpuContext::from_device(
            device.device.clone(),
            device.queue.clone(),
            device.info.clone(),
        );
        GpuBackend {
            ctx,
            model: std::sync::Mutex::new(None),
        }
    }

    /// Run `f` on the uploaded model (uploading `w` when it is new); `None` on any GPU error.
    fn with_model<T>(
        &self,
        cfg: &ModelConfig,
        w: &Weights<f32>,
        f: impl FnOnce(&hstu_runtime::gpu::GpuModel) -> hstu_runtime::Result<T>,
    ) -> Option<T> {
        let mut guard = self.model.lock().ok()?;
        let key = WeightsKey::of(w);
        if guard.as_ref().is_none_or(|(k, _)| *k != key) {
            let model = hstu_runtime::checkpoint::Model {
                dir: std::path::PathBuf::from("(explorer)"),
                config: cfg.clone(),
                weights: w.clone(),
                tensors: Vec::new(),
            };
            match hstu_runtime::gpu::GpuModel::upload(&self.ctx, &model) {
                Ok(m) => *guard = Some((key, m)),
                Err(e) => {
                    tracing::warn!("GPU upload failed, using the CPU reference: {e}");
                    *guard = None;
                    return None;
                }
            }
        }
        let (_, model) = guard.as_ref()?;
        match f(model) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("GPU run failed, using the CPU reference: {e}");
                None
            }
        }
    }
}

impl InferenceBackend for GpuBackend {
    fn name(&self) -> String {
        format!("WGSL on {}", self.ctx.adapter_summary())
    }

    fn capture_attention(
        &self,
        cfg: &ModelConfig,
        w: &Weights<f32>,
        seq: &UserSequence,
    ) -> Vec<LayerCapture<f32>> {
        let t = seq.items.len();
        self.with_model(cfg, w, |m| m.capture_attention(seq))
            .map(|layers| {
                layers
                    .into_iter()
                    .map(|heads| LayerCapture {
                        heads: heads.into_iter().map(|a| Mat::from_vec(t, t, a)).collect(),
                    })
                    .collect()
            })
            .unwrap_or_else(|| CpuBackend.capture_attention(cfg, w, seq))
    }

    fn encode_user(&self, cfg: &ModelConfig, w: &Weights<f32>, seq: &UserSequence) -> Vec<f32> {
        self.with_model(cfg, w, |m| m.encode(std::slice::from_ref(seq)))
            .map(|o| o.user_embeddings)
            .unwrap_or_else(|| CpuBackend.encode_user(cfg, w, seq))
    }

    fn prefill(&self, cfg: &ModelConfig, w: &Weights<f32>, seq: &UserSequence) -> KvCache<f32> {
        CpuBackend.prefill(cfg, w, seq)
    }

    fn score_candidates(
        &self,
        cfg: &ModelConfig,
        w: &Weights<f32>,
        cache: &KvCache<f32>,
        candidates: &[u32],
    ) -> Mat<f32> {
        CpuBackend.score_candidates(cfg, w, cache, candidates)
    }
}

/// The engine for this session: the WGSL runtime on eframe's device when it is a real GPU; the
/// CPU reference without a device or on a software rasteriser (lavapipe, llvmpipe), where the
/// reference is faster than emulated compute and keeps snapshots deterministic.
pub fn select_backend(device: Option<&SharedDevice>) -> (Box<dyn InferenceBackend>, String) {
    match device {
        Some(d) if d.info.device_type != eframe::wgpu::DeviceType::Cpu => {
            let gpu = GpuBackend::new(d);
            let note = gpu.name();
            (Box::new(gpu), note)
        }
        Some(d) => (
            Box::new(CpuBackend),
            format!(
                "CPU reference (drawing on the software adapter {})",
                d.adapter
            ),
        ),
        None => (Box::new(CpuBackend), "CPU reference".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WGSL f32 against the CPU reference (the runtime's own golden tolerance is 1e-4).
    const GPU_F32: f32 = 1e-4;

    #[test]
    fn gpu_backend_matches_cpu_reference() {
        let ctx = match hstu_runtime::gpu::GpuContext::new() {
            Ok(c) => c,
            Err(e) => {
                println!("SKIPPED gpu_backend_matches_cpu_reference: no wgpu adapter ({e})");
                return;
            }
        };
        println!("adapter: {}", ctx.adapter_summary());
        let shared = SharedDevice {
            device: ctx.device.clone(),
            queue: ctx.queue.clone(),
            adapter: ctx.info.name.clone(),
            info: ctx.info.clone(),
        };
        let gpu = GpuBackend::new(&shared);
        let cfg = ModelConfig::tiny_for_tests();
        let w = Weights::<f32>::seeded(&cfg, 5);
        let mut seq = UserSequence::new(
            1,
            vec![3, 9, 4, 27, 11, 5],
            vec![10, 70, 900, 900, 5000, 86_400],
        );
        seq.query_time = Some(90_000);
        let max_diff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        let (g, c) = (
            gpu.encode_user(&cfg, &w, &seq),
            CpuBackend.encode_user(&cfg, &w, &seq),
        );
        assert!(max_diff(&g, &c) < GPU_F32, "encode: {}", max_diff(&g, &c));
        let (g, c) = (
            gpu.capture_attention(&cfg, &w, &seq),
            CpuBackend.capture_attention(&cfg, &w, &seq),
        );
        assert_eq!(g.len(), c.len());
        for (l, (gl, cl)) in g.iter().zip(&c).enumerate() {
            for (h, (gh, ch)) in gl.heads.iter().zip(&cl.heads).enumerate() {
                assert_eq!(gh.shape(), ch.shape());
                let d = max_diff(&gh.data, &ch.data);
                assert!(d < GPU_F32, "layer {l} head {h}: {d}");
            }
        }
        // A second model replaces the first upload.
        let w2 = Weights::<f32>::seeded(&cfg, 6);
        let (g, c) = (
            gpu.encode_user(&cfg, &w2, &seq),
            CpuBackend.encode_user(&cfg, &w2, &seq),
        );
        assert!(
            max_diff(&g, &c) < GPU_F32,
            "second model: {}",
            max_diff(&g, &c)
        );
    }
}
