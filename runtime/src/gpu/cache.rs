//! Pipeline cache (one pipeline per shader, variant, entry point and override constants), bind-group
//! cache (keyed by the pipeline's id and the exact buffer ranges) and a buffer pool (power-of-two
//! size classes).

use super::context::GpuContext;
use crate::error::{Error, Result};
use hstu_shaders::Variant;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Identity of one compute pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub shader: &'static str,
    pub variant: Variant,
    pub entry: &'static str,
    /// Override constants, values as f64 bits.
    pub constants: Vec<(&'static str, u64)>,
}

impl PipelineKey {
    pub fn new(shader: &'static str, variant: Variant, entry: &'static str) -> Self {
        PipelineKey {
            shader,
            variant,
            entry,
            constants: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: f64) -> Self {
        self.constants.push((name, value.to_bits()));
        self
    }
}

/// Which of wgpu's shader runtime checks the modules keep, from `HSTU_SHADER_CHECKS` (read once):
/// `on` both index clamping and loop bounding, `bounds` (default) index clamping only, `off`
/// neither.
///
/// Loop bounding adds a second exit (an iteration counter) to every loop so that a loop the
/// backend compiler assumes terminates really does; clamping bounds every array and buffer index.
/// `bounds` and `off` compile with `create_shader_module_trusted`: the caller promises that no loop
/// is infinite (`bounds`) and no index is out of range (`off`). Every loop in `hstu-shaders`
/// ends: counted `for` loops with a positive constant or override step (or the top-K
/// `score_all` grid stride, at least `WG`) up to a bound the host derives from buffer lengths
/// (far below 2^32, so no counter wraps), halving loops from a
/// workgroup size, the top-K sort's doubling loop capped at its `SORT_N` override, and one binary
/// search whose interval shrinks every step. Index clamping (kept by `bounds`) is what
/// stands between an index bug and memory outside a binding. Loop bounding costs the f32
/// attention a fifth of its speed on the H200 (it keeps the driver from unrolling loops with
/// override-constant trip counts), hence the default. The GPU tests run against the CPU reference
/// in every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShaderChecks {
    On,
    Bounds,
    Off,
}

impl ShaderChecks {
    pub fn name(self) -> &'static str {
        match self {
            ShaderChecks::On => "on",
            ShaderChecks::Bounds => "bounds",
            ShaderChecks::Off => "off",
        }
    }

    fn parse(text: &str) -> Option<ShaderChecks> {
        match text.to_ascii_lowercase().as_str() {
            "on" | "full" => Some(ShaderChecks::On),
            "" | "bounds" => Some(ShaderChecks::Bounds),
            "off" => Some(ShaderChecks::Off),
            _ => None,
        }
    }
}

/// The [`ShaderChecks`] of this process; an unknown `HSTU_SHADER_CHECKS` value warns and keeps
/// the default.
pub fn shader_checks() -> ShaderChecks {
    static CHECKS: std::sync::OnceLock<ShaderChecks> = std::sync::OnceLock::new();
    *CHECKS.get_or_init(|| match std::env::var("HSTU_SHADER_CHECKS") {
        Err(_) => ShaderChecks::Bounds,
        Ok(v) => ShaderChecks::parse(&v).unwrap_or_else(|| {
            tracing::warn!("HSTU_SHADER_CHECKS={v}: expected on, bounds or off; keeping bounds");
            ShaderChecks::Bounds
        }),
    })
}

/// A compiled pipeline and its (auto-derived) bind group layout.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// Shader, variant and entry point (not unique: override constants are not in it).
    pub label: String,
    /// Unique per pipeline of a context: the bind-group cache's key, since an auto-derived
    /// layout only fits its own pipeline.
    pub id: u64,
}

#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<PipelineKey, Arc<Pipeline>>>,
    next_id: AtomicU64,
}

impl GpuContext {
    /// The pipeline of `key`, compiled on first use.
    pub fn pipeline(&self, key: &PipelineKey) -> Result<Arc<Pipeline>> {
        let mut map = self
            .pipelines
            .map
            .lock()
            .map_err(|_| Error::Gpu("pipeline cache lock poisoned".into()))?;
        if let Some(p) = map.get(key) {
            return Ok(p.clone());
        }
        if let Some(why) = self.variant_unsupported(key.variant) {
            return Err(Error::Gpu(format!("{}: {why}", key.shader)));
        }
        let label = format!("{}[{}]::{}", key.shader, key.variant.name(), key.entry);
        let source = hstu_shaders::compose(key.shader, key.variant)
            .map_err(|e| Error::Gpu(format!("{label}: {e}")))?;
        let constants: Vec<(&str, f64)> = key
            .constants
            .iter()
            .map(|&(n, bits)| (n, f64::from_bits(bits)))
            .collect();
        let p = self.scoped(&label, || {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(&label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            };
            let checks = match shader_checks() {
                ShaderChecks::On => None,
                ShaderChecks::Bounds => Some(wgpu::ShaderRuntimeChecks {
                    force_loop_bounding: false,
                    ..wgpu::ShaderRuntimeChecks::checked()
                }),
                ShaderChecks::Off => Some(wgpu::ShaderRuntimeChecks::unchecked()),
            };
            let module = match checks {
                None => self.device.create_shader_module(desc),
                // SAFETY: opt-in (`HSTU_SHADER_CHECKS`); this crate's own kernels, whose loops are
                // all counted and whose indices are bounded by construction, checked against the
                // CPU reference by the GPU tests (see `ShaderChecks`).
                Some(checks) => unsafe { self.device.create_shader_module_trusted(desc, checks) },
            };
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: None,
                    module: &module,
                    entry_point: Some(key.entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
            let layout = pipeline.get_bind_group_layout(0);
            Ok(Pipeline {
                pipeline,
                layout,
                label: label.clone(),
                id: self.pipelines.next_id.fetch_add(1, Ordering::Relaxed),
            })
        })?;
        let p = Arc::new(p);
        map.insert(key.clone(), p.clone());
        Ok(p)
    }
}

/// One buffer range of a bind group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BindRange {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

impl BindRange {
    pub fn whole(buffer: &wgpu::Buffer) -> Self {
        BindRange {
            buffer: buffer.clone(),
            offset: 0,
            size: buffer.size(),
        }
    }
}

const MAX_BIND_GROUPS: usize = 8192;

/// (pipeline id, bindings)
type BindKey = (u64, Vec<(u32, BindRange)>);

#[derive(Default)]
pub struct BindGroupCache {
    map: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
}

impl GpuContext {
    /// The bind group of `pipeline` over `entries` (binding, range), made on first use.
    pub fn bind_group(
        &self,
        pipeline: &Pipeline,
        entries: Vec<(u32, BindRange)>,
    ) -> Result<wgpu::BindGroup> {
        let key = (pipeline.id, entries);
        let mut map = self
            .bind_groups
            .map
            .lock()
            .map_err(|_| Error::Gpu("bind group cache lock poisoned".into()))?;
        if let Some(bg) = map.get(&key) {
            return Ok(bg.clone());
        }
        if map.len() >= MAX_BIND_GROUPS {
            map.clear();
        }
        let wgpu_entries: Vec<wgpu::BindGroupEntry> = key
            .1
            .iter()
            .map(|(binding, r)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &r.buffer,
                    offset: r.offset,
                    size: std::num::NonZeroU64::new(r.size),
                }),
            })
            .collect();
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&pipeline.label),
            layout: &pipeline.layout,
            entries: &wgpu_entries,
        });
        map.insert(key, bg.clone());
        Ok(bg)
    }

    /// Forget every cached bind group that names `buffer` (before it is destroyed).
    pub(crate) fn forget_bind_groups(&self) {
        if let Ok(mut m) = self.bind_groups.map.lock() {
            m.clear();
        }
    }
}

/// Reusable buffers by (size class, usage).
#[derive(Default)]
pub struct BufferPool {
    free: Mutex<HashMap<(u64, u32), Vec<wgpu::Buffer>>>,
}

/// Usage of every pooled storage buffer.
pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

/// Usage of pooled uniform arenas.
pub const UNIFORM: wgpu::BufferUsages =
    wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);

impl GpuContext {
    fn size_class(&self, bytes: u64) -> u64 {
        let want = bytes.max(256);
        let class = want.next_power_of_two();
        if class > self.limits.max_buffer_size || class > self.max_binding_bytes() {
            want.div_ceil(256) * 256
        } else {
            class
        }
    }

    /// A buffer of at least `bytes` (contents undefined) from the pool or new.
    pub fn take_buffer(&self, bytes: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let class = self.size_class(bytes);
        if class > self.limits.max_buffer_size {
            return Err(Error::Limit(format!(
                "gpu buffer of {bytes} bytes exceeds max_buffer_size {} on {}",
                self.limits.max_buffer_size, self.info.name
            )));
        }
        if let Ok(mut free) = self.pool.free.lock()
            && let Some(b) = free.get_mut(&(class, usage.bits())).and_then(|v| v.pop())
        {
            return Ok(b);
        }
        self.scoped("create_buffer", || {
            Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("hstu pooled"),
                size: class,
                usage,
                mapped_at_creation: false,
            }))
        })
    }

    /// Return buffers to the pool (only after the work using them has completed).
    pub fn give_buffers(&self, buffers: impl IntoIterator<Item = wgpu::Buffer>) {
        if let Ok(mut free) = self.pool.free.lock() {
            for b in buffers {
                free.entry((b.size(), b.usage().bits()))
                    .or_default()
                    .push(b);
            }
        }
    }

    /// Drop every pooled buffer.
    pub fn trim_pool(&self) {
        self.forget_bind_groups();
        if let Ok(mut free) = self.pool.free.lock() {
            free.clear();
        }
    }
}
