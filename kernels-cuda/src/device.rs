//! One CUDA device: context, stream, kernel modules, cuBLAS handle.

use crate::error::{CudaError, Result, drv};
use crate::kernels::Kernels;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr};
use std::sync::Arc;

/// A CUDA device with one stream; all work of this crate is queued on that stream in order.
pub struct CudaDevice {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) kernels: Kernels,
}

/// True when a CUDA driver library can be loaded (cudarc panics on first use otherwise).
pub fn cuda_available() -> bool {
    // SAFETY: only tries to dlopen the driver library.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

impl CudaDevice {
    /// Opens device `ordinal`; a clear error (never a panic) when no driver is present.
    pub fn new(ordinal: usize) -> Result<Self> {
        if !cuda_available() {
            return Err(CudaError::NoDriver("libcuda.so not found"));
        }
        let ctx = CudaContext::new(ordinal).map_err(drv("create context"))?;
        // SAFETY: this crate uses a single stream per device, so cross-stream tracking is moot.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let kernels = Kernels::new(ctx.clone());
        Ok(Self {
            ctx,
            stream,
            kernels,
        })
    }

    /// The device name and compute capability, e.g. `"NVIDIA H200 (sm_90)"`.
    pub fn describe(&self) -> Result<String> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let name = self.ctx.name().map_err(drv("device name"))?;
        let major = self
            .ctx
            .attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .map_err(drv("attribute"))?;
        let minor = self
            .ctx
            .attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .map_err(drv("attribute"))?;
        Ok(format!("{name} (sm_{major}{minor})"))
    }

    /// The stream all kernels of this device run on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The context of this device.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Uploads a host slice.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.stream.clone_htod(host).map_err(drv("upload"))
    }

    /// Downloads a device slice (synchronises the stream).
    pub fn download<T: DeviceRepr + Default + Clone>(&self, dev: &CudaSlice<T>) -> Result<Vec<T>> {
        self.stream.clone_dtoh(dev).map_err(drv("download"))
    }

    /// Zero-initialised device buffer.
    pub fn zeros<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros(n).map_err(drv("alloc"))
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(drv("synchronize"))
    }

    pub(crate) fn ptr<T>(&self, s: &CudaSlice<T>) -> u64 {
        let (p, _sync) = s.device_ptr(&self.stream);
        p
    }

    pub(crate) fn ptr_mut<T>(&self, s: &mut CudaSlice<T>) -> u64 {
        let (p, _sync) = s.device_ptr_mut(&self.stream);
        p
    }
}
