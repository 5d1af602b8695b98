//! `hstu encode`, `hstu retrieve`, `hstu rank` (spec section 4).

use super::common::{
    Device, default_model, default_ranking_model, default_sequences, load_model, progress,
};
use anyhow::{Context, Result, bail};
use hstu_runtime::checkpoint::{Model, serialize_tensors, write_atomic};
use hstu_runtime::real::sigmoid;
use hstu_runtime::reference::{self, TopK, ranking::ranking_logits, retrieval::normalized_items};
use hstu_runtime::sequences::{SequenceFile, UserSequence};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ModelInput {
    /// Model directory (config.json + model.safetensors); default: the bundled model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Sequences JSONL (spec section 3), one user per line; default: the bundled sample.
    #[arg(long)]
    sequences: Option<PathBuf>,
    /// Backend: cpu (reference), gpu (WGSL via wgpu), auto (gpu if an adapter exists).
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// Skip the NaN/Inf scan of the weights.
    #[arg(long)]
    no_check_finite: bool,
}

impl ModelInput {
    fn load(&self, default: fn() -> PathBuf) -> Result<(Model, Vec<UserSequence>)> {
        let dir = self.model.clone().unwrap_or_else(default);
        let model = load_model(&dir, !self.no_check_finite)?;
        let path = self.sequences.clone().unwrap_or_else(default_sequences);
        let seqs = SequenceFile::load(&path, &model.config)
            .with_context(|| format!("reading sequences {}", path.display()))?
            .sequences;
        tracing::info!(users = seqs.len(), sequences = %path.display(), "loaded sequences");
        Ok((model, seqs))
    }
}

#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    #[command(flatten)]
    input: ModelInput,
    /// Output safetensors: user_embeddings [B, D], sequence_embeddings [sum L, D] (f32), seq_offsets [B+1] (i64).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RetrieveArgs {
    #[command(flatten)]
    input: ModelInput,
    /// Number of items per user (history excluded).
    #[arg(long, default_value_t = 10)]
    top_k: usize,
}

#[derive(clap::Args, Debug)]
pub struct RankArgs {
    #[command(flatten)]
    input: ModelInput,
    /// Candidates per M-FALCON micro-batch (the history KV cache is reused across micro-batches).
    #[arg(long, default_value_t = 64)]
    microbatch: usize,
    /// Also write candidate_embeddings [sum m, D] (final e_c before L2) and candidate_offsets [B+1].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The backend chosen for a run.
pub enum Backend {
    Cpu,
    #[cfg(feature = "gpu")]
    Gpu(Box<hstu_runtime::gpu::GpuModel>),
}

impl Backend {
    /// `cpu`, `gpu` (an error when no adapter works) or `auto` (the GPU, else the CPU with a warning).
    pub fn new(device: Device, model: &Model) -> Result<Backend> {
        if device == Device::Cpu {
            return Ok(Backend::Cpu);
        }
        match (Self::gpu(model), device) {
            (Ok(b), _) => Ok(b),
            (Err(e), Device::Auto) => {
                tracing::warn!("no usable GPU ({e:#}); falling back to the CPU reference");
                Ok(Backend::Cpu)
            }
            (Err(e), _) => Err(e).context("--device gpu"),
        }
    }

    #[cfg(feature = "gpu")]
    fn gpu(model: &Model) -> Result<Backend> {
        let ctx = hstu_runtime::gpu::GpuContext::new()?;
        tracing::info!(adapter = %ctx.adapter_summary(), "running on the GPU");
        Ok(Backend::Gpu(Box::new(hstu_runtime::gpu::GpuModel::upload(
            &ctx, model,
        )?)))
    }

    #[cfg(not(feature = "gpu"))]
    fn gpu(_: &Model) -> Result<Backend> {
        bail!("this build of hstu has no GPU support (built without the `gpu` feature)")
    }
}

fn encode_cpu(model: &Model, seqs: &[UserSequence]) -> (Vec<f32>, Vec<f32>) {
    let bar = progress(seqs.len() as u64, "encode");
    let outs: Vec<_> = seqs
        .par_iter()
        .map(|s| {
            let o = reference::encode_user(&model.config, &model.weights, s);
            bar.inc(1);
            o
        })
        .collect();
    bar.finish_and_clear();
    let users = outs
        .iter()
        .flat_map(|o| o.user_embedding.iter().copied())
        .collect();
    let all = outs
        .iter()
        .flat_map(|o| o.sequence_embeddings.data.iter().copied())
        .collect();
    (users, all)
}

pub fn encode(a: EncodeArgs) -> Result<()> {
    let (model, seqs) = a.input.load(default_model)?;
    let d = model.config.embedding_dim;
    let tokens: usize = seqs.iter().map(|s| s.items.len()).sum();
    hstu_runtime::limits::check_host_allocation(
        "the encoded embeddings",
        ((tokens + seqs.len()) * d * 4 * 2) as u64,
    )?;
    let (users, all) = match Backend::new(a.input.device, &model)? {
        Backend::Cpu => encode_cpu(&model, &seqs),
        #[cfg(feature = "gpu")]
        Backend::Gpu(g) => {
            let o = g.encode(&seqs)?;
            (o.user_embeddings, o.sequence_embeddings)
        }
    };
    let offsets = seq_offsets(seqs.iter().map(|s| s.items.len()));
    let total = *offsets.last().unwrap_or(&0) as usize;
    let bytes = serialize_tensors(
        &[
            ("user_embeddings".into(), vec![seqs.len(), d], users),
            ("sequence_embeddings".into(), vec![total, d], all),
        ],
        &[("seq_offsets".into(), vec![seqs.len() + 1], offsets)],
    )?;
    write_atomic(&a.out, &bytes)?;
    tracing::info!(out = %a.out.display(), users = seqs.len(), tokens = total, "wrote embeddings");
    Ok(())
}

fn seq_offsets(lengths: impl Iterator<Item = usize>) -> Vec<i64> {
    let mut v = vec![0i64];
    for l in lengths {
        v.push(v.last().copied().unwrap_or(0) + l as i64);
    }
    v
}

pub fn retrieve_cpu(model: &Model, seqs: &[UserSequence], k: usize) -> Vec<TopK> {
    let items = normalized_items(&model.weights.item_emb, model.config.l2_norm_eps);
    let bar = progress(seqs.len() as u64, "retrieve");
    let out = seqs
        .par_iter()
        .map(|s| {
            let o = reference::encode_user(&model.config, &model.weights, s);
            bar.inc(1);
            reference::retrieve_top_k(&o.user_embedding, &items, &s.items, k)
        })
        .collect();
    bar.finish_and_clear();
    out
}

pub fn retrieve(a: RetrieveArgs) -> Result<()> {
    if a.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let (model, seqs) = a.input.load(default_model)?;
    let tops = match Backend::new(a.input.device, &model)? {
        Backend::Cpu => retrieve_cpu(&model, &seqs, a.top_k),
        #[cfg(feature = "gpu")]
        Backend::Gpu(g) => g.retrieve(&seqs, a.top_k)?,
    };
    let mut out = std::io::stdout().lock();
    for (s, t) in seqs.iter().zip(tops) {
        let line = serde_json::json!({"user_id": s.user_id, "items": t.items, "scores": t.scores});
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Order candidates by the ranking head (task 0 probability) or, on a retrieval model, the retrieval score.
fn order_candidates(model: &Model, seq: &UserSequence, e_c: &[f32]) -> (Vec<u32>, Vec<f32>) {
    let d = model.config.embedding_dim;
    let cfg = &model.config;
    let scores: Vec<f32> = if model.weights.ranking.is_some() {
        e_c.chunks(d)
            .map(|e| ranking_logits(&model.weights, e).map_or(0.0, |l| sigmoid(l[0])))
            .collect()
    } else {
        let user = reference::encode_user(cfg, &model.weights, seq).user_embedding;
        seq.candidates
            .iter()
            .map(|&c| {
                let item = reference::ops::l2_normalize(
                    model.weights.item_emb.row(c as usize),
                    cfg.l2_norm_eps,
                );
                hstu_runtime::tensor::dot(&user, &item)
            })
            .collect()
    };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    (
        order.iter().map(|&i| seq.candidates[i]).collect(),
        order.iter().map(|&i| scores[i]).collect(),
    )
}

pub fn rank(a: RankArgs) -> Result<()> {
    if a.microbatch == 0 {
        bail!("--microbatch must be at least 1");
    }
    let (model, seqs) = a.input.load(default_ranking_model)?;
    if let Some(i) = seqs.iter().position(|s| s.candidates.is_empty()) {
        let path = a.input.sequences.clone().unwrap_or_else(default_sequences);
        bail!(
            "{}:{}: user {} has no `candidates` to rank",
            path.display(),
            i + 1,
            seqs[i].user_id
        );
    }
    if model.weights.ranking.is_none() {
        tracing::warn!(
            "{} has no ranking head: candidates are ordered by the retrieval score",
            model.dir.display()
        );
    }
    let backend = Backend::new(a.input.device, &model)?;
    let bar = progress(seqs.len() as u64, "rank");
    let e_c: Vec<Vec<f32>> = match &backend {
        Backend::Cpu => seqs
            .par_iter()
            .map(|s| {
                let e =
                    reference::rank_candidates(&model.config, &model.weights, s, a.microbatch).data;
                bar.inc(1);
                e
            })
            .collect(),
        #[cfg(feature = "gpu")]
        Backend::Gpu(g) => g.rank(&seqs, a.microbatch)?,
    };
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    for (s, e) in seqs.iter().zip(&e_c) {
        let (ids, scores) = order_candidates(&model, s, e);
        writeln!(
            out,
            "{}",
            serde_json::json!({"user_id": s.user_id, "candidates": ids, "scores": scores})
        )?;
    }
    if let Some(path) = &a.out {
        write_candidates(path, &seqs, e_c, model.config.embedding_dim)?;
    }
    Ok(())
}

fn write_candidates(
    path: &Path,
    seqs: &[UserSequence],
    e_c: Vec<Vec<f32>>,
    d: usize,
) -> Result<()> {
    let offsets = seq_offsets(seqs.iter().map(|s| s.candidates.len()));
    let total = *offsets.last().unwrap_or(&0) as usize;
    let flat: Vec<f32> = e_c.into_iter().flatten().collect();
    let bytes = serialize_tensors(
        &[("candidate_embeddings".into(), vec![total, d], flat)],
        &[("candidate_offsets".into(), vec![seqs.len() + 1], offsets)],
    )?;
    write_atomic(path, &bytes)?;
    Ok(())
}
