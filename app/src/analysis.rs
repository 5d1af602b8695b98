//! Everything the timeline, attention and retrieval panels show about one user, computed on the
//! worker: attention maps (with their heatmap images), the relative bias split into its position
//! and time parts, and the retrieval top-K with the held-out target's rank.

use crate::backend::InferenceBackend;
use crate::colormap::{ValueRange, causal_heatmap};
use egui::ColorImage;
use hstu_runtime::checkpoint::{LayerWeights, Weights};
use hstu_runtime::config::ModelConfig;
use hstu_runtime::reference::TopK;
use hstu_runtime::reference::ops::time_bucket;
use hstu_runtime::reference::retrieval::retrieve_top_k;
use hstu_runtime::sequences::UserSequence;
use hstu_runtime::tensor::{Mat, dot};
use std::collections::HashSet;

/// One head of one layer.
#[derive(Clone)]
pub struct HeadMap {
    /// `a_ij`, row-major `[T, T]`.
    pub values: Vec<f32>,
    pub image: ColorImage,
    pub range: ValueRange,
}

/// One layer: its heads and its relative bias (shared by the heads), split in two parts.
#[derive(Clone)]
pub struct LayerMaps {
    pub heads: Vec<HeadMap>,
    /// `pos_w[N - 1 + j - i]`, `[T, T]` (0 where masked).
    pub pos_bias: Vec<f32>,
    /// `ts_w[bucket(t_next(i) - t_j)]`, `[T, T]` (0 where masked).
    pub time_bias: Vec<f32>,
}

/// The retrieval result of one user.
#[derive(Clone, Debug)]
pub struct Retrieval {
    pub k: usize,
    pub top: TopK,
    /// 1-based rank of the held-out target over the catalogue (history excluded), when known.
    pub target_rank: Option<usize>,
    pub target_score: Option<f32>,
}

/// Everything about one user.
#[derive(Clone)]
pub struct UserAnalysis {
    /// Index into the data set's users.
    pub user_index: usize,
    /// What the model saw: the most recent `max_sequence_len` items.
    pub seq: UserSequence,
    /// Items of the full history before the model's window.
    pub truncated_items: usize,
    pub layers: Vec<LayerMaps>,
    pub retrieval: Retrieval,
    pub compute_ms: f64,
}

impl UserAnalysis {
    /// `T`: tokens of the model's window.
    pub fn len(&self) -> usize {
        self.seq.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seq.items.is_empty()
    }

    /// `t_next(i) - t_j` of a history pair (spec section 1).
    pub fn time_gap_secs(&self, i: usize, j: usize) -> i64 {
        t_next(&self.seq, i) - self.seq.timestamps[j]
    }
}

/// `t_next(i)`: the next token's time, or `t_q` for the last.
pub fn t_next(seq: &UserSequence, i: usize) -> i64 {
    seq.timestamps
        .get(i + 1)
        .copied()
        .unwrap_or_else(|| seq.query_time_secs())
}

/// The relative bias of one layer split into `(position part, time part)`, each `[T, T]`.
pub fn bias_parts(
    cfg: &ModelConfig,
    layer: &LayerWeights<f32>,
    seq: &UserSequence,
) -> (Vec<f32>, Vec<f32>) {
    let t = seq.items.len();
    let (mut pos, mut time) = (vec![0.0; t * t], vec![0.0; t * t]);
    for i in 0..t {
        for j in 0..=i {
            pos[i * t + j] = layer.pos_w[cfg.n() - 1 + j - i];
            let dt = t_next(seq, i) - seq.timestamps[j];
            time[i * t + j] =
                layer.ts_w[time_bucket(dt, cfg.time_bucket_divisor, cfg.num_time_buckets)];
        }
    }
    (pos, time)
}

/// Top-K of `user` over `items_normed` plus the rank of `target` (ties: the smaller id first).
pub fn retrieval(
    user: &[f32],
    items_normed: &Mat<f32>,
    history: &[u32],
    target: Option<u32>,
    k: usize,
) -> Retrieval {
    let top = retrieve_top_k(user, items_normed, history, k);
    let excluded: HashSet<u32> = history.iter().copied().collect();
    let valid = |t: u32| (t as usize) < items_normed.rows && t >= 1 && !excluded.contains(&t);
    let (target_rank, target_score) = match target.filter(|&t| valid(t)) {
        Some(t) => {
            let score = dot(user, items_normed.row(t as usize));
            let better = (1..items_normed.rows as u32)
                .filter(|&c| c != t && !excluded.contains(&c))
                .filter(|&c| {
                    let s = dot(user, items_normed.row(c as usize));
                    s > score || (s == score && c < t)
                })
                .count();
            (Some(better + 1), Some(score))
        }
        None => (None, None),
    };
    Retrieval {
        k,
        top,
        target_rank,
        target_score,
    }
}

/// Analyse user `user_index` (full history `full`) with the retrieval model.
pub fn analyze_user(
    backend: &dyn InferenceBackend,
    cfg: &ModelConfig,
    w: &Weights<f32>,
    items_normed: &Mat<f32>,
    user_index: usize,
    full: &UserSequence,
    k: usize,
) -> UserAnalysis {
    let start = std::time::Instant::now();
    let seq = full.truncated(cfg.max_sequence_len);
    let t = seq.items.len();
    let captures = backend.capture_attention(cfg, w, &seq);
    let layers = captures
        .into_iter()
        .zip(&w.layers)
        .map(|(cap, layer)| {
            let heads = cap
                .heads
                .into_iter()
                .map(|m| {
                    let (image, range) = causal_heatmap(&m.data, t);
                    HeadMap {
                        values: m.data,
                        image,
                        range,
                    }
                })
                .collect();
            let (pos_bias, time_bias) = bias_parts(cfg, layer, &seq);
            LayerMaps {
                heads,
                pos_bias,
                time_bias,
            }
        })
        .collect();
    let user = backend.encode_user(cfg, w, &seq);
    let retrieval = retrieval(&user, items_normed, &seq.items, full.target, k);
    UserAnalysis {
        user_index,
        truncated_items: full.items.len() - t,
        seq,
        layers,
        retrieval,
        compute_ms: start.elapsed().as_secs_f64() * 1e3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;
    use hstu_runtime::reference::encoder::{Tokens, relative_bias};
    use hstu_runtime::reference::retrieval::normalized_items;

    #[test]
    fn bias_parts_sum_to_relative_bias_and_target_rank_agrees_with_top_k() {
        let cfg = ModelConfig::tiny_for_tests();
        let w = Weights::<f32>::seeded(&cfg, 3);
        let mut seq = UserSequence::new(1, vec![3, 5, 9, 2], vec![10, 20, 5000, 90_000]);
        seq.query_time = Some(100_000);
        let (pos, time) = bias_parts(&cfg, &w.layers[0], &seq);
        let tokens = Tokens::new(&seq, &[]);
        for i in 0..4 {
            for j in 0..=i {
                let rab = relative_bias(&cfg, &w.layers[0], &tokens, i, j);
                assert!(
                    (pos[i * 4 + j] + time[i * 4 + j] - rab).abs() < 1e-7,
                    "({i},{j})"
                );
            }
        }
        let normed = normalized_items(&w.item_emb, cfg.l2_norm_eps);
        let first = analyze_user(&CpuBackend, &cfg, &w, &normed, 0, &seq, 5);
        let top1 = first.retrieval.top.items[0];
        seq.target = Some(top1);
        let a = analyze_user(&CpuBackend, &cfg, &w, &normed, 0, &seq, 5);
        assert_eq!(a.retrieval.target_rank, Some(1));
        assert_eq!(a.layers.len(), cfg.num_blocks);
        assert_eq!(a.layers[0].heads[0].image.size, [4, 4]);
    }
}
