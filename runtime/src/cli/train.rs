//! `hstu train`: the CPU trainer of spec section 7 (retrieval) and section 5 (ranking, when the
//! config has a `ranking` object).
//!
//! Splits (leave-one-out, spec section 8): retrieval trains on each user's timeline without its
//! last two items and validates on the second-to-last, so `hstu eval` (the last item) stays
//! held out. Ranking drops each user's last 10 ratings (the evaluation candidates), trains on
//! split points before the 10 ratings preceding them and validates on those 10.

use super::eval::resolve_data;
use anyhow::{Context, Result, bail};
use hstu_runtime::checkpoint::{Model, Weights};
use hstu_runtime::config::ModelConfig;
use hstu_runtime::data::ranking::{MAX_RANKING_CANDIDATES, eval_example, eval_split_point};
use hstu_runtime::data::{Limits, UserHistory, load_dataset, split};
use hstu_runtime::train::adamw::AdamWConfig;
use hstu_runtime::train::grads::tensors_mut;
use hstu_runtime::train::{TrainData, TrainOptions, train};
use std::path::PathBuf;

/// Where training runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainDevice {
    /// The CPU backward, parallel over users (rayon).
    Cpu,
    /// The fused CUDA step of hstu-cuda (retrieval models; NVIDIA sm_90 GPU, e.g. H100/H200):
    /// bf16 tensor-core attention, TF32 GEMMs, f32 weights and AdamW on the device.
    Cuda,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Ratings file (u.data, ml-100k.inter, ratings.dat, ratings.csv) or `ml-100k` (fetched and cached).
    #[arg(long)]
    data: String,
    /// Model config.json (a `ranking` object trains a ranking model).
    #[arg(long)]
    config: PathBuf,
    /// Output directory: best model (config.json + model.safetensors), checkpoint/, metrics.jsonl.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 101)]
    epochs: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Continue the checkpoint under --out exactly where it stopped.
    #[arg(long)]
    resume: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    device: TrainDevice,
    /// CUDA device ordinal (--device cuda).
    #[arg(long, default_value_t = 0)]
    cuda_device: usize,
    /// Exact f32 SGEMM instead of TF32 tensor cores for the dense products (--device cuda).
    #[arg(long)]
    no_tf32: bool,
    /// Users per step.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Sampled-softmax negatives per position.
    #[arg(long, default_value_t = 128)]
    negatives: usize,
    #[arg(long, default_value_t = 0.05)]
    temperature: f64,
    /// Stop after this many epochs without a better validation score (0 = never).
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Cap on steps per epoch (smoke runs).
    #[arg(long)]
    max_steps_per_epoch: Option<usize>,
    /// Initialise every tensor of the same name and shape from this model directory
    /// (e.g. a ranking model from a trained retrieval model).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Refit: train retrieval on every item but the test target (validation becomes in-sample and
    /// is only reported), no early stopping, output the last epoch. Use --epochs = the best epoch
    /// of a validated run.
    #[arg(long)]
    refit: bool,
    /// Spec section 8 protocol (the reference trainer's): train on every item but each user's
    /// last, evaluate the last item every epoch and report the best and the last epoch; the
    /// output model is the best epoch on that evaluation (no held-out validation; retrieval only).
    #[arg(long, conflicts_with = "refit")]
    eval_test: bool,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// Users without their last `n` interactions.
fn drop_last(users: &[UserHistory], n: usize) -> Vec<UserHistory> {
    users
        .iter()
        .filter(|u| u.len() > n)
        .map(|u| {
            let k = u.len() - n;
            UserHistory {
                user_id: u.user_id,
                items: u.items[..k].to_vec(),
                timestamps: u.timestamps[..k].to_vec(),
                ratings: u.ratings[..k].to_vec(),
            }
        })
        .collect()
}

/// Seeded weights, with every matching tensor of `init` copied in.
fn initial_weights(cfg: &ModelConfig, seed: u64, init: Option<&PathBuf>) -> Result<Weights<f32>> {
    let mut w = Weights::<f32>::seeded(cfg, seed);
    let Some(dir) = init else { return Ok(w) };
    let src = Model::load(dir).with_context(|| format!("loading --init {}", dir.display()))?;
    let from: std::collections::HashMap<String, Vec<f32>> = src
        .weights
        .named()
        .into_iter()
        .map(|(n, _, v)| (n, v.to_vec()))
        .collect();
    let names: Vec<String> = w.named().into_iter().map(|(n, _, _)| n).collect();
    let mut copied = 0;
    for (name, dst) in names.iter().zip(tensors_mut(&mut w)) {
        if let Some(v) = from.get(name).filter(|v| v.len() == dst.len()) {
            dst.copy_from_slice(v);
            copied += 1;
        }
    }
    tracing::info!(init = %dir.display(), copied, of = names.len(), "initialised from a model");
    Ok(w)
}

pub fn run(a: TrainArgs) -> Result<()> {
    let cfg = ModelConfig::load(&a.config)?;
    let path = resolve_data(&a.data)?;
    let ds = load_dataset(&path, &Limits::default())?;
    if ds.num_items > cfg.num_items {
        bail!(
            "{}: item ids reach {} but {} has num_items = {}",
            path.display(),
            ds.num_items,
            a.config.display(),
            cfg.num_items
        );
    }
    if a.eval_test && cfg.ranking.is_some() {
        bail!(
            "--eval-test is the retrieval protocol of spec section 8; a ranking config validates on its held-out ratings"
        );
    }
    let data = match &cfg.ranking {
        None => TrainData::Retrieval {
            train: split::sequences(
                &ds,
                if a.refit || a.eval_test {
                    split::Split::Train
                } else {
                    split::Split::TrainWithValid
                },
                cfg.max_sequence_len,
            ),
            valid: split::sequences(
                &ds,
                if a.eval_test {
                    split::Split::Test
                } else {
                    split::Split::Valid
                },
                cfg.max_sequence_len,
            ),
        },
        Some(r) => {
            let users = drop_last(&ds.users, MAX_RANKING_CANDIDATES);
            let valid = users
                .iter()
                .filter_map(|u| eval_example(u, cfg.max_sequence_len))
                .collect();
            let users = users
                .into_iter()
                .filter(|u| eval_split_point(u.len()).is_some_and(|s| s >= 2))
                .collect();
            let task_names = r
                .task_thresholds
                .iter()
                .map(|t| format!("rating>={t}"))
                .collect();
            TrainData::Ranking {
                users,
                valid,
                task_names,
            }
        }
    };
    let opts = TrainOptions {
        epochs: a.epochs,
        seed: a.seed,
        batch_size: a.batch_size,
        adamw: AdamWConfig {
            lr: a.lr,
            weight_decay: a.weight_decay,
            ..AdamWConfig::default()
        },
        num_negatives: a.negatives,
        temperature: a.temperature,
        // the refit and the spec protocol run every epoch (the reference trainer's 101)
        patience: if a.refit || a.eval_test {
            0
        } else {
            a.patience
        },
        max_steps_per_epoch: a.max_steps_per_epoch,
        progress: !a.no_progress,
        keep_last: a.refit,
        eval_split: if a.eval_test {
            "test"
        } else if a.refit {
            "valid_in_sample"
        } else {
            "valid"
        },
        device: match a.device {
            TrainDevice::Cpu => hstu_runtime::train::TrainDevice::Cpu,
            TrainDevice::Cuda => hstu_runtime::train::TrainDevice::Cuda {
                ordinal: a.cuda_device,
                tf32: !a.no_tf32,
            },
        },
    };
    let init = initial_weights(&cfg, a.seed, a.init.as_ref())?;
    let report = train(&cfg, init, &data, &opts, &a.out, a.resume)?;
    let st = &report.state;
    println!(
        "{}",
        serde_json::json!({
            "out": a.out, "epochs_done": st.epochs_done, "steps": st.step, "stopped_early": st.stopped_early,
            "best_epoch": st.best_epoch, "best": st.best_metrics, "last": st.last_metrics,
            "wall_secs": report.wall_secs, "tokens_per_s": report.tokens_per_s,
        })
    );
    Ok(())
}
