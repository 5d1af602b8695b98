//! Model-level evaluation on the CPU reference: encode, then the metrics of [`crate::eval`].

use crate::checkpoint::Weights;
use crate::config::ModelConfig;
use crate::data::ranking::RankingExample;
use crate::error::{Error, Result};
use crate::eval::{Metrics, RetrievalQuery, TaskMetrics, evaluate_retrieval, ranking_metrics};
use crate::reference::{
    encode_user, rank_candidates, ranking::ranking_logits, retrieval::normalized_items,
};
use crate::sequences::UserSequence;
use rayon::prelude::*;

/// HR/NDCG/MRR of `seqs` (each with a `target`) ranked over the whole catalogue, history excluded.
/// `progress` is called once per encoded user.
pub fn retrieval_metrics(
    cfg: &ModelConfig,
    w: &Weights<f32>,
    seqs: &[UserSequence],
    progress: &(dyn Fn() + Sync),
) -> Result<Metrics> {
    if let Some(s) = seqs.iter().find(|s| s.target.is_none()) {
        return Err(Error::Input(format!(
            "user {} has no target to evaluate",
            s.user_id
        )));
    }
    let users: Vec<f32> = seqs
        .par_iter()
        .flat_map_iter(|s| {
            let e = encode_user(cfg, w, s).user_embedding;
            progress();
            e
        })
        .collect();
    retrieval_metrics_of_embeddings(cfg, w, seqs, &users)
}

/// [`retrieval_metrics`] of user embeddings computed elsewhere (`users`: `[seqs, D]`,
/// L2-normalised, e.g. by the CUDA trainer).
pub fn retrieval_metrics_of_embeddings(
    cfg: &ModelConfig,
    w: &Weights<f32>,
    seqs: &[UserSequence],
    users: &[f32],
) -> Result<Metrics> {
    if users.len() != seqs.len() * cfg.embedding_dim {
        return Err(Error::Input(format!(
            "{} user embedding values for {} users of dim {}",
            users.len(),
            seqs.len(),
            cfg.embedding_dim
        )));
    }
    let items = normalized_items(&w.item_emb, cfg.l2_norm_eps);
    let queries: Vec<RetrievalQuery> = seqs
        .iter()
        .map(|s| RetrievalQuery {
            history: &s.items,
            target: s.target.unwrap_or(0),
        })
        .collect();
    evaluate_retrieval(users, &items.data, cfg.embedding_dim, &queries)
}

/// Logits `[sum m, T]` of each example's candidates (M-FALCON, micro-batches of 64).
pub fn ranking_logits_of(
    cfg: &ModelConfig,
    w: &Weights<f32>,
    examples: &[RankingExample],
) -> Result<Vec<f32>> {
    if w.ranking.is_none() {
        return Err(Error::Input("the model has no ranking head".into()));
    }
    Ok(examples
        .par_iter()
        .flat_map_iter(|ex| {
            let e_c = rank_candidates(cfg, w, &ex.sequence, 64);
            (0..e_c.rows)
                .flat_map(|c| ranking_logits(w, e_c.row(c)).unwrap_or_default())
                .collect::<Vec<f32>>()
        })
        .collect())
}

/// NE and AUC per task on ranking examples.
pub fn ranking_task_metrics(
    cfg: &ModelConfig,
    w: &Weights<f32>,
    examples: &[RankingExample],
) -> Result<Vec<TaskMetrics>> {
    let logits = ranking_logits_of(cfg, w, examples)?;
    ranking_task_metrics_of_logits(cfg, examples, &logits)
}

/// [`ranking_task_metrics`] of logits `[sum m, T]` computed elsewhere (the GPU's M-FALCON `e_c`
/// through the ranking head, say), in the order of the examples' candidates.
pub fn ranking_task_metrics_of_logits(
    cfg: &ModelConfig,
    examples: &[RankingExample],
    logits: &[f32],
) -> Result<Vec<TaskMetrics>> {
    let tasks = cfg.ranking.as_ref().map_or(0, |r| r.num_tasks());
    let labels: Vec<f32> = examples
        .iter()
        .flat_map(|e| {
            e.labels
                .chunks(e.labels.len() / e.sequence.candidates.len().max(1))
                .flat_map(|l| l[..tasks].to_vec())
        })
        .collect();
    ranking_metrics(logits, &labels, tasks)
}
