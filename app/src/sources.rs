//! Where the explorer reads its model, ranking model and data from (CLI args, defaults).

use std::path::{Path, PathBuf};

/// The bundled assets: `$HSTU_ASSETS`, `./assets`, or the source tree's `assets/`.
pub fn assets_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HSTU_ASSETS").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("assets");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("assets")
}

/// The three inputs of a session.
#[derive(Clone, Debug, PartialEq)]
pub struct Sources {
    /// Retrieval model directory (`config.json`, `model.safetensors`, optional `metrics.jsonl`).
    pub model_dir: PathBuf,
    /// Ranking model directory (with a `ranking` head); the retrieval model is used when absent.
    pub ranking_dir: PathBuf,
    /// A sequences JSONL or a MovieLens ratings file / directory.
    pub data_path: PathBuf,
}

impl Sources {
    /// The bundled model, ranking model and sample sequences.
    pub fn bundled() -> Self {
        let assets = assets_dir();
        Sources {
            model_dir: assets.join("ml-100k-hstu"),
            ranking_dir: assets.join("ml-100k-hstu-ranking"),
            data_path: assets.join("sample_sequences.jsonl"),
        }
    }

    /// `metrics.jsonl` of the model directory.
    pub fn metrics_path(&self) -> PathBuf {
        self.model_dir.join("metrics.jsonl")
    }
}

/// What a dropped or typed path most likely is: a model directory, or data.
pub fn is_model_dir(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
}
