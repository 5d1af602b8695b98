//! The trainer's checkpoint, written every epoch so that `--resume` continues exactly.
//!
//! * `checkpoint/train-<step>.safetensors`: one snapshot of the weights (`w.<tensor>`), the AdamW
//!   moments (`m.<tensor>`, `v.<tensor>`) and the step, in a single file;
//! * `checkpoint/state.json` ([`TrainState`]), naming its snapshot;
//! * `checkpoint/{config.json, model.safetensors}`: the current weights as a model directory.
//!
//! Every file goes through `write_atomic`. The snapshot is written under a new name, then
//! `state.json` is switched to it, then older snapshots are removed: a crash at any moment
//! leaves a `state.json` whose snapshot is complete and of the same epoch.

use super::adamw::{AdamW, AdamWConfig};
use super::grads::{tensors_mut, zeros_like};
use crate::checkpoint::{Weights, load_raw, save_model, serialize_tensors, write_atomic};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Progress of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs finished (the next epoch to run).
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub step: u64,
    pub seed: u64,
    /// Best validation score so far (higher is better) and its epoch (1-based; 0 = none yet).
    pub best_score: f64,
    pub best_epoch: usize,
    pub epochs_since_best: usize,
    /// Validation metrics of the best epoch and of the last one.
    pub best_metrics: serde_json::Value,
    pub last_metrics: serde_json::Value,
    /// True once early stopping fired.
    pub stopped_early: bool,
    /// File name (under `checkpoint/`) of the snapshot this state belongs to.
    #[serde(default)]
    pub snapshot: String,
}

impl TrainState {
    pub fn new(seed: u64) -> Self {
        TrainState {
            epochs_done: 0,
            step: 0,
            seed,
            best_score: f64::NEG_INFINITY,
            best_epoch: 0,
            epochs_since_best: 0,
            best_metrics: serde_json::Value::Null,
            last_metrics: serde_json::Value::Null,
            stopped_early: false,
            snapshot: String::new(),
        }
    }
}

pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Write the weights, the optimizer and the state of the end of an epoch.
pub fn save(
    out: &Path,
    cfg: &ModelConfig,
    w: &Weights<f32>,
    opt: &AdamW<f32>,
    state: &TrainState,
) -> Result<()> {
    let dir = checkpoint_dir(out);
    save_model(&dir, cfg, w)?;
    let mut tensors = Vec::new();
    for (prefix, m) in [("w", w), ("m", &opt.m), ("v", &opt.v)] {
        for (name, shape, values) in m.named() {
            tensors.push((format!("{prefix}.{name}"), shape, values.to_vec()));
        }
    }
    let bytes = serialize_tensors(&tensors, &[("step".into(), vec![1], vec![opt.step as i64])])?;
    let snapshot = format!("train-{}.safetensors", opt.step);
    write_atomic(&dir.join(&snapshot), &bytes)?;
    let state = TrainState {
        snapshot: snapshot.clone(),
        ..state.clone()
    };
    let json = serde_json::to_string_pretty(&state).expect("state serialises");
    write_atomic(&dir.join("state.json"), json.as_bytes())?;
    // Older snapshots are no longer referenced.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("train-") && name.ends_with(".safetensors") && name != snapshot {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

/// Copy the snapshot tensors `<prefix>.<name>` into `dst`, every one present with its size.
fn fill(
    dst: &mut Weights<f32>,
    prefix: &str,
    names: &[String],
    raw: &std::collections::BTreeMap<String, crate::checkpoint::RawTensor>,
    path: &Path,
) -> Result<()> {
    for (name, values) in names.iter().zip(tensors_mut(dst)) {
        let key = format!("{prefix}.{name}");
        let t = raw
            .get(&key)
            .filter(|t| t.values.len() == values.len())
            .ok_or_else(|| Error::Tensor {
                path: path.into(),
                tensor: key.clone(),
                message: format!("missing or not of {} values", values.len()),
            })?;
        values
            .iter_mut()
            .zip(&t.values)
            .for_each(|(d, &s)| *d = s as f32);
    }
    Ok(())
}

/// Load what [`save`] wrote.
pub fn load(
    out: &Path,
    cfg: &ModelConfig,
    adamw: AdamWConfig,
) -> Result<(Weights<f32>, AdamW<f32>, TrainState)> {
    let dir = checkpoint_dir(out);
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| Error::Data {
        path: state_path.clone(),
        message: format!("malformed trainer state: {e}"),
    })?;
    let saved_cfg = ModelConfig::load(&dir.join("config.json"))?;
    if &saved_cfg != cfg {
        return Err(Error::Data {
            path: dir.join("config.json"),
            message: "the checkpoint's config differs from --config".into(),
        });
    }
    let opt_path = dir.join(&state.snapshot);
    if state.snapshot.is_empty() || state.snapshot.contains(['/', '\\']) {
        return Err(Error::Data {
            path: state_path.clone(),
            message: format!("no valid snapshot named (got {:?})", state.snapshot),
        });
    }
    let raw = load_raw(&opt_path)?;
    let mut w = Weights::<f32>::seeded(cfg, 0);
    let mut opt = AdamW::new(adamw, &w);
    opt.step = raw.get("step").map_or(0.0, |t| t.values[0]) as u64;
    let names: Vec<String> = w.named().into_iter().map(|(n, _, _)| n).collect();
    fill(&mut w, "w", &names, &raw, &opt_path)?;
    for (prefix, m) in [("m", &mut opt.m), ("v", &mut opt.v)] {
        *m = zeros_like(&w);
        fill(m, prefix, &names, &raw, &opt_path)?;
    }
    Ok((w, opt, state))
}
