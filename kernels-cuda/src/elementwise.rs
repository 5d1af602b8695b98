//! Element-wise kernels of the trainer (`csrc/elementwise.cu`).

use crate::device::CudaDevice;
use crate::error::{CudaError, Result, drv};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

/// AdamW hyper-parameters (hstu-spec section 7: betas (0.9, 0.98), lr 1e-3, wd 0).
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 132 * 16) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaDevice {
    /// One AdamW step (`step` counts from 1) on a parameter, its gradient and moments, all `[n]`.
    pub fn adamw_step(
        &self,
        opt: &AdamW,
        step: u32,
        param: &mut CudaSlice<f32>,
        grad: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = param.len();
        for (name, len) in [("grad", grad.len()), ("m", m.len()), ("v", v.len())] {
            if len != n {
                return Err(CudaError::Shape {
                    op: "adamw_step",
                    tensor: name,
                    actual: len,
                    expected: n,
                });
            }
        }
        let f = self.kernels.function("elementwise", "hstu_adamw_f32", 0)?;
        let bc1 = 1.0 - opt.beta1.powi(step as i32);
        let bc2 = 1.0 - opt.beta2.powi(step as i32);
        let n64 = n as i64;
        // SAFETY: argument list matches hstu_adamw_f32; all four buffers have n elements.
        unsafe {
            self.stream
                .launch_builder(&f)
                .arg(param)
                .arg(grad)
                .arg(m)
                .arg(v)
                .arg(&n64)
                .arg(&opt.lr)
                .arg(&opt.beta1)
                .arg(&opt.beta2)
                .arg(&opt.eps)
                .arg(&opt.weight_decay)
                .arg(&bc1)
                .arg(&bc2)
                .launch(grid(n))
        }
        .map_err(drv("launch adamw"))?;
        Ok(())
    }
}
