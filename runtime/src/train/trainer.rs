//! The training loop of spec section 7: shuffled batches of users, AdamW, validation every epoch,
//! early stopping, the best-validation model kept in the output directory, a checkpoint every
//! epoch for `--resume`, and `metrics.jsonl` (one JSON object per step and per validation).
//!
//! Output directory:
//!
//! ```text
//! OUT/config.json, OUT/model.safetensors     best validation epoch (the trained model)
//! OUT/checkpoint/...                         last epoch: weights, AdamW state, state.json
//! OUT/metrics.jsonl                          {"step","epoch","loss","tokens_per_s"} per step,
//!                                            {"step","epoch","split":"valid",..metrics} per epoch
//! ```

use super::adamw::{AdamW, AdamWConfig};
use super::grads::scale;
use super::loss::SampledSoftmax;
use super::state::{self, TrainState, checkpoint_dir};
use super::step::{batch_grads, ranking_example, retrieval_example};
use super::tape::Dropout;
use crate::checkpoint::{Weights, save_model};
use crate::config::ModelConfig;
use crate::data::UserHistory;
use crate::data::ranking::{RankingExample, train_example};
use crate::error::{Error, Result};
use crate::reference::retrieval::normalized_items;
use crate::rng::Rng;
use crate::sequences::UserSequence;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Everything of a run that is not the model's config.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub epochs: usize,
    pub seed: u64,
    /// Users per step (spec section 7: 128).
    pub batch_size: usize,
    pub adamw: AdamWConfig,
    pub num_negatives: usize,
    pub temperature: f64,
    /// Stop after this many epochs without a better validation score (0 = never).
    pub patience: usize,
    /// Cap on steps per epoch (tests and smoke runs).
    pub max_steps_per_epoch: Option<usize>,
    /// Draw the progress bar on stderr.
    pub progress: bool,
    /// Output the last epoch instead of the best validation epoch (a refit on all training data,
    /// where validation is in-sample and only reported).
    pub keep_last: bool,
    /// The `split` label of the per-epoch evaluation lines of `metrics.jsonl` (and of `best` /
    /// `last`): `valid` for the held-out second-to-last item, `test` under the spec section 8
    /// protocol (`--eval-test`), `valid_in_sample` for a refit.
    pub eval_split: &'static str,
    /// Where the training steps run (validation and checkpoints are on the host either way).
    pub device: TrainDevice,
}

/// Where the training steps run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrainDevice {
    /// The CPU backward, parallel over users and deterministic for a seed.
    #[default]
    Cpu,
    /// The fused CUDA step of [`super::cuda`] on device `ordinal`; `tf32` lets the dense
    /// products use TF32 tensor cores.
    Cuda { ordinal: usize, tf32: bool },
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 101,
            seed: 42,
            batch_size: 128,
            adamw: AdamWConfig::default(),
            num_negatives: 128,
            temperature: 0.05,
            patience: 10,
            max_steps_per_epoch: None,
            progress: true,
            keep_last: false,
            eval_split: "valid",
            device: TrainDevice::Cpu,
        }
    }
}

/// What the trainer learns from.
#[derive(Clone, Debug)]
pub enum TrainData {
    /// Autoregressive sampled softmax on `train` (targets set); validation on `valid`.
    Retrieval {
        train: Vec<UserSequence>,
        valid: Vec<UserSequence>,
    },
    /// Ranking BCE on split points drawn along each user's timeline before its evaluation
    /// ratings; validation on `valid` (spec section 5).
    Ranking {
        users: Vec<UserHistory>,
        valid: Vec<RankingExample>,
        task_names: Vec<String>,
    },
}

/// Summary of a finished run.
#[derive(Clone, Debug)]
pub struct TrainReport {
    pub state: TrainState,
    pub wall_secs: f64,
    /// Tokens encoded per second of training steps (validation excluded), this invocation.
    pub tokens_per_s: f64,
}

/// Appends JSON lines to `metrics.jsonl`.
struct MetricsLog {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl MetricsLog {
    fn open(out: &Path, append: bool) -> Result<Self> {
        let path = out.join("metrics.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(MetricsLog { file, path })
    }

    fn write(&mut self, v: &Value) -> Result<()> {
        writeln!(self.file, "{v}").map_err(|e| Error::io(&self.path, e))
    }
}

/// Validation: the metrics object and the score that early stopping maximises
/// (retrieval NDCG@10; ranking minus the mean NE over tasks).
fn validate(
    cfg: &ModelConfig,
    w: &Weights<f32>,
    data: &TrainData,
    gpu: &Option<DeviceTrainer>,
) -> (serde_json::Map<String, Value>, f64) {
    match data {
        TrainData::Retrieval { valid, .. } => {
            let metrics = match gpu.as_ref().map(|d| d.encode_users(valid, 512)) {
                Some(users) => users.and_then(|u| {
                    crate::evaluate::retrieval_metrics_of_embeddings(cfg, w, valid, &u)
                }),
                None => crate::evaluate::retrieval_metrics(cfg, w, valid, &|| ()),
            };
            match metrics {
                Ok(m) => {
                    let score = m.ndcg_10;
                    match serde_json::to_value(m) {
                        Ok(Value::Object(o)) => (o, score),
                        _ => (serde_json::Map::new(), score),
                    }
                }
                Err(e) => {
                    tracing::warn!("validation failed: {e}");
                    (serde_json::Map::new(), f64::NEG_INFINITY)
                }
            }
        }
        TrainData::Ranking {
            valid, task_names, ..
        } => {
            let tasks = match crate::evaluate::ranking_task_metrics(cfg, w, valid) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("validation failed: {e}");
                    return (serde_json::Map::new(), f64::NEG_INFINITY);
                }
            };
            let mut o = serde_json::Map::new();
            for (t, name) in tasks.iter().zip(task_names) {
                o.insert(format!("NE[{name}]"), t.ne.into());
                o.insert(format!("AUC[{name}]"), t.auc.into());
            }
            let mean_ne = tasks.iter().map(|t| t.ne).sum::<f64>() / tasks.len().max(1) as f64;
            (o, -mean_ne)
        }
    }
}

/// A seeded permutation of `0..n` (Fisher-Yates).
fn permutation(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i as u64 + 1) as usize);
    }
    p
}

/// Stream keys of the run's random draws (all derived from the seed).
const SHUFFLE_STREAM: u64 = 0x5348_5546_0000_0000;
const STEP_STREAM: u64 = 0x5354_4550_0000_0000;

/// One epoch's examples in order.
enum Epoch<'a> {
    Retrieval(Vec<&'a UserSequence>),
    Ranking(Vec<RankingExample>),
}

fn epoch_examples<'a>(
    data: &'a TrainData,
    cfg: &ModelConfig,
    seed: u64,
    epoch: usize,
) -> Epoch<'a> {
    let mut rng = Rng::new(seed).fork(SHUFFLE_STREAM + epoch as u64);
    match data {
        TrainData::Retrieval { train, .. } => Epoch::Retrieval(
            permutation(train.len(), &mut rng)
                .into_iter()
                .map(|i| &train[i])
                .collect(),
        ),
        TrainData::Ranking { users, .. } => Epoch::Ranking(
            permutation(users.len(), &mut rng)
                .into_iter()
                .filter_map(|i| train_example(&users[i], &mut rng, cfg.max_sequence_len))
                .collect(),
        ),
    }
}

/// Train from `init` (ignored on `resume`, which continues the checkpoint under `out`).
pub fn train(
    cfg: &ModelConfig,
    init: Weights<f32>,
    data: &TrainData,
    opts: &TrainOptions,
    out: &Path,
    resume: bool,
) -> Result<TrainReport> {
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let ckpt = checkpoint_dir(out);
    let has_checkpoint = ckpt.join("state.json").is_file();
    if resume && !has_checkpoint {
        // Killed before its first checkpoint: nothing was done that a fresh start would not redo.
        tracing::warn!(
            "--resume: no checkpoint under {} yet; starting from the beginning",
            ckpt.display()
        );
    }
    let (mut w, mut opt, mut st) = if resume && has_checkpoint {
        state::load(out, cfg, opts.adamw)?
    } else {
        if has_checkpoint {
            return Err(Error::Input(format!(
                "{} already holds a training checkpoint: pass --resume to continue it, or choose another --out",
                out.display()
            )));
        }
        (
            init.clone(),
            AdamW::new(opts.adamw, &init),
            TrainState::new(opts.seed),
        )
    };
    if resume && st.seed != opts.seed {
        tracing::warn!(
            saved = st.seed,
            given = opts.seed,
            "--resume keeps the checkpoint's seed"
        );
    }
    let seed = st.seed;
    let dropout = Dropout::of_config(cfg);
    let mut gpu = open_device(cfg, &w, &opt, opts, dropout)?;
    let mut log = MetricsLog::open(out, resume)?;
    let loss = SampledSoftmax {
        num_negatives: opts.num_negatives,
        temperature: opts.temperature,
        num_items: cfg.num_items,
    };
    let (mut train_tokens, mut train_secs) = (0usize, 0.0f64);
    while st.epochs_done < opts.epochs && !st.stopped_early {
        let epoch = st.epochs_done + 1;
        let examples = epoch_examples(data, cfg, seed, epoch);
        let n = match &examples {
            Epoch::Retrieval(v) => v.len(),
            Epoch::Ranking(v) => v.len(),
        };
        let mut steps = n.div_ceil(opts.batch_size.max(1));
        if let Some(cap) = opts.max_steps_per_epoch {
            steps = steps.min(cap);
        }
        let bar = progress_bar(steps as u64, epoch, opts.progress);
        let (mut epoch_loss, mut epoch_count) = (0.0, 0usize);
        for s in 0..steps {
            let t0 = Instant::now();
            let range = s * opts.batch_size..((s + 1) * opts.batch_size).min(n);
            let (sum, tokens) = match (&mut gpu, &examples) {
                (Some(dev), Epoch::Retrieval(v)) => {
                    let (sum, tokens) = dev.step(&v[range], seed)?;
                    if sum.count == 0 {
                        continue;
                    }
                    (sum, tokens)
                }
                _ => {
                    let rng = Rng::new(seed).fork(STEP_STREAM + st.step);
                    let (g, sum, tokens) = match &examples {
                        Epoch::Retrieval(v) => {
                            let items = normalized_items(&w.item_emb, cfg.l2_norm_eps);
                            let f = |seq: &&UserSequence, r: &mut Rng, g: &mut _| {
                                retrieval_example(cfg, &w, &items, &loss, dropout, seq, r, g)
                            };
                            batch_grads(&w, &v[range], &rng, &f)
                        }
                        Epoch::Ranking(v) => {
                            let f = |ex: &RankingExample, r: &mut Rng, g: &mut _| {
                                ranking_example(cfg, &w, dropout, ex, r, g)
                            };
                            batch_grads(&w, &v[range], &rng, &f)
                        }
                    };
                    if sum.count == 0 {
                        continue;
                    }
                    let mut g = g.finish(&w, cfg.l2_norm_eps);
                    scale(&mut g, 1.0 / sum.count as f32);
                    opt.update(&mut w, &g);
                    (sum, tokens)
                }
            };
            st.step += 1;
            let secs = t0.elapsed().as_secs_f64();
            train_tokens += tokens;
            train_secs += secs;
            let mean = sum.sum / sum.count as f64;
            epoch_loss += sum.sum;
            epoch_count += sum.count;
            let tps = tokens as f64 / secs.max(1e-9);
            log.write(
                &json!({"step": st.step, "epoch": epoch, "loss": mean, "tokens_per_s": tps}),
            )?;
            bar.set_message(format!("epoch {epoch} loss {mean:.4} {tps:.0} tok/s"));
            bar.inc(1);
        }
        bar.finish_and_clear();
        if let Some(d) = &gpu {
            // validation and the checkpoint read the host copies
            d.download(&mut w, &mut opt)?;
        }
        if let Some((name, i, x)) = w.find_non_finite() {
            return Err(Error::NonFinite(format!(
                "after epoch {epoch}: `{name}`[{i}] = {x}"
            )));
        }
        let (metrics, score) = validate(cfg, &w, data, &gpu);
        let mut line = json!({"step": st.step, "epoch": epoch, "split": opts.eval_split,
            "train_loss": epoch_loss / epoch_count.max(1) as f64});
        line.as_object_mut()
            .expect("object")
            .extend(metrics.clone());
        log.write(&line)?;
        tracing::info!(epoch, step = st.step, train_loss = epoch_loss / epoch_count.max(1) as f64, valid = %serde_json::Value::Object(metrics.clone()), "epoch done");
        st.epochs_done = epoch;
        st.last_metrics = line.clone();
        if score > st.best_score {
            st.best_score = score;
            st.best_epoch = epoch;
            st.best_metrics = line;
            st.epochs_since_best = 0;
            if !opts.keep_last {
                save_model(out, cfg, &w)?;
            }
        } else {
            st.epochs_since_best += 1;
            if opts.patience > 0 && st.epochs_since_best >= opts.patience {
                st.stopped_early = true;
                tracing::info!(epoch, best_epoch = st.best_epoch, "early stopping");
            }
        }
        if opts.keep_last {
            save_model(out, cfg, &w)?;
        }
        state::save(out, cfg, &w, &opt, &st)?;
    }
    Ok(TrainReport {
        state: st,
        wall_secs: started.elapsed().as_secs_f64(),
        tokens_per_s: train_tokens as f64 / train_secs.max(1e-9),
    })
}

#[cfg(feature = "cuda")]
type DeviceTrainer = super::cuda::CudaTrainer;
#[cfg(not(feature = "cuda"))]
type DeviceTrainer = NoDevice;

/// The device trainer of a build without CUDA: it cannot be made, so its methods never run.
#[cfg(not(feature = "cuda"))]
enum NoDevice {}

#[cfg(not(feature = "cuda"))]
impl NoDevice {
    fn step(&mut self, _: &[&UserSequence], _: u64) -> Result<(super::loss::LossSum, usize)> {
        match *self {}
    }

    fn download(&self, _: &mut Weights<f32>, _: &mut AdamW<f32>) -> Result<()> {
        match *self {}
    }

    fn encode_users(&self, _: &[UserSequence], _: usize) -> Result<Vec<f32>> {
        match *self {}
    }
}

/// The device trainer of `opts.device` (`None` for the CPU), holding `w` and `opt`.
#[cfg(feature = "cuda")]
fn open_device(
    cfg: &ModelConfig,
    w: &Weights<f32>,
    opt: &AdamW<f32>,
    opts: &TrainOptions,
    dropout: Dropout,
) -> Result<Option<DeviceTrainer>> {
    let TrainDevice::Cuda { ordinal, tf32 } = opts.device else {
        return Ok(None);
    };
    let t = super::cuda::CudaTrainer::new(
        ordinal,
        cfg,
        w,
        opt,
        super::cuda::CudaStepOptions {
            num_negatives: opts.num_negatives,
            temperature: opts.temperature as f32,
            dropout,
            tf32,
            // measured slower on the H200 (4.8 vs 4.2 ms at 25,600 tokens): the row kernel, not
            // the atomics, bounds the loss
            sorted_softmax: false,
        },
    )?;
    tracing::info!(device = %t.describe(), tf32, "training on CUDA");
    Ok(Some(t))
}

#[cfg(not(feature = "cuda"))]
fn open_device(
    _cfg: &ModelConfig,
    _w: &Weights<f32>,
    _opt: &AdamW<f32>,
    opts: &TrainOptions,
    _dropout: Dropout,
) -> Result<Option<DeviceTrainer>> {
    match opts.device {
        TrainDevice::Cpu => Ok(None),
        TrainDevice::Cuda { .. } => Err(Error::Input(
            "--device cuda: this build has no CUDA support (build hstu-runtime with the `cuda` feature)".into(),
        )),
    }
}

fn progress_bar(len: u64, epoch: usize, visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("epoch {epoch}"));
    bar
}
