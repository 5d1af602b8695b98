//! The device: adapter choice (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`), features, limits, error
//! capture (validation, out-of-memory, device loss all become [`Error::Gpu`]), and the caches.

use super::cache::{BindGroupCache, BufferPool, PipelineCache};
use crate::error::{Error, Result};
use hstu_shaders::{Requirements, Variant};
use std::sync::{Arc, Mutex};

/// One wgpu device and queue with the project's caches (cheap to clone: every field is shared).
#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub(crate) features: wgpu::Features,
    pub(crate) limits: wgpu::Limits,
    pub(crate) pipelines: Arc<PipelineCache>,
    pub(crate) bind_groups: Arc<BindGroupCache>,
    pub(crate) pool: Arc<BufferPool>,
    /// Set by the device-lost callback and by uncaptured errors.
    fault: Arc<Mutex<Option<String>>>,
}

/// Features this runtime asks for when the adapter has them.
fn wanted_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
}

fn backends_from_env() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Every adapter wgpu enumerates for the backends of `WGPU_BACKEND` (all when unset).
pub fn enumerate_adapters() -> Vec<wgpu::Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends_from_env();
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends_from_env()))
}

/// `name (backend, type), driver driver_info`.
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}), driver {} {}",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    )
}

impl GpuContext {
    /// The adapter named by `WGPU_ADAPTER_NAME` (case-insensitive substring) or else the best of
    /// `WGPU_BACKEND`'s adapters (discrete > integrated > virtual > cpu).
    pub fn new() -> Result<GpuContext> {
        let mut adapters = enumerate_adapters();
        if adapters.is_empty() {
            return Err(Error::Gpu(format!(
                "no adapter found for backends {:?} (WGPU_BACKEND={:?}); on Linux install a Vulkan \
                 driver such as mesa-vulkan-drivers (lavapipe)",
                backends_from_env(),
                std::env::var("WGPU_BACKEND").ok()
            )));
        }
        if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
            let want_lc = want.to_lowercase();
            let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want_lc));
            if adapters.is_empty() {
                return Err(Error::Gpu(format!(
                    "WGPU_ADAPTER_NAME={want:?} matches none of the adapters {names:?}"
                )));
            }
        }
        adapters.sort_by_key(|a| type_rank(a.get_info().device_type));
        let mut last_err = None;
        for adapter in adapters {
            match GpuContext::from_adapter(&adapter) {
                Ok(ctx) => return Ok(ctx),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Gpu("no usable adapter".into())))
    }

    /// A device on `adapter` with every wanted feature it offers and its full limits.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<GpuContext> {
        let info = adapter.get_info();
        let features = adapter.features() & wanted_features();
        let limits = adapter.limits();
        let experimental = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            // SAFETY: cooperative-matrix kernels are only dispatched on shapes the host checked
            // (multiples of 16, buffers padded past every tile the kernel loads).
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("hstu"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: experimental,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::Gpu(format!(
                "request_device on {}: {e}",
                describe_adapter(&info)
            ))
        })?;
        Ok(GpuContext::from_device(device, queue, info))
    }

    /// Share an existing device (the explorer passes eframe's).
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_info: wgpu::AdapterInfo,
    ) -> GpuContext {
        let fault: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let f = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut g) = f.lock() {
                *g = Some(format!("device lost ({reason:?}): {message}"));
            }
        });
        let f = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut g) = f.lock() {
                g.get_or_insert_with(|| format!("uncaptured: {e}"));
            }
        }));
        let features = device.features();
        let limits = device.limits();
        GpuContext {
            device,
            queue,
            info: adapter_info,
            features,
            limits,
            pipelines: Arc::default(),
            bind_groups: Arc::default(),
            pool: Arc::default(),
            fault,
        }
    }

    /// One line naming the adapter, its driver and the features in use.
    pub fn adapter_summary(&self) -> String {
        let f = |x: wgpu::Features, n: &str| self.features.contains(x).then(|| n.to_string());
        let feats: Vec<String> = [
            f(wgpu::Features::SHADER_F16, "f16"),
            f(wgpu::Features::SUBGROUP, "subgroup"),
            f(wgpu::Features::TIMESTAMP_QUERY, "timestamps"),
            f(
                wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
                "coop-matrix",
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        format!(
            "{}; features [{}]; max storage binding {} MiB",
            describe_adapter(&self.info),
            feats.join(", "),
            self.limits.max_storage_buffer_binding_size >> 20
        )
    }

    /// Why `variant` cannot run here, or `None` when it can.
    pub fn variant_unsupported(&self, variant: Variant) -> Option<String> {
        let Requirements {
            shader_f16,
            subgroup,
            cooperative_matrix,
        } = variant.requirements();
        let mut missing = Vec::new();
        if shader_f16 && !self.features.contains(wgpu::Features::SHADER_F16) {
            missing.push("SHADER_F16");
        }
        if subgroup && !self.features.contains(wgpu::Features::SUBGROUP) {
            missing.push("SUBGROUP");
        }
        if cooperative_matrix {
            if !self
                .features
                .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            {
                missing.push("EXPERIMENTAL_COOPERATIVE_MATRIX");
            } else if self.coop_subgroup_size().is_none() {
                missing.push("a fixed subgroup size for cooperative matrices");
            }
        }
        (!missing.is_empty()).then(|| {
            format!(
                "{} needs {} ({})",
                variant.name(),
                missing.join(" + "),
                self.info.name
            )
        })
    }

    /// The subgroup size a cooperative-matrix workgroup is made of (min = max required).
    pub(crate) fn coop_subgroup_size(&self) -> Option<u32> {
        let (lo, hi) = (self.info.subgroup_min_size, self.info.subgroup_max_size);
        (lo == hi && lo > 0).then_some(lo)
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Largest storage binding, bytes.
    pub(crate) fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Err if the device was lost or an uncaptured error happened.
    pub(crate) fn check_fault(&self) -> Result<()> {
        match self.fault.lock() {
            Ok(g) => match g.as_ref() {
                Some(m) => Err(Error::Gpu(m.clone())),
                None => Ok(()),
            },
            Err(_) => Err(Error::Gpu("fault lock poisoned".into())),
        }
    }

    /// Run `f` inside validation + out-of-memory error scopes; any error becomes [`Error::Gpu`].
    pub(crate) fn scoped<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_fault()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(Error::Gpu(format!("{what}: out of memory: {e}")));
        }
        if let Some(e) = v {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        self.check_fault()?;
        result
    }

    /// Block until the queue is idle.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("poll: {e}")))
    }
}
