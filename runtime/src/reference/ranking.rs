//! Target-aware ranking and M-FALCON (spec section 5).
//!
//! History rows never see candidates, so their K/V in every layer are computed once
//! ([`prefill`]) and reused by any number of candidate micro-batches ([`score_candidates`]).
//! A candidate row attends to the whole history and to itself only:
//!
//! ```text
//! s_cj = q_c . k_j + pos_w[N - 1 + j - U] + ts_w[bucket(t_q - t_j)]   (j < U)
//! s_cc = q_c . k_c + pos_w[N - 1] + ts_w[0]
//! ```

use super::encoder::{Tokens, forward_tokens, input_features, split_uvqk};
use super::ops::{layer_norm, time_bucket};
use crate::checkpoint::Weights;
use crate::config::ModelConfig;
use crate::real::{Real, silu};
use crate::sequences::UserSequence;
use crate::tensor::{Mat, dot, linear, vec_mat};

/// History K/V of every layer for one user.
#[derive(Clone, Debug)]
pub struct KvCache<R> {
    /// Per layer: k `[U, H*dqk]`, v `[U, H*dv]`.
    pub keys: Vec<Mat<R>>,
    pub values: Vec<Mat<R>>,
    /// `t_j` of each history token.
    pub timestamps: Vec<i64>,
    pub query_time: i64,
}

impl<R> KvCache<R> {
    pub fn num_history(&self) -> usize {
        self.timestamps.len()
    }
}

/// Run the history once, keeping K and V of every layer.
pub fn prefill<R: Real>(cfg: &ModelConfig, w: &Weights<R>, seq: &UserSequence) -> KvCache<R> {
    let tokens = Tokens::new(seq, &[]);
    let mut e = input_features(cfg, w, &tokens);
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    for layer in &w.layers {
        let acts = super::encoder::hstu_layer(cfg, layer, &tokens, &mut e, None);
        let mut k = Mat::zeros(tokens.len(), cfg.hdqk());
        let mut v = Mat::zeros(tokens.len(), cfg.hdv());
        for t in 0..tokens.len() {
            let (_, vt, _, kt) = split_uvqk(cfg, acts.uvqk.row(t));
            k.row_mut(t).copy_from_slice(kt);
            v.row_mut(t).copy_from_slice(vt);
        }
        keys.push(k);
        values.push(v);
    }
    KvCache {
        keys,
        values,
        timestamps: seq.timestamps.clone(),
        query_time: tokens.query_time,
    }
}

/// Final `e_c` (before L2) of each candidate of one micro-batch: `[m, D]`.
pub fn score_candidates<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    cache: &KvCache<R>,
    candidates: &[u32],
) -> Mat<R> {
    let d = cfg.embedding_dim;
    let (h, dqk, dv) = (cfg.num_heads, cfg.attention_dim, cfg.linear_dim);
    let u = cache.num_history();
    let n = cfg.n();
    let inv_n = R::one() / R::of_usize(n);
    let scale = R::from_f64c((d as f64).sqrt());
    let mut e = Mat::zeros(candidates.len(), d);
    for (c, &item) in candidates.iter().enumerate() {
        for (x, (&a, &p)) in e
            .row_mut(c)
            .iter_mut()
            .zip(w.item_emb.row(item as usize).iter().zip(w.pos_emb.row(u)))
        {
            *x = a * scale + p;
        }
    }
    for (l, layer) in w.layers.iter().enumerate() {
        let time_bias: Vec<R> = cache
            .timestamps
            .iter()
            .map(|&tj| {
                layer.ts_w[time_bucket(
                    cache.query_time - tj,
                    cfg.time_bucket_divisor,
                    cfg.num_time_buckets,
                )]
            })
            .collect();
        let self_bias = layer.pos_w[n - 1] + layer.ts_w[0];
        for c in 0..candidates.len() {
            let normed = layer_norm(e.row(c), cfg.layer_norm_eps);
            let uvqk: Vec<R> = vec_mat(&normed, &layer.uvqk)
                .into_iter()
                .map(silu)
                .collect();
            let (uc, vc, qc, kc) = split_uvqk(cfg, &uvqk);
            let mut attn = vec![R::zero(); h * dv];
            for head in 0..h {
                let q = &qc[head * dqk..][..dqk];
                let out = &mut attn[head * dv..][..dv];
                for (j, &tb) in time_bias.iter().enumerate() {
                    let s = dot(q, &cache.keys[l].row(j)[head * dqk..][..dqk])
                        + layer.pos_w[n - 1 + j - u]
                        + tb;
                    let a = silu(s) * inv_n;
                    for (o, &x) in out
                        .iter_mut()
                        .zip(&cache.values[l].row(j)[head * dv..][..dv])
                    {
                        *o += a * x;
                    }
                }
                let a = silu(dot(q, &kc[head * dqk..][..dqk]) + self_bias) * inv_n;
                for (o, &x) in out.iter_mut().zip(&vc[head * dv..][..dv]) {
                    *o += a * x;
                }
            }
            let normed_attn = layer_norm(&attn, cfg.layer_norm_eps);
            let y: Vec<R> = uc.iter().zip(&normed_attn).map(|(&a, &b)| a * b).collect();
            let delta = linear(&y, &layer.o_w, Some(&layer.o_b));
            for (x, dlt) in e.row_mut(c).iter_mut().zip(delta) {
                *x += dlt;
            }
        }
    }
    e
}

/// One pass over history and all candidates with the candidate mask (the oracle of M-FALCON).
pub fn candidates_one_pass<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    seq: &UserSequence,
) -> Mat<R> {
    let tokens = Tokens::new(seq, &seq.candidates);
    let e = forward_tokens(cfg, w, &tokens, None);
    let u = seq.items.len();
    Mat::from_vec(e.rows - u, e.cols, e.data[u * e.cols..].to_vec())
}

/// M-FALCON: prefill once, then candidates in micro-batches of `microbatch` (>= 1): `[m, D]`.
pub fn rank_candidates<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    seq: &UserSequence,
    microbatch: usize,
) -> Mat<R> {
    assert!(microbatch >= 1, "microbatch must be >= 1");
    let cache = prefill(cfg, w, seq);
    let mut data = Vec::with_capacity(seq.candidates.len() * cfg.embedding_dim);
    for chunk in seq.candidates.chunks(microbatch) {
        data.extend(score_candidates(cfg, w, &cache, chunk).data);
    }
    Mat::from_vec(seq.candidates.len(), cfg.embedding_dim, data)
}

/// Ranking head: `W2 relu(W0 e_c + b0) + b2`, one logit per task; `None` on a retrieval-only model.
pub fn ranking_logits<R: Real>(w: &Weights<R>, e_c: &[R]) -> Option<Vec<R>> {
    let r = w.ranking.as_ref()?;
    let hidden: Vec<R> = linear(e_c, &r.mlp0_w, Some(&r.mlp0_b))
        .into_iter()
        .map(|x| x.max(R::zero()))
        .collect();
    Some(linear(&hidden, &r.mlp2_w, Some(&r.mlp2_b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microbatches_equal_one_pass() {
        let cfg = ModelConfig::tiny_for_tests();
        let w = Weights::<f64>::seeded(&cfg, 11);
        let mut seq =
            UserSequence::new(3, vec![4, 9, 1, 30, 22], vec![100, 160, 5000, 5000, 90000]);
        seq.query_time = Some(200000);
        seq.candidates = vec![7, 8, 9, 33, 2, 4, 4, 12, 40, 1, 5];
        let oracle = candidates_one_pass(&cfg, &w, &seq);
        for mb in [1, 7, seq.candidates.len()] {
            let got = rank_candidates(&cfg, &w, &seq, mb);
            let err = got
                .data
                .iter()
                .zip(&oracle.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-12, "microbatch {mb}: max error {err}");
        }
    }
}
