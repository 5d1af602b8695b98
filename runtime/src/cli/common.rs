//! Shared pieces of the subcommands: defaults, model loading, the device choice, progress bars.

use anyhow::{Context, Result};
use hstu_runtime::checkpoint::Model;
use std::path::{Path, PathBuf};

/// Where the bundled assets live: `$HSTU_ASSETS`, `./assets`, or the source tree's `assets/`.
pub fn assets_dir() -> PathBuf {
    if let Ok(p) = std::env::var("HSTU_ASSETS") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("assets");
    if local.join("ml-100k-hstu").is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("assets")
}

/// The bundled default retrieval model.
pub fn default_model() -> PathBuf {
    assets_dir().join("ml-100k-hstu")
}

/// The bundled ranking model (falls back to the retrieval model when absent).
pub fn default_ranking_model() -> PathBuf {
    let p = assets_dir().join("ml-100k-hstu-ranking");
    if p.is_dir() { p } else { default_model() }
}

/// The bundled sample sequences.
pub fn default_sequences() -> PathBuf {
    assets_dir().join("sample_sequences.jsonl")
}

/// Load a model directory, checking for NaN/Inf when asked.
pub fn load_model(dir: &Path, check_finite: bool) -> Result<Model> {
    let model = Model::load(dir).with_context(|| format!("loading model {}", dir.display()))?;
    if check_finite && let Some((name, i, x)) = model.weights.find_non_finite() {
        anyhow::bail!(
            "{}: tensor `{name}` holds {x} at flat index {i}",
            dir.join("model.safetensors").display()
        );
    }
    tracing::info!(
        model = %dir.display(),
        params = model.weights.parameter_count(),
        ranking = model.config.ranking.is_some(),
        "loaded model"
    );
    Ok(model)
}

/// Which backend runs the model.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The CPU reference (parallel over users).
    Cpu,
    /// The WGSL runtime on the adapter wgpu picks (WGPU_BACKEND, WGPU_ADAPTER_NAME respected).
    Gpu,
    /// The GPU when an adapter is found, otherwise the CPU with a warning.
    Auto,
}

pub fn init_tracing(level: &str) {
    let filter = std::env::var("HSTU_LOG").unwrap_or_else(|_| level.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
