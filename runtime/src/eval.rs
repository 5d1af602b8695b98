//! Full-catalogue retrieval evaluation (spec section 8) and the ranking metrics of section 5.
//!
//! Retrieval: a user's target is ranked among every item `1..=num_items` that is not in the user's
//! history (the target itself is always ranked, even when it also occurs in the history):
//! `rank = 1 + #{c not in history, c != target : score(c) > score(target)}` (ties count in the
//! target's favour). `HR@K = [rank <= K]`, `NDCG@K = [rank <= K] / log2(rank + 1)`, `MRR = 1/rank`,
//! averaged over users, for K in [`KS`].
//!
//! Ranking: per task, `NE = log loss / H(base rate)` and AUC (Mann-Whitney, ties count half).

use crate::error::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The cut-offs reported (spec section 8).
pub const KS: [usize; 3] = [10, 50, 200];

/// Retrieval metrics averaged over `users`; serialises with the keys of the public tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(rename = "HR@10")]
    pub hr_10: f64,
    #[serde(rename = "NDCG@10")]
    pub ndcg_10: f64,
    #[serde(rename = "HR@50")]
    pub hr_50: f64,
    #[serde(rename = "NDCG@50")]
    pub ndcg_50: f64,
    #[serde(rename = "HR@200")]
    pub hr_200: f64,
    #[serde(rename = "NDCG@200")]
    pub ndcg_200: f64,
    #[serde(rename = "MRR")]
    pub mrr: f64,
    pub users: usize,
}

impl Metrics {
    /// Average the per-user metrics of 1-based `ranks` (all zeros when `ranks` is empty).
    pub fn from_ranks(ranks: &[usize]) -> Metrics {
        assert!(ranks.iter().all(|&r| r >= 1), "ranks are 1-based");
        let n = ranks.len().max(1) as f64;
        let hr = |k: usize| ranks.iter().filter(|&&r| r <= k).count() as f64 / n;
        let ndcg = |k: usize| {
            ranks
                .iter()
                .filter(|&&r| r <= k)
                .map(|&r| 1.0 / ((r + 1) as f64).log2())
                .sum::<f64>()
                / n
        };
        Metrics {
            hr_10: hr(KS[0]),
            ndcg_10: ndcg(KS[0]),
            hr_50: hr(KS[1]),
            ndcg_50: ndcg(KS[1]),
            hr_200: hr(KS[2]),
            ndcg_200: ndcg(KS[2]),
            mrr: ranks.iter().map(|&r| 1.0 / r as f64).sum::<f64>() / n,
            users: ranks.len(),
        }
    }
}

/// One user's query: history items (excluded from the ranking) and the held-out target.
#[derive(Clone, Copy, Debug)]
pub struct RetrievalQuery<'a> {
    pub history: &'a [u32],
    pub target: u32,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The 1-based rank of `target` from precomputed scores.
///
/// scores: `[num_items + 1]` (index 0, padding, is ignored); `excluded`: `[num_items + 1]`, true
/// for the history items.
pub fn target_rank_from_scores(scores: &[f32], excluded: &[bool], target: u32) -> Result<usize> {
    let t = target as usize;
    if t == 0 || t >= scores.len() || excluded.len() != scores.len() {
        return Err(Error::Input(format!(
            "target {target} outside 1..={} or exclusion mask [{}] != scores [{}]",
            scores.len().saturating_sub(1),
            excluded.len(),
            scores.len()
        )));
    }
    let target_score = scores[t];
    if !target_score.is_finite() {
        return Err(Error::NonFinite(format!(
            "score of target item {target} is {target_score}"
        )));
    }
    let higher = (1..scores.len())
        .filter(|&c| c != t && !excluded[c] && scores[c] > target_score)
        .count();
    Ok(1 + higher)
}

/// The 1-based rank of each user's target among all items not in their history, in parallel.
///
/// user_embeddings: `[B, D]` L2-normalised; item_table: `[num_items + 1, D]` L2-normalised, row 0
/// padding; queries: `[B]`. Returns ranks `[B]`.
pub fn target_ranks(
    user_embeddings: &[f32],
    item_table: &[f32],
    dim: usize,
    queries: &[RetrievalQuery<'_>],
) -> Result<Vec<usize>> {
    if dim == 0 || !item_table.len().is_multiple_of(dim) || item_table.len() < 2 * dim {
        return Err(Error::Input(format!(
            "item table of {} floats is not [num_items + 1 >= 2, D = {dim}]",
            item_table.len()
        )));
    }
    if user_embeddings.len() != queries.len() * dim {
        return Err(Error::Input(format!(
            "user embeddings of {} floats != [B = {}, D = {dim}]",
            user_embeddings.len(),
            queries.len()
        )));
    }
    let rows = item_table.len() / dim;
    if let Some((b, q)) = queries.iter().enumerate().find(|(_, q)| {
        q.target == 0 || q.target as usize >= rows || q.history.iter().any(|&h| h as usize >= rows)
    }) {
        return Err(Error::Input(format!(
            "user {b}: target {} or a history item is outside 1..={}",
            q.target,
            rows - 1
        )));
    }
    queries
        .par_iter()
        .zip(user_embeddings.par_chunks_exact(dim))
        .map_init(
            || (vec![0f32; rows], vec![false; rows]),
            |(scores, excluded), (q, user)| {
                for (c, s) in scores.iter_mut().enumerate() {
                    *s = dot(user, &item_table[c * dim..(c + 1) * dim]);
                }
                for &h in q.history {
                    excluded[h as usize] = true;
                }
                let rank = target_rank_from_scores(scores, excluded, q.target);
                for &h in q.history {
                    excluded[h as usize] = false;
                }
                rank
            },
        )
        .collect()
}

/// [`target_ranks`] averaged into [`Metrics`].
pub fn evaluate_retrieval(
    user_embeddings: &[f32],
    item_table: &[f32],
    dim: usize,
    queries: &[RetrievalQuery<'_>],
) -> Result<Metrics> {
    Ok(Metrics::from_ranks(&target_ranks(
        user_embeddings,
        item_table,
        dim,
        queries,
    )?))
}

/// One ranking task's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// Normalised entropy; NaN (JSON null) when all labels agree.
    #[serde(rename = "NE")]
    pub ne: f64,
    /// NaN (JSON null) when all labels agree.
    #[serde(rename = "AUC")]
    pub auc: f64,
    /// Mean log loss.
    pub log_loss: f64,
    pub positives: usize,
    pub count: usize,
}

fn check_binary(logits: &[f32], labels: &[f32]) -> Result<()> {
    if logits.len() != labels.len() || logits.is_empty() {
        return Err(Error::Input(format!(
            "{} logits vs {} labels (need equal, non-zero)",
            logits.len(),
            labels.len()
        )));
    }
    if let Some(i) = labels.iter().position(|&y| y != 0.0 && y != 1.0) {
        return Err(Error::Input(format!(
            "label {i} is {}, not 0 or 1",
            labels[i]
        )));
    }
    if let Some(i) = logits.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite(format!("logit {i} is {}", logits[i])));
    }
    Ok(())
}

/// `log(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Mean binary log loss of `logits` `[n]` against `labels` `[n]` (0 or 1).
pub fn log_loss(logits: &[f32], labels: &[f32]) -> Result<f64> {
    check_binary(logits, labels)?;
    let total: f64 = logits
        .iter()
        .zip(labels)
        .map(|(&x, &y)| {
            let x = x as f64;
            // -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]
            if y == 1.0 { softplus(-x) } else { softplus(x) }
        })
        .sum();
    Ok(total / logits.len() as f64)
}

/// `NE = log_loss / H(p)`, `p` the positive rate; NaN when `p` is 0 or 1.
pub fn normalized_entropy(logits: &[f32], labels: &[f32]) -> Result<f64> {
    let loss = log_loss(logits, labels)?;
    let p = labels.iter().filter(|&&y| y == 1.0).count() as f64 / labels.len() as f64;
    if p == 0.0 || p == 1.0 {
        return Ok(f64::NAN);
    }
    let entropy = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
    Ok(loss / entropy)
}

/// ROC AUC: the probability that a random positive outscores a random negative (ties count half);
/// NaN when one class is absent.
pub fn auc(logits: &[f32], labels: &[f32]) -> Result<f64> {
    check_binary(logits, labels)?;
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let (mut pos_rank_sum, mut positives) = (0f64, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && logits[order[j + 1]] == logits[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0; // average 1-based rank of the tie group
        for &k in &order[i..=j] {
            if labels[k] == 1.0 {
                pos_rank_sum += mid_rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = logits.len() - positives;
    if positives == 0 || negatives == 0 {
        return Ok(f64::NAN);
    }
    let (p, n) = (positives as f64, negatives as f64);
    Ok((pos_rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Per-task NE and AUC. logits, labels: `[n, tasks]` row-major.
pub fn ranking_metrics(logits: &[f32], labels: &[f32], tasks: usize) -> Result<Vec<TaskMetrics>> {
    if tasks == 0 || logits.len() != labels.len() || !logits.len().is_multiple_of(tasks) {
        return Err(Error::Input(format!(
            "logits [{}] and labels [{}] are not [n, tasks = {tasks}]",
            logits.len(),
            labels.len()
        )));
    }
    (0..tasks)
        .map(|t| {
            let x: Vec<f32> = logits.iter().skip(t).step_by(tasks).copied().collect();
            let y: Vec<f32> = labels.iter().skip(t).step_by(tasks).copied().collect();
            Ok(TaskMetrics {
                ne: normalized_entropy(&x, &y)?,
                auc: auc(&x, &y)?,
                log_loss: log_loss(&x, &y)?,
                positives: y.iter().filter(|&&v| v == 1.0).count(),
                count: y.len(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn ranks_exclude_history_and_count_strictly_higher() {
        // D = 1: item c scores its table value; items 1..=5 score 0.9 0.8 0.7 0.6 0.7.
        let table = [0.0, 0.9, 0.8, 0.7, 0.6, 0.7];
        let user = [1.0, 1.0, 1.0];
        let queries = [
            RetrievalQuery {
                history: &[],
                target: 3,
            }, // 0.9, 0.8 higher; item 5 ties -> rank 3
            RetrievalQuery {
                history: &[1, 2],
                target: 3,
            }, // nothing higher left -> rank 1
            RetrievalQuery {
                history: &[1, 4],
                target: 4,
            }, // 0.8 0.7 0.7 higher -> rank 4
        ];
        let ranks = target_ranks(&user, &table, 1, &queries).unwrap();
        assert_eq!(ranks, vec![3, 1, 4]);
    }

    #[test]
    fn metrics_match_hand_computation() {
        let m = Metrics::from_ranks(&[1, 3, 20, 100, 1000]);
        assert!(close(m.hr_10, 0.4) && close(m.hr_50, 0.6) && close(m.hr_200, 0.8));
        let n10 = (1.0 + 1.0 / 4f64.log2()) / 5.0; // rank 1 -> 1, rank 3 -> 1/2
        assert!(close(m.ndcg_10, n10), "{}", m.ndcg_10);
        assert!(close(m.ndcg_50, n10 + 1.0 / 21f64.log2() / 5.0));
        assert!(close(
            m.ndcg_200,
            n10 + (1.0 / 21f64.log2() + 1.0 / 101f64.log2()) / 5.0
        ));
        assert!(close(m.mrr, (1.0 + 1.0 / 3.0 + 0.05 + 0.01 + 0.001) / 5.0));
        let json = serde_json::to_value(m).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "HR@10", "HR@200", "HR@50", "MRR", "NDCG@10", "NDCG@200", "NDCG@50", "users"
            ]
        );
    }

    #[test]
    fn retrieval_rejects_bad_shapes_and_nan() {
        let table = [0.0, 1.0, 0.5];
        assert!(
            target_ranks(
                &[1.0],
                &table,
                1,
                &[RetrievalQuery {
                    history: &[],
                    target: 3
                }]
            )
            .is_err()
        );
        assert!(
            target_ranks(
                &[1.0, 2.0],
                &table,
                1,
                &[RetrievalQuery {
                    history: &[],
                    target: 1
                }]
            )
            .is_err()
        );
        assert!(
            target_ranks(
                &[f32::NAN],
                &table,
                1,
                &[RetrievalQuery {
                    history: &[],
                    target: 1
                }]
            )
            .is_err()
        );
    }

    #[test]
    fn ne_and_auc_hand_cases() {
        let logits = [2.0, -1.0, 0.5, 0.5];
        let labels = [1.0, 0.0, 1.0, 0.0];
        // positives {2.0, 0.5} vs negatives {-1.0, 0.5}: pairs 1, 1, 1, 0.5 -> 3.5 / 4
        assert!(close(auc(&logits, &labels).unwrap(), 0.875));
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let ll =
            -((sig(2.0)).ln() + (1.0 - sig(-1.0)).ln() + sig(0.5).ln() + (1.0 - sig(0.5)).ln())
                / 4.0;
        assert!(close(log_loss(&logits, &labels).unwrap(), ll));
        assert!(close(
            normalized_entropy(&logits, &labels).unwrap(),
            ll / 2f64.ln()
        ));
        // predicting the base rate exactly gives NE = 1
        let base = (0.25f64 / 0.75).ln() as f32;
        let ne = normalized_entropy(&[base; 4], &[1.0, 0.0, 0.0, 0.0]).unwrap();
        assert!((ne - 1.0).abs() < 1e-6, "{ne}");
        assert!(auc(&[1.0, 2.0], &[1.0, 1.0]).unwrap().is_nan());
        assert!(auc(&[1.0], &[0.5]).is_err());
        let per_task = ranking_metrics(&[2.0, 0.0, -1.0, 1.0], &[1.0, 1.0, 0.0, 0.0], 2).unwrap();
        assert!(close(per_task[0].auc, 1.0) && close(per_task[1].auc, 0.0));
        assert_eq!((per_task[0].positives, per_task[0].count), (1, 2));
    }
}
