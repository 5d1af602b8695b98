//! The crate's error type.

/// Everything that can go wrong in `hstu-cuda`; variants name the op and the offending values.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver found (libcuda not loadable): {0}")]
    NoDriver(&'static str),
    #[error("CUDA driver error in {op}: {source}")]
    Driver {
        op: &'static str,
        #[source]
        source: cudarc::driver::DriverError,
    },
    #[error("cuBLAS error in {op}: {msg}")]
    Blas { op: &'static str, msg: String },
    #[error(
        "kernel module {stem} unavailable: not embedded (built without nvcc) and not found in \
         HSTU_CUDA_PTX_DIR ({dir})"
    )]
    MissingModule { stem: &'static str, dir: String },
    #[error("{op}: unsupported {what}: {value}")]
    Unsupported {
        op: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("{op}: tensor {tensor} has {actual} elements, expected {expected}")]
    Shape {
        op: &'static str,
        tensor: &'static str,
        actual: usize,
        expected: usize,
    },
    #[error("{op}: invalid input: {msg}")]
    Invalid { op: &'static str, msg: String },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, CudaError>;

pub(crate) fn drv(op: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError {
    move |source| CudaError::Driver { op, source }
}
