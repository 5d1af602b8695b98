//! `hstu eval`: leave-one-out full-catalogue evaluation (spec section 8), one JSON object.

use super::common::{Device, default_model, load_model, progress};
use super::infer::Backend;
use anyhow::{Context, Result, bail};
use hstu_runtime::checkpoint::Model;
use hstu_runtime::data::{Limits, fetch, load_dataset, ranking, split};
use hstu_runtime::eval::{Metrics, TaskMetrics};
use hstu_runtime::evaluate::{
    ranking_task_metrics, ranking_task_metrics_of_logits, retrieval_metrics,
    retrieval_metrics_of_embeddings,
};
use hstu_runtime::sequences::UserSequence;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Model directory; default: the bundled MovieLens-100K model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Ratings file (u.data, ml-100k.inter, ratings.dat, ratings.csv) or `ml-100k` (fetched and cached).
    #[arg(long, default_value = "ml-100k")]
    data: String,
    /// Which target: `test` (last item) or `valid` (second-to-last).
    #[arg(long, default_value = "test", value_parser = ["test", "valid"])]
    split: String,
    /// Evaluate only the first N users (0 = all).
    #[arg(long, default_value_t = 0)]
    max_users: usize,
    /// Skip the NaN/Inf scan of the weights (on by default).
    #[arg(long)]
    no_check_finite: bool,
    /// Backend of the user encoding (and the ranking head's M-FALCON pass): cpu (reference), gpu
    /// (WGSL via wgpu), auto (gpu if an adapter exists). The full-catalogue ranks of the targets
    /// are counted on the CPU either way.
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
}

/// Users encoded per GPU call (the progress bar's step).
const GPU_EVAL_USERS: usize = 512;

fn retrieval(backend: &Backend, model: &Model, seqs: &[UserSequence]) -> Result<Metrics> {
    let bar = progress(seqs.len() as u64, "eval");
    let metrics = match backend {
        Backend::Cpu => retrieval_metrics(&model.config, &model.weights, seqs, &|| bar.inc(1))?,
        #[cfg(feature = "gpu")]
        Backend::Gpu(g) => {
            let mut users = Vec::with_capacity(seqs.len() * model.config.embedding_dim);
            for part in seqs.chunks(GPU_EVAL_USERS) {
                users.extend(g.encode(part)?.user_embeddings);
                bar.inc(part.len() as u64);
            }
            retrieval_metrics_of_embeddings(&model.config, &model.weights, seqs, &users)?
        }
    };
    bar.finish_and_clear();
    Ok(metrics)
}

fn ranking_tasks(
    backend: &Backend,
    model: &Model,
    examples: &[ranking::RankingExample],
) -> Result<Vec<TaskMetrics>> {
    match backend {
        Backend::Cpu => Ok(ranking_task_metrics(
            &model.config,
            &model.weights,
            examples,
        )?),
        #[cfg(feature = "gpu")]
        Backend::Gpu(g) => {
            let seqs: Vec<UserSequence> = examples.iter().map(|e| e.sequence.clone()).collect();
            let mut logits = Vec::new();
            for e_c in g.rank(&seqs, 64)? {
                for row in e_c.chunks(model.config.embedding_dim) {
                    logits.extend(
                        hstu_runtime::reference::ranking::ranking_logits(&model.weights, row)
                            .context("the model has no ranking head")?,
                    );
                }
            }
            Ok(ranking_task_metrics_of_logits(
                &model.config,
                examples,
                &logits,
            )?)
        }
    }
}

/// `ml-100k` means the cached MovieLens-100K (fetched on first use); anything else is a path.
pub fn resolve_data(data: &str) -> Result<PathBuf> {
    if data == "ml-100k" {
        let cache = fetch::default_cache_dir();
        if fetch::verify_ml100k(&cache).is_err() {
            tracing::info!(cache = %cache.display(), "fetching MovieLens-100K from the RecBole 1.2.1 wheel (pip download)");
        }
        let report = fetch::fetch_ml100k(&cache).context("fetching MovieLens-100K")?;
        tracing::info!(
            path = %report.path.display(),
            ratings = report.interactions,
            users = report.users,
            items = report.items,
            "MovieLens-100K ready"
        );
        return Ok(report.path);
    }
    let p = PathBuf::from(data);
    if !p.exists() {
        bail!("{data}: no such data file (give a ratings file or `ml-100k`)");
    }
    Ok(p)
}

pub fn run(a: EvalArgs) -> Result<()> {
    let dir = a.model.clone().unwrap_or_else(default_model);
    let model = load_model(&dir, !a.no_check_finite)?;
    let cfg = &model.config;
    let path = resolve_data(&a.data)?;
    let ds = load_dataset(&path, &Limits::default())?;
    if ds.num_items as usize > cfg.num_items {
        bail!(
            "{}: item ids reach {} but the model has num_items = {}",
            path.display(),
            ds.num_items,
            cfg.num_items
        );
    }
    let which = if a.split == "valid" {
        split::Split::Valid
    } else {
        split::Split::Test
    };
    let mut seqs = split::sequences(&ds, which, cfg.max_sequence_len);
    if a.max_users > 0 {
        seqs.truncate(a.max_users);
    }
    if seqs.is_empty() {
        bail!(
            "{}: no user has enough interactions to evaluate",
            path.display()
        );
    }
    let backend = Backend::new(a.device, &model)?;
    let t0 = std::time::Instant::now();
    let metrics = retrieval(&backend, &model, &seqs)?;
    let mut out = serde_json::to_value(metrics)?;
    let obj = out
        .as_object_mut()
        .context("metrics serialise to an object")?;
    obj.insert("data".into(), serde_json::json!(path));
    obj.insert("split".into(), serde_json::json!(a.split));
    obj.insert("model".into(), serde_json::json!(dir));
    obj.insert(
        "device".into(),
        serde_json::json!(match backend {
            Backend::Cpu => "cpu",
            #[cfg(feature = "gpu")]
            Backend::Gpu(_) => "gpu",
        }),
    );
    if cfg.ranking.is_some() {
        let mut examples: Vec<_> = ds
            .users
            .iter()
            .filter_map(|u| ranking::eval_example(u, cfg.max_sequence_len))
            .collect();
        if a.max_users > 0 {
            examples.truncate(a.max_users);
        }
        let tasks = ranking_tasks(&backend, &model, &examples)?;
        let named: serde_json::Map<String, serde_json::Value> = ranking::RANKING_TASK_NAMES
            .iter()
            .zip(&tasks)
            .map(|(n, t)| (n.to_string(), serde_json::to_value(t).unwrap_or_default()))
            .collect();
        obj.insert("ranking".into(), serde_json::Value::Object(named));
    }
    obj.insert(
        "seconds".into(),
        serde_json::json!(t0.elapsed().as_secs_f64()),
    );
    println!("{out}");
    Ok(())
}
