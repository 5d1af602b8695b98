//! Retrieval scoring: `o_{L-1} . normalize(ItemEmb[c])` over items `1..=num_items`, history excluded.

use super::ops::l2_normalize;
use crate::real::Real;
use crate::tensor::{Mat, dot};
use std::collections::HashSet;

/// Top-K items of one user, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct TopK {
    pub items: Vec<u32>,
    pub scores: Vec<f32>,
}

/// L2-normalised item table `[num_items + 1, D]` (row 0 = padding, normalised too).
pub fn normalized_items<R: Real>(item_emb: &Mat<R>, eps: f64) -> Mat<R> {
    let mut out = Mat::zeros(item_emb.rows, item_emb.cols);
    for r in 0..item_emb.rows {
        out.row_mut(r)
            .copy_from_slice(&l2_normalize(item_emb.row(r), eps));
    }
    out
}

/// Top-K over `1..rows` of `items_normed`, skipping `history`; ties broken by the smaller id.
pub fn retrieve_top_k<R: Real>(
    user: &[R],
    items_normed: &Mat<R>,
    history: &[u32],
    k: usize,
) -> TopK {
    let excluded: HashSet<u32> = history.iter().copied().collect();
    let scored: Vec<(R, u32)> = (1..items_normed.rows as u32)
        .filter(|c| !excluded.contains(c))
        .map(|c| (dot(user, items_normed.row(c as usize)), c))
        .collect();
    select_top_k(scored, k)
}

/// The best `k` of `(score, id)` pairs (all of them when fewer): higher score first, ties broken
/// by the smaller id. Also the host half of the GPU's retrieval for large `k`.
pub fn select_top_k<R: Real>(mut scored: Vec<(R, u32)>, k: usize) -> TopK {
    let by_score = |a: &(R, u32), b: &(R, u32)| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    };
    let k = k.min(scored.len());
    if k < scored.len() && k > 0 {
        scored.select_nth_unstable_by(k - 1, by_score);
    }
    scored.truncate(k);
    scored.sort_by(by_score);
    TopK {
        items: scored.iter().map(|s| s.1).collect(),
        scores: scored.iter().map(|s| s.0.to_f64c() as f32).collect(),
    }
}
