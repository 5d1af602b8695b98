//! The one error type of `hstu-runtime`: every variant names the file, line or tensor at fault.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The io error is part of the message (not a `source`), so a chain prints it once.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: invalid config: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: checkpoint: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{path}: tensor `{tensor}`: {message}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error("invalid input: {0}")]
    Input(String),
    #[error("limit exceeded: {0}")]
    Limit(String),
    #[error("gpu: {0}")]
    Gpu(String),
    #[error("numerical: {0}")]
    NonFinite(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }
}
