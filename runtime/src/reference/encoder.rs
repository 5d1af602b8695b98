//! The HSTU encoder of spec section 1, with the target-aware extension of section 5.
//!
//! Per token `p` of one user (history then candidates):
//!
//! ```text
//! e_p         = ItemEmb[x_p] * sqrt(D) + PosEmb[pos(p)] (+ ActionEmb[a_p] on a ranking model's history)
//! per layer:  n = LN(e); [u|v|q|k] = silu(n @ W_uvqk)
//!             attn = hstu_attention(q, k, v; alpha = 1, n = N, rab, num_targets = m)
//!             e += (u * LN(attn)) @ W_o^T + b_o
//! ```

use super::attention::{AttentionParams, hstu_attention};
use super::ops::{l2_normalize, layer_norm, time_bucket};
use crate::checkpoint::{LayerWeights, Weights};
use crate::config::ModelConfig;
use crate::real::{Real, silu};
use crate::sequences::UserSequence;
use crate::tensor::{Mat, linear, vec_mat};
use rayon::prelude::*;

/// Output of the encoder for one user.
#[derive(Clone, Debug)]
pub struct EncodeOutput<R> {
    /// `o_{L-1}`: [D]
    pub user_embedding: Vec<R>,
    /// `o_p` for every history position: [L, D]
    pub sequence_embeddings: Mat<R>,
}

/// Attention weights of one layer: `heads[h]` is `[T, T]` with `a_ij = silu(s_ij) / N` (0 where masked).
#[derive(Clone, Debug)]
pub struct LayerCapture<R> {
    pub heads: Vec<Mat<R>>,
}

/// Token layout of one forward: `U` history tokens then `m` candidates.
pub struct Tokens<'a> {
    pub items: Vec<u32>,
    /// Timestamps per token (candidates carry `t_q`).
    pub timestamps: Vec<i64>,
    /// Positions per token (candidates share position `U`).
    pub positions: Vec<usize>,
    pub actions: Option<&'a [u8]>,
    pub num_history: usize,
    pub query_time: i64,
}

impl<'a> Tokens<'a> {
    /// History of `seq` followed by `candidates` (spec section 5).
    pub fn new(seq: &'a UserSequence, candidates: &[u32]) -> Self {
        let u = seq.items.len();
        let tq = seq.query_time_secs();
        let mut items = seq.items.clone();
        items.extend_from_slice(candidates);
        let mut timestamps = seq.timestamps.clone();
        timestamps.extend(std::iter::repeat_n(tq, candidates.len()));
        let positions = (0..u)
            .chain(std::iter::repeat_n(u, candidates.len()))
            .collect();
        Tokens {
            items,
            timestamps,
            positions,
            actions: seq.ratings.as_deref(),
            num_history: u,
            query_time: tq,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `t_next(i)`: the next history token's time, or `t_q` for the last history token and candidates.
    pub fn t_next(&self, i: usize) -> i64 {
        if i + 1 < self.num_history {
            self.timestamps[i + 1]
        } else {
            self.query_time
        }
    }
}

/// `rab_ij = pos_w[N - 1 + id(j) - id(i)] + ts_w[bucket(t_next(i) - t_j)]` for a valid pair.
pub fn relative_bias<R: Real>(
    cfg: &ModelConfig,
    layer: &LayerWeights<R>,
    tokens: &Tokens,
    i: usize,
    j: usize,
) -> R {
    let u = tokens.num_history;
    let (id_i, id_j) = (i.min(u), j.min(u));
    let pos = layer.pos_w[cfg.n() - 1 + id_j - id_i];
    let bucket = time_bucket(
        tokens.t_next(i) - tokens.timestamps[j],
        cfg.time_bucket_divisor,
        cfg.num_time_buckets,
    );
    pos + layer.ts_w[bucket]
}

/// Input features `e_p` of every token: [T, D].
pub fn input_features<R: Real>(cfg: &ModelConfig, w: &Weights<R>, tokens: &Tokens) -> Mat<R> {
    let d = cfg.embedding_dim;
    let scale = R::from_f64c((d as f64).sqrt());
    let mut e = Mat::zeros(tokens.len(), d);
    for t in 0..tokens.len() {
        let item = w.item_emb.row(tokens.items[t] as usize);
        let pos = w.pos_emb.row(tokens.positions[t]);
        let action = match (&w.ranking, tokens.actions) {
            (Some(r), Some(a)) if t < tokens.num_history => Some(r.action_emb.row(a[t] as usize)),
            _ => None,
        };
        for c in 0..d {
            let mut x = item[c] * scale + pos[c];
            if let Some(a) = action {
                x += a[c];
            }
            e.data[t * d + c] = x;
        }
    }
    e
}

/// Activations of one layer that the backward and the explorer need.
pub struct LayerActivations<R> {
    /// silu(LN(e) @ W_uvqk): [T, 2Hdv + 2Hdqk]
    pub uvqk: Mat<R>,
    /// attention output: [T, H*dv]
    pub attn: Mat<R>,
}

/// Split one row of `uvqk` into (u, v, q, k).
pub fn split_uvqk<'a, R>(cfg: &ModelConfig, row: &'a [R]) -> (&'a [R], &'a [R], &'a [R], &'a [R]) {
    let (hdv, hdqk) = (cfg.hdv(), cfg.hdqk());
    let (u, rest) = row.split_at(hdv);
    let (v, rest) = rest.split_at(hdv);
    let (q, k) = rest.split_at(hdqk);
    (u, v, q, k)
}

/// One HSTU layer applied in place to `e: [T, D]`.
pub fn hstu_layer<R: Real>(
    cfg: &ModelConfig,
    layer: &LayerWeights<R>,
    tokens: &Tokens,
    e: &mut Mat<R>,
    capture: Option<&mut Vec<Mat<R>>>,
) -> LayerActivations<R> {
    let t_len = tokens.len();
    let mut uvqk = Mat::zeros(t_len, cfg.uvqk_dim());
    for t in 0..t_len {
        let n = layer_norm(e.row(t), cfg.layer_norm_eps);
        let row: Vec<R> = vec_mat(&n, &layer.uvqk).into_iter().map(silu).collect();
        uvqk.row_mut(t).copy_from_slice(&row);
    }
    let (mut q, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..t_len {
        let (_, vt, qt, kt) = split_uvqk(cfg, uvqk.row(t));
        q.extend_from_slice(qt);
        k.extend_from_slice(kt);
        v.extend_from_slice(vt);
    }
    let params = AttentionParams {
        heads: cfg.num_heads,
        dqk: cfg.attention_dim,
        dv: cfg.linear_dim,
        alpha: 1.0,
        n: cfg.n() as f64,
        max_attn_len: 0,
    };
    let rab = |_b: usize, i: usize, j: usize| relative_bias(cfg, layer, tokens, i, j);
    let num_targets = [t_len - tokens.num_history];
    let attn = hstu_attention(
        &q,
        &k,
        &v,
        &[0, t_len],
        Some(&num_targets),
        &params,
        Some(&rab),
        capture,
    );
    let attn = Mat::from_vec(t_len, cfg.hdv(), attn);
    for t in 0..t_len {
        let (u, _, _, _) = split_uvqk(cfg, uvqk.row(t));
        let normed = layer_norm(attn.row(t), cfg.layer_norm_eps);
        let y: Vec<R> = u.iter().zip(&normed).map(|(&a, &b)| a * b).collect();
        let delta = linear(&y, &layer.o_w, Some(&layer.o_b));
        for (x, d) in e.row_mut(t).iter_mut().zip(delta) {
            *x += d;
        }
    }
    LayerActivations { uvqk, attn }
}

/// Final `e` of every token (before L2), optionally capturing attention per layer.
pub fn forward_tokens<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    tokens: &Tokens,
    mut capture: Option<&mut Vec<LayerCapture<R>>>,
) -> Mat<R> {
    let mut e = input_features(cfg, w, tokens);
    for layer in &w.layers {
        let mut heads = Vec::new();
        let want = capture.is_some();
        hstu_layer(cfg, layer, tokens, &mut e, want.then_some(&mut heads));
        if let Some(c) = capture.as_deref_mut() {
            c.push(LayerCapture { heads });
        }
    }
    e
}

/// Encode one user's history: L2-normalised embeddings of every position; the user embedding is the last.
pub fn encode_user<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    seq: &UserSequence,
) -> EncodeOutput<R> {
    let tokens = Tokens::new(seq, &[]);
    let e = forward_tokens(cfg, w, &tokens, None);
    let mut out = Mat::zeros(e.rows, e.cols);
    for t in 0..e.rows {
        out.row_mut(t)
            .copy_from_slice(&l2_normalize(e.row(t), cfg.l2_norm_eps));
    }
    EncodeOutput {
        user_embedding: out.row(out.rows - 1).to_vec(),
        sequence_embeddings: out,
    }
}

/// Encode many users in parallel (one rayon task per user); order is kept.
pub fn encode_batch<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    seqs: &[UserSequence],
) -> Vec<EncodeOutput<R>> {
    seqs.par_iter().map(|s| encode_user(cfg, w, s)).collect()
}

/// Attention weights of every layer and head for one user's history (the explorer's capture).
pub fn capture_attention<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    seq: &UserSequence,
) -> Vec<LayerCapture<R>> {
    let tokens = Tokens::new(seq, &[]);
    let mut capture = Vec::new();
    forward_tokens(cfg, w, &tokens, Some(&mut capture));
    capture
}
