//! Backward of the jagged HSTU attention of spec section 6 (`reference::attention`).
//!
//! With `s = alpha q_i . k_j + rab_ij`, `sig = sigmoid(s)`, `a = valid * silu(s) / n` and
//! `g = dout_i . v_j`:
//!
//! ```text
//! dv_j  += sum_i a_ij dout_i
//! ds_ij  = valid * g * sig * (1 + s (1 - sig)) / n
//! dq_i  += alpha * sum_j ds_ij k_j ;   dk_j += alpha * sum_i ds_ij q_i
//! d_rab_ij = ds_ij  (summed over heads by the caller's sink)
//! ```

use crate::real::{Real, sigmoid};
use crate::reference::attention::{AttentionParams, RabFn, valid};

/// Gradients of `q, k: [total, H, dqk]` and `v: [total, H, dv]`.
#[derive(Clone, Debug)]
pub struct AttentionGrads<R> {
    pub dq: Vec<R>,
    pub dk: Vec<R>,
    pub dv: Vec<R>,
}

/// Receives `ds_ij` of every valid pair: `(b, i, j, ds)` with local indices within sequence `b`.
pub type RabGradSink<'a, R> = &'a mut dyn FnMut(usize, usize, usize, R);

/// Jagged attention backward; arguments as [`crate::reference::hstu_attention`], plus
/// `dout: [total, H, dv]` and an optional sink for the gradient of the relative bias.
#[allow(clippy::too_many_arguments)]
pub fn hstu_attention_backward<R: Real>(
    q: &[R],
    k: &[R],
    v: &[R],
    seq_offsets: &[usize],
    num_targets: Option<&[usize]>,
    p: &AttentionParams,
    rab: Option<RabFn<R>>,
    dout: &[R],
    mut d_rab: Option<RabGradSink<R>>,
) -> AttentionGrads<R> {
    let (h, dqk, dv) = (p.heads, p.dqk, p.dv);
    let total = *seq_offsets.last().expect("seq_offsets non-empty");
    assert_eq!(q.len(), total * h * dqk, "q shape");
    assert_eq!(k.len(), total * h * dqk, "k shape");
    assert_eq!(v.len(), total * h * dv, "v shape");
    assert_eq!(dout.len(), total * h * dv, "dout shape");
    let alpha = R::from_f64c(p.alpha);
    let inv_n = R::one() / R::from_f64c(p.n);
    let mut g = AttentionGrads {
        dq: vec![R::zero(); q.len()],
        dk: vec![R::zero(); k.len()],
        dv: vec![R::zero(); v.len()],
    };
    for b in 0..seq_offsets.len() - 1 {
        let (start, end) = (seq_offsets[b], seq_offsets[b + 1]);
        let len = end - start;
        let u = len - num_targets.map_or(0, |t| t[b].min(len));
        for head in 0..h {
            let qk_at = |t: usize| ((start + t) * h + head) * dqk;
            let v_at = |t: usize| ((start + t) * h + head) * dv;
            for i in 0..len {
                let qi = &q[qk_at(i)..][..dqk];
                let doi = &dout[v_at(i)..][..dv];
                for j in 0..len {
                    if !valid(i, j, u, p.max_attn_len) {
                        continue;
                    }
                    let kj = &k[qk_at(j)..][..dqk];
                    let vj = &v[v_at(j)..][..dv];
                    let qk: R = qi.iter().zip(kj).map(|(&a, &b)| a * b).sum();
                    let s = alpha * qk + rab.map_or(R::zero(), |f| f(b, i, j));
                    let sig = sigmoid(s);
                    let a = s * sig * inv_n;
                    for (d, &x) in g.dv[v_at(j)..][..dv].iter_mut().zip(doi) {
                        *d += a * x;
                    }
                    let gij: R = doi.iter().zip(vj).map(|(&a, &b)| a * b).sum();
                    let ds = gij * sig * (R::one() + s * (R::one() - sig)) * inv_n;
                    let dsa = ds * alpha;
                    for (d, &x) in g.dq[qk_at(i)..][..dqk].iter_mut().zip(kj) {
                        *d += dsa * x;
                    }
                    for (d, &x) in g.dk[qk_at(j)..][..dqk].iter_mut().zip(qi) {
                        *d += dsa * x;
                    }
                    if let Some(sink) = d_rab.as_deref_mut() {
                        sink(b, i, j, ds);
                    }
                }
            }
        }
    }
    g
}
