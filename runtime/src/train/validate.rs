//! Per-epoch validation of the trainer: full-catalogue retrieval metrics (spec section 8) and
//! ranking NE / AUC per task (spec section 5).

use crate::checkpoint::Weights;
use crate::config::ModelConfig;
use crate::data::ranking::RankingExample;
use crate::reference::encode_user;
use crate::reference::ranking::{rank_candidates, ranking_logits};
use crate::reference::retrieval::normalized_items;
use crate::sequences::UserSequence;
use crate::tensor::dot;
use rayon::prelude::*;
use std::collections::HashSet;

/// Cut-offs reported (spec section 8).
pub const KS: [usize; 3] = [10, 50, 200];

/// 1-based rank of `target` among items `1..=num_items` outside `history`, by score
/// `user . normalize(item)`; items scoring equal to the target count before it when their id is smaller.
pub fn target_rank(
    user: &[f32],
    items_normed: &crate::tensor::Mat<f32>,
    history: &[u32],
    target: u32,
) -> usize {
    let excluded: HashSet<u32> = history.iter().copied().filter(|&c| c != target).collect();
    let st = dot(user, items_normed.row(target as usize));
    let mut rank = 1;
    for c in 1..items_normed.rows as u32 {
        if c == target || excluded.contains(&c) {
            continue;
        }
        let s = dot(user, items_normed.row(c as usize));
        if s > st || (s == st && c < target) {
            rank += 1;
        }
    }
    rank
}

/// Mean HR@K, NDCG@K (K of [`KS`]) and MRR over users with a target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetrievalMetrics {
    pub users: usize,
    pub hr: [f64; 3],
    pub ndcg: [f64; 3],
    pub mrr: f64,
}

impl RetrievalMetrics {
    pub fn from_ranks(ranks: &[usize]) -> Self {
        let mut m = RetrievalMetrics {
            users: ranks.len(),
            ..Default::default()
        };
        let n = ranks.len().max(1) as f64;
        for &r in ranks {
            for (i, &k) in KS.iter().enumerate() {
                if r <= k {
                    m.hr[i] += 1.0 / n;
                    m.ndcg[i] += 1.0 / ((r + 1) as f64).log2() / n;
                }
            }
            m.mrr += 1.0 / r as f64 / n;
        }
        m
    }

    /// `{"HR@10": .., "NDCG@10": .., .., "MRR": ..}`.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut o = serde_json::Map::new();
        for (i, k) in KS.iter().enumerate() {
            o.insert(format!("HR@{k}"), self.hr[i].into());
            o.insert(format!("NDCG@{k}"), self.ndcg[i].into());
        }
        o.insert("MRR".into(), self.mrr.into());
        o
    }
}

/// Retrieval metrics of `w` on sequences with a `target`.
pub fn evaluate_retrieval(
    cfg: &ModelConfig,
    w: &Weights<f32>,
    seqs: &[UserSequence],
) -> RetrievalMetrics {
    let items = normalized_items(&w.item_emb, cfg.l2_norm_eps);
    let ranks: Vec<usize> = seqs
        .par_iter()
        .filter_map(|s| {
            let target = s.target?;
            let user = encode_user(cfg, w, s).user_embedding;
            Some(target_rank(&user, &items, &s.items, target))
        })
        .collect();
    RetrievalMetrics::from_ranks(&ranks)
}

/// Normalized entropy and AUC of one task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskMetrics {
    pub name: String,
    pub ne: f64,
    pub auc: f64,
    pub log_loss: f64,
    pub base_rate: f64,
    pub count: usize,
}

/// NE = mean log loss / entropy of the base rate.
pub fn normalized_entropy(logits: &[f64], labels: &[f64]) -> (f64, f64, f64) {
    let n = labels.len().max(1) as f64;
    let ll: f64 = logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| super::loss::bce_with_logits(z, y))
        .sum::<f64>()
        / n;
    let p = labels.iter().sum::<f64>() / n;
    let h = if p <= 0.0 || p >= 1.0 {
        f64::NAN
    } else {
        -(p * p.ln() + (1.0 - p) * (1.0 - p).ln())
    };
    (ll / h, ll, p)
}

/// Area under the ROC curve (ties get the average rank).
pub fn auc(scores: &[f64], labels: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        scores[a]
            .partial_cmp(&scores[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] > 0.5 {
                rank_sum += avg;
            }
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&y| y > 0.5).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// NE and AUC per task of a ranking model on `examples` (M-FALCON forward, micro-batch 10).
pub fn evaluate_ranking(
    cfg: &ModelConfig,
    w: &Weights<f32>,
    examples: &[RankingExample],
    task_names: &[String],
) -> Vec<TaskMetrics> {
    let per: Vec<(Vec<f64>, Vec<f64>)> = examples
        .par_iter()
        .map(|ex| {
            let e = rank_candidates(cfg, w, &ex.sequence, 10);
            let mut logits = Vec::new();
            for c in 0..e.rows {
                let z = ranking_logits(w, e.row(c)).unwrap_or_default();
                logits.extend(z.iter().map(|&x| x as f64));
            }
            (logits, ex.labels.iter().map(|&y| y as f64).collect())
        })
        .collect();
    let tasks = task_names.len();
    (0..tasks)
        .map(|t| {
            let (mut z, mut y) = (Vec::new(), Vec::new());
            for (lz, ly) in &per {
                z.extend(lz.iter().skip(t).step_by(tasks));
                y.extend(ly.iter().skip(t).step_by(tasks));
            }
            let (ne, log_loss, base_rate) = normalized_entropy(&z, &y);
            TaskMetrics {
                name: task_names[t].clone(),
                ne,
                auc: auc(&z, &y),
                log_loss,
                base_rate,
                count: y.len(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_ne_of_known_cases() {
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]), 0.75);
        assert_eq!(auc(&[1.0, 1.0], &[0.0, 1.0]), 0.5);
        let p: f64 = 0.3;
        let z = (p / (1.0 - p)).ln();
        let (ne, _, _) = normalized_entropy(&[z; 10], &[1., 1., 1., 0., 0., 0., 0., 0., 0., 0.]);
        assert!((ne - 1.0).abs() < 1e-12);
        let m = RetrievalMetrics::from_ranks(&[1, 3, 100]);
        assert!(
            (m.hr[0] - 2.0 / 3.0).abs() < 1e-12
                && (m.mrr - (1.0 + 1.0 / 3.0 + 0.01) / 3.0).abs() < 1e-12
        );
    }
}
