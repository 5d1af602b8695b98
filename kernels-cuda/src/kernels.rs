//! Kernel modules: embedded sm_90a cubins (built by build.rs with nvcc) or files from
//! `HSTU_CUDA_PTX_DIR` (`<stem>.cubin` or `<stem>.ptx`), loaded once per device.

use crate::error::{CudaError, Result, drv};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, sys};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Translation units of `csrc/` (file stems), one module each.
pub const UNITS: &[&str] = &[
    "hstu_attention_fwd_sm90",
    "hstu_attention_bwd_sm90",
    "hstu_attention_wgmma_sm90",
    "elementwise",
    "train_ops",
];

#[cfg(hstu_cuda_kernels)]
fn embedded(stem: &str) -> Option<&'static [u8]> {
    match stem {
        "hstu_attention_fwd_sm90" => Some(include_bytes!(concat!(
            env!("OUT_DIR"),
            "/hstu_attention_fwd_sm90.cubin"
        ))),
        "hstu_attention_bwd_sm90" => Some(include_bytes!(concat!(
            env!("OUT_DIR"),
            "/hstu_attention_bwd_sm90.cubin"
        ))),
        "hstu_attention_wgmma_sm90" => Some(include_bytes!(concat!(
            env!("OUT_DIR"),
            "/hstu_attention_wgmma_sm90.cubin"
        ))),
        "elementwise" => Some(include_bytes!(concat!(
            env!("OUT_DIR"),
            "/elementwise.cubin"
        ))),
        "train_ops" => Some(include_bytes!(concat!(env!("OUT_DIR"), "/train_ops.cubin"))),
        _ => None,
    }
}
#[cfg(not(hstu_cuda_kernels))]
fn embedded(_stem: &str) -> Option<&'static [u8]> {
    None
}

/// True when the kernels were compiled into this binary.
pub fn kernels_embedded() -> bool {
    cfg!(hstu_cuda_kernels)
}

/// Loaded modules and functions (with their dynamic shared memory limit raised once).
pub(crate) struct Kernels {
    ctx: Arc<CudaContext>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
}

impl Kernels {
    pub(crate) fn new(ctx: Arc<CudaContext>) -> Self {
        Self {
            ctx,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        }
    }

    fn module(&self, stem: &'static str) -> Result<Arc<CudaModule>> {
        let mut mods = self.modules.lock().expect("kernel module cache poisoned");
        if let Some(m) = mods.get(stem) {
            return Ok(m.clone());
        }
        let dir = std::env::var("HSTU_CUDA_PTX_DIR").unwrap_or_default();
        let image = if !dir.is_empty() {
            let base = std::path::Path::new(&dir);
            let cubin = base.join(format!("{stem}.cubin"));
            let ptx = base.join(format!("{stem}.ptx"));
            if cubin.is_file() {
                Some(cudarc::nvrtc::Ptx::from_binary(
                    std::fs::read(&cubin).map_err(|e| CudaError::Invalid {
                        op: "load module",
                        msg: format!("{}: {e}", cubin.display()),
                    })?,
                ))
            } else if ptx.is_file() {
                let mut bytes = std::fs::read(&ptx).map_err(|e| CudaError::Invalid {
                    op: "load module",
                    msg: format!("{}: {e}", ptx.display()),
                })?;
                bytes.push(0);
                Some(cudarc::nvrtc::Ptx::from_binary(bytes))
            } else {
                None
            }
        } else {
            None
        };
        let image = match image {
            Some(i) => i,
            None => match embedded(stem) {
                Some(b) => cudarc::nvrtc::Ptx::from_binary(b.to_vec()),
                None => return Err(CudaError::MissingModule { stem, dir }),
            },
        };
        let m = self.ctx.load_module(image).map_err(drv("load module"))?;
        mods.insert(stem, m.clone());
        Ok(m)
    }

    /// Function `name` of module `stem`, allowed `smem_bytes` of dynamic shared memory.
    pub(crate) fn function(
        &self,
        stem: &'static str,
        name: &str,
        smem_bytes: usize,
    ) -> Result<CudaFunction> {
        let key = format!("{name}@{smem_bytes}");
        if let Some(f) = self
            .functions
            .lock()
            .expect("function cache poisoned")
            .get(&key)
        {
            return Ok(f.clone());
        }
        let f = self
            .module(stem)?
            .load_function(name)
            .map_err(drv("load function"))?;
        if smem_bytes > 48 * 1024 {
            f.set_attribute(
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                smem_bytes as i32,
            )
            .map_err(drv("set max dynamic shared memory"))?;
        }
        self.functions
            .lock()
            .expect("function cache poisoned")
            .insert(key, f.clone());
        Ok(f)
    }
}
