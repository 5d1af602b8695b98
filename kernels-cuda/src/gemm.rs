//! Row-major f32 matrix products through cuBLAS (the dense projections of the HSTU layer:
//! `n @ W_uvqk`, `y @ W_o^T` and their backward products).

use crate::device::CudaDevice;
use crate::error::{CudaError, Result};
use cudarc::cublas::sys::cublasOperation_t as Op;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::CudaSlice;

/// A cuBLAS handle bound to the device's stream.
pub struct Blas {
    blas: CudaBlas,
}

impl CudaDevice {
    /// Creates a cuBLAS handle on this device's stream.
    pub fn blas(&self) -> Result<Blas> {
        let blas = CudaBlas::new(self.stream.clone()).map_err(|e| CudaError::Blas {
            op: "create handle",
            msg: format!("{e:?}"),
        })?;
        Ok(Blas { blas })
    }
}

impl Blas {
    /// Lets cuBLAS run f32 products on TF32 tensor cores (10-bit mantissa inputs, f32
    /// accumulation): the mixed-precision mode of the trainer. Off by default (exact SGEMM).
    pub fn set_tf32(&self, on: bool) -> Result<()> {
        use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode, cublasStatus_t};
        let mode = if on {
            cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: the handle is alive for as long as `self`.
        let status = unsafe { cublasSetMathMode(*self.blas.handle(), mode) };
        if status != cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(CudaError::Blas {
                op: "set math mode",
                msg: format!("{status:?}"),
            });
        }
        Ok(())
    }

    /// `c [m, n] = alpha * op(a) @ op(b) + beta * c`, all row-major; `op(a)` is `[m, k]`
    /// (`a` stored `[k, m]` when `trans_a`), `op(b)` is `[k, n]` (`b` stored `[n, k]` when `trans_b`).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_f32(
        &self,
        (m, n, k): (usize, usize, usize),
        a: &CudaSlice<f32>,
        trans_a: bool,
        b: &CudaSlice<f32>,
        trans_b: bool,
        c: &mut CudaSlice<f32>,
        alpha: f32,
        beta: f32,
    ) -> Result<()> {
        for (t, len, want) in [
            ("a", a.len(), m * k),
            ("b", b.len(), k * n),
            ("c", c.len(), m * n),
        ] {
            if len != want {
                return Err(CudaError::Shape {
                    op: "matmul_f32",
                    tensor: t,
                    actual: len,
                    expected: want,
                });
            }
        }
        // Row-major C = A B is column-major C^T = B^T A^T: swap the operands.
        let cfg = GemmConfig {
            transa: if trans_b {
                Op::CUBLAS_OP_T
            } else {
                Op::CUBLAS_OP_N
            },
            transb: if trans_a {
                Op::CUBLAS_OP_T
            } else {
                Op::CUBLAS_OP_N
            },
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha,
            lda: if trans_b { k as i32 } else { n as i32 },
            ldb: if trans_a { m as i32 } else { k as i32 },
            beta,
            ldc: n as i32,
        };
        // SAFETY: buffer sizes checked above against (m, n, k).
        unsafe { self.blas.gemm(cfg, b, a, c) }.map_err(|e| CudaError::Blas {
            op: "sgemm",
            msg: format!("{e:?}"),
        })
    }
}
