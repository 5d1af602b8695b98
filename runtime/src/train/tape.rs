//! The encoder forward of spec sections 1 and 5 keeping what its backward needs (the tape),
//! and that backward: gradients of every parameter from `d e_final`.
//!
//! Per layer, for `T` tokens (history then candidates):
//!
//! ```text
//! n, rstd_n   = LN(e)                      pre = n @ W_uvqk        [u|v|q|k] = silu(pre)
//! attn        = hstu_attention(q, k, v; rab, N, num_targets)       a_ln, rstd_a = LN(attn)
//! y_d         = dropout(u * a_ln)          e  += y_d @ W_o^T + b_o
//! ```
//!
//! The forward is exactly `reference::forward_tokens` when dropout is off (tested).

use super::attention::hstu_attention_backward;
use super::ops::{layer_norm_backward, layer_norm_rstd, silu_grad};
use crate::checkpoint::{LayerWeights, Weights};
use crate::config::ModelConfig;
use crate::real::{Real, silu};
use crate::reference::attention::{AttentionParams, hstu_attention, valid};
use crate::reference::encoder::{Tokens, split_uvqk};
use crate::reference::ops::time_bucket;
use crate::rng::Rng;
use crate::tensor::{Mat, linear, vec_mat};

/// Dropout rates of a training forward (spec section 7: 0.2 and 0.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// On the input features `e_p`.
    pub input: f64,
    /// On `y = u * LN(attn)` before `W_o`.
    pub linear: f64,
}

impl Dropout {
    pub const OFF: Dropout = Dropout {
        input: 0.0,
        linear: 0.0,
    };

    pub fn of_config(cfg: &ModelConfig) -> Self {
        Dropout {
            input: cfg.input_dropout,
            linear: cfg.linear_dropout,
        }
    }
}

/// A dropout mask of `len` entries: 0 with probability `rate`, else `1 / (1 - rate)`;
/// `None` when the rate is 0.
fn dropout_mask<R: Real>(rng: &mut Rng, len: usize, rate: f64) -> Option<Vec<R>> {
    if rate <= 0.0 {
        return None;
    }
    let keep = R::from_f64c(1.0 / (1.0 - rate));
    Some(
        (0..len)
            .map(|_| {
                if rng.uniform() < rate {
                    R::zero()
                } else {
                    keep
                }
            })
            .collect(),
    )
}

/// Where each valid pair `(i, j)` reads the relative bias: `pos_w[pos]` and `ts_w[bucket]`.
/// Shared by all layers of one forward.
pub struct RabIndex {
    pub len: usize,
    pub num_history: usize,
    /// `[T * T]`: `N - 1 + id(j) - id(i)` (meaningful on valid pairs only).
    pub pos: Vec<u32>,
    /// `[T * T]`: `bucket(t_next(i) - t_j)`.
    pub bucket: Vec<u16>,
}

impl RabIndex {
    pub fn new(cfg: &ModelConfig, tokens: &Tokens) -> Self {
        let (t_len, u) = (tokens.len(), tokens.num_history);
        let mut pos = vec![0u32; t_len * t_len];
        let mut bucket = vec![0u16; t_len * t_len];
        for i in 0..t_len {
            let t_next = tokens.t_next(i);
            for j in 0..t_len {
                if !valid(i, j, u, 0) {
                    continue;
                }
                pos[i * t_len + j] = (cfg.n() - 1 + j.min(u) - i.min(u)) as u32;
                bucket[i * t_len + j] = time_bucket(
                    t_next - tokens.timestamps[j],
                    cfg.time_bucket_divisor,
                    cfg.num_time_buckets,
                ) as u16;
            }
        }
        RabIndex {
            len: t_len,
            num_history: u,
            pos,
            bucket,
        }
    }

    /// `rab_ij` of one layer: `[T * T]` (0 on masked pairs).
    pub fn bias<R: Real>(&self, layer: &LayerWeights<R>) -> Vec<R> {
        let t = self.len;
        let mut out = vec![R::zero(); t * t];
        for i in 0..t {
            for j in 0..t {
                if valid(i, j, self.num_history, 0) {
                    let x = i * t + j;
                    out[x] =
                        layer.pos_w[self.pos[x] as usize] + layer.ts_w[self.bucket[x] as usize];
                }
            }
        }
        out
    }
}

/// What one layer's backward needs.
pub struct LayerTape<R> {
    /// LN(e) of the layer input and its `rstd`: `[T, D]`, `[T]`.
    pub n: Mat<R>,
    pub rstd_n: Vec<R>,
    /// `n @ W_uvqk` before SiLU and after: `[T, 2Hdv + 2Hdqk]`.
    pub pre: Mat<R>,
    pub uvqk: Mat<R>,
    /// q, k: `[T, H, dqk]`, v: `[T, H, dv]` (copies of the columns of `uvqk`).
    pub q: Vec<R>,
    pub k: Vec<R>,
    pub v: Vec<R>,
    /// `rab_ij`: `[T * T]`.
    pub rab: Vec<R>,
    /// LN(attn) and its `rstd`: `[T, H*dv]`, `[T]`.
    pub attn_ln: Mat<R>,
    pub rstd_a: Vec<R>,
    /// Dropout mask of `y` (`None`: no dropout) and the dropped `y`: `[T, H*dv]`.
    pub y_mask: Option<Vec<R>>,
    pub y_d: Mat<R>,
}

/// A training forward of one token sequence.
pub struct Tape<R> {
    pub input_mask: Option<Vec<R>>,
    pub layers: Vec<LayerTape<R>>,
    /// Final `e` of every token (before L2): `[T, D]`.
    pub e: Mat<R>,
}

fn attention_params(cfg: &ModelConfig) -> AttentionParams {
    AttentionParams {
        heads: cfg.num_heads,
        dqk: cfg.attention_dim,
        dv: cfg.linear_dim,
        alpha: 1.0,
        n: cfg.n() as f64,
        max_attn_len: 0,
    }
}

/// Forward of one layer on `e` in place, recording its tape.
fn layer_forward<R: Real>(
    cfg: &ModelConfig,
    layer: &LayerWeights<R>,
    index: &RabIndex,
    e: &mut Mat<R>,
    y_mask: Option<Vec<R>>,
) -> LayerTape<R> {
    let (t_len, d, hdv) = (e.rows, cfg.embedding_dim, cfg.hdv());
    let (mut n, mut rstd_n) = (Mat::zeros(t_len, d), Vec::with_capacity(t_len));
    let (mut pre, mut uvqk) = (
        Mat::zeros(t_len, cfg.uvqk_dim()),
        Mat::zeros(t_len, cfg.uvqk_dim()),
    );
    let (mut q, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..t_len {
        let (nt, r) = layer_norm_rstd(e.row(t), cfg.layer_norm_eps);
        let p = vec_mat(&nt, &layer.uvqk);
        for (o, &x) in uvqk.row_mut(t).iter_mut().zip(&p) {
            *o = silu(x);
        }
        let (_, vt, qt, kt) = split_uvqk(cfg, uvqk.row(t));
        q.extend_from_slice(qt);
        k.extend_from_slice(kt);
        v.extend_from_slice(vt);
        n.row_mut(t).copy_from_slice(&nt);
        pre.row_mut(t).copy_from_slice(&p);
        rstd_n.push(r);
    }
    let rab = index.bias(layer);
    let rab_fn = |_b: usize, i: usize, j: usize| rab[i * t_len + j];
    let targets = [t_len - index.num_history];
    let p = attention_params(cfg);
    let attn = hstu_attention(
        &q,
        &k,
        &v,
        &[0, t_len],
        Some(&targets),
        &p,
        Some(&rab_fn),
        None,
    );
    let (mut attn_ln, mut rstd_a, mut y_d) =
        (Mat::zeros(t_len, hdv), Vec::new(), Mat::zeros(t_len, hdv));
    for t in 0..t_len {
        let (a, r) = layer_norm_rstd(&attn[t * hdv..][..hdv], cfg.layer_norm_eps);
        let (u, _, _, _) = split_uvqk(cfg, uvqk.row(t));
        for c in 0..hdv {
            let m = y_mask.as_ref().map_or(R::one(), |m| m[t * hdv + c]);
            y_d.data[t * hdv + c] = u[c] * a[c] * m;
        }
        let delta = linear(y_d.row(t), &layer.o_w, Some(&layer.o_b));
        for (x, dl) in e.row_mut(t).iter_mut().zip(delta) {
            *x += dl;
        }
        attn_ln.row_mut(t).copy_from_slice(&a);
        rstd_a.push(r);
    }
    LayerTape {
        n,
        rstd_n,
        pre,
        uvqk,
        q,
        k,
        v,
        rab,
        attn_ln,
        rstd_a,
        y_mask,
        y_d,
    }
}

/// Training forward of `tokens`; dropout masks are drawn from `rng` when given.
pub fn forward<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    tokens: &Tokens,
    index: &RabIndex,
    dropout: Dropout,
    mut rng: Option<&mut Rng>,
) -> Tape<R> {
    let mut e = crate::reference::encoder::input_features(cfg, w, tokens);
    let input_mask = rng
        .as_deref_mut()
        .and_then(|r| dropout_mask::<R>(r, e.data.len(), dropout.input));
    if let Some(m) = &input_mask {
        e.data.iter_mut().zip(m).for_each(|(x, &k)| *x *= k);
    }
    let mut layers = Vec::with_capacity(w.layers.len());
    for layer in &w.layers {
        let y_mask = rng
            .as_deref_mut()
            .and_then(|r| dropout_mask::<R>(r, e.rows * cfg.hdv(), dropout.linear));
        layers.push(layer_forward(cfg, layer, index, &mut e, y_mask));
    }
    Tape {
        input_mask,
        layers,
        e,
    }
}

/// Backward of one layer: `de` (gradient of the layer output) becomes the gradient of its input.
fn layer_backward<R: Real>(
    cfg: &ModelConfig,
    layer: &LayerWeights<R>,
    index: &RabIndex,
    tape: &LayerTape<R>,
    de: &mut Mat<R>,
    g: &mut LayerWeights<R>,
) {
    let (t_len, d, hdv, hdqk) = (de.rows, cfg.embedding_dim, cfg.hdv(), cfg.hdqk());
    // e += y_d @ W_o^T + b_o
    let mut dy = Mat::<R>::zeros(t_len, hdv);
    for t in 0..t_len {
        let det = de.row(t);
        let yt = tape.y_d.row(t);
        let dyt = dy.row_mut(t);
        for (r, &der) in det.iter().enumerate() {
            g.o_b[r] += der;
            let wr = layer.o_w.row(r);
            for (c, gw) in g.o_w.row_mut(r).iter_mut().enumerate() {
                *gw += der * yt[c];
                dyt[c] += der * wr[c];
            }
        }
        if let Some(m) = &tape.y_mask {
            dyt.iter_mut()
                .zip(&m[t * hdv..][..hdv])
                .for_each(|(x, &k)| *x *= k);
        }
    }
    // y = u * LN(attn)
    let mut d_uvqk = Mat::zeros(t_len, cfg.uvqk_dim());
    let mut d_attn = vec![R::zero(); t_len * hdv];
    for t in 0..t_len {
        let (u, _, _, _) = split_uvqk(cfg, tape.uvqk.row(t));
        let a = tape.attn_ln.row(t);
        let dyt = dy.row(t);
        let d_a: Vec<R> = dyt.iter().zip(u).map(|(&g, &x)| g * x).collect();
        for (du, (&g, &x)) in d_uvqk.row_mut(t)[..hdv].iter_mut().zip(dyt.iter().zip(a)) {
            *du = g * x;
        }
        layer_norm_backward(a, tape.rstd_a[t], &d_a, &mut d_attn[t * hdv..][..hdv]);
    }
    // attention, with the bias gradient summed over heads into [T, T]
    let rab_fn = |_b: usize, i: usize, j: usize| tape.rab[i * t_len + j];
    let mut d_rab = vec![R::zero(); t_len * t_len];
    let mut sink = |_b: usize, i: usize, j: usize, ds: R| d_rab[i * t_len + j] += ds;
    let targets = [t_len - index.num_history];
    let p = attention_params(cfg);
    let ag = hstu_attention_backward(
        &tape.q,
        &tape.k,
        &tape.v,
        &[0, t_len],
        Some(&targets),
        &p,
        Some(&rab_fn),
        &d_attn,
        Some(&mut sink),
    );
    for i in 0..t_len {
        for j in 0..t_len {
            if valid(i, j, index.num_history, 0) {
                let x = i * t_len + j;
                g.pos_w[index.pos[x] as usize] += d_rab[x];
                g.ts_w[index.bucket[x] as usize] += d_rab[x];
            }
        }
    }
    // [u|v|q|k] = silu(n @ W_uvqk), n = LN(e); residual keeps de
    for t in 0..t_len {
        let row = d_uvqk.row_mut(t);
        row[hdv..2 * hdv].copy_from_slice(&ag.dv[t * hdv..][..hdv]);
        row[2 * hdv..2 * hdv + hdqk].copy_from_slice(&ag.dq[t * hdqk..][..hdqk]);
        row[2 * hdv + hdqk..].copy_from_slice(&ag.dk[t * hdqk..][..hdqk]);
        for (x, &p) in row.iter_mut().zip(tape.pre.row(t)) {
            *x *= silu_grad(p);
        }
        let nt = tape.n.row(t);
        let mut dn = vec![R::zero(); d];
        for r in 0..d {
            let wr = layer.uvqk.row(r);
            let mut acc = R::zero();
            for (c, gw) in g.uvqk.row_mut(r).iter_mut().enumerate() {
                *gw += nt[r] * row[c];
                acc += wr[c] * row[c];
            }
            dn[r] = acc;
        }
        layer_norm_backward(nt, tape.rstd_n[t], &dn, de.row_mut(t));
    }
}

/// Backward of [`forward`]: adds the gradient of every parameter, given `de_final = d loss / d e`
/// of the final (pre-L2) embeddings `[T, D]`, into `g`.
pub fn backward<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    tokens: &Tokens,
    index: &RabIndex,
    tape: &Tape<R>,
    mut de: Mat<R>,
    g: &mut Weights<R>,
) {
    for ((layer, lt), gl) in w.layers.iter().zip(&tape.layers).zip(&mut g.layers).rev() {
        layer_backward(cfg, layer, index, lt, &mut de, gl);
    }
    if let Some(m) = &tape.input_mask {
        de.data.iter_mut().zip(m).for_each(|(x, &k)| *x *= k);
    }
    let scale = R::from_f64c((cfg.embedding_dim as f64).sqrt());
    for t in 0..tokens.len() {
        let det = de.row(t);
        for (gi, &x) in g
            .item_emb
            .row_mut(tokens.items[t] as usize)
            .iter_mut()
            .zip(det)
        {
            *gi += x * scale;
        }
        for (gp, &x) in g.pos_emb.row_mut(tokens.positions[t]).iter_mut().zip(det) {
            *gp += x;
        }
        if let (Some(r), Some(a), true) =
            (g.ranking.as_mut(), tokens.actions, t < tokens.num_history)
        {
            for (ga, &x) in r.action_emb.row_mut(a[t] as usize).iter_mut().zip(det) {
                *ga += x;
            }
        }
    }
}
