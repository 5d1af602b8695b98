//! The HSTU attention operator of spec section 6, over jagged sequences.
//!
//! `out_i = sum_j valid(i, j) * silu(alpha * q_i . k_j + rab_ij) / n * v_j`
//!
//! with `id(i) = min(i, U)`, `U = L - num_targets`, and
//! `valid(i, j) = (i == j) || (id(i) - id(j) > 0 && (max_attn_len == 0 || id(i) - id(j) <= max_attn_len))`.

use crate::real::{Real, silu};
use crate::tensor::Mat;

/// Scalars of the operator.
#[derive(Clone, Copy, Debug)]
pub struct AttentionParams {
    pub heads: usize,
    /// dqk per head.
    pub dqk: usize,
    /// dv per head.
    pub dv: usize,
    /// Scale of `q . k` (research HSTU: 1).
    pub alpha: f64,
    /// Normaliser `n` (research HSTU: the constant N).
    pub n: f64,
    /// 0 = unlimited.
    pub max_attn_len: usize,
}

/// `id(i) = min(i, U)`: every target shares the id `U`.
pub fn token_id(i: usize, u: usize) -> usize {
    i.min(u)
}

/// The mask of spec sections 5 and 6.
pub fn valid(i: usize, j: usize, u: usize, max_attn_len: usize) -> bool {
    if i == j {
        return true;
    }
    let (a, b) = (token_id(i, u), token_id(j, u));
    a > b && (max_attn_len == 0 || a - b <= max_attn_len)
}

/// Relative bias of one sequence: `rab(i, j)` for local token indices.
pub type RabFn<'a, R> = &'a (dyn Fn(usize, usize, usize) -> R + Sync);

/// Jagged attention forward.
///
/// * `q, k: [total, H, dqk]`, `v: [total, H, dv]`, jagged by `seq_offsets: [B + 1]`.
/// * `num_targets: [B]` or `None` (all causal).
/// * `rab(b, i, j)`: bias added to `alpha q.k` (local indices within sequence b), or `None`.
/// * `capture`: when given, receives per sequence and head the `[L, L]` matrix of `a_ij`.
///
/// Returns `out: [total, H, dv]`.
// The arguments are the operator's inputs of spec section 6, one each, as the kernels take them.
#[allow(clippy::too_many_arguments)]
pub fn hstu_attention<R: Real>(
    q: &[R],
    k: &[R],
    v: &[R],
    seq_offsets: &[usize],
    num_targets: Option<&[usize]>,
    p: &AttentionParams,
    rab: Option<RabFn<R>>,
    mut capture: Option<&mut Vec<Mat<R>>>,
) -> Vec<R> {
    let (h, dqk, dv) = (p.heads, p.dqk, p.dv);
    let total = *seq_offsets.last().expect("seq_offsets non-empty");
    assert_eq!(q.len(), total * h * dqk, "q shape");
    assert_eq!(k.len(), total * h * dqk, "k shape");
    assert_eq!(v.len(), total * h * dv, "v shape");
    let alpha = R::from_f64c(p.alpha);
    let inv_n = R::one() / R::from_f64c(p.n);
    let mut out = vec![R::zero(); total * h * dv];
    for b in 0..seq_offsets.len() - 1 {
        let (start, end) = (seq_offsets[b], seq_offsets[b + 1]);
        let len = end - start;
        let u = len - num_targets.map_or(0, |t| t[b].min(len));
        for head in 0..h {
            let mut matrix = capture.as_ref().map(|_| Mat::<R>::zeros(len, len));
            for i in 0..len {
                let qi = &q[((start + i) * h + head) * dqk..][..dqk];
                let oi = ((start + i) * h + head) * dv;
                for j in 0..len {
                    if !valid(i, j, u, p.max_attn_len) {
                        continue;
                    }
                    let kj = &k[((start + j) * h + head) * dqk..][..dqk];
                    let qk: R = qi.iter().zip(kj).map(|(&a, &b)| a * b).sum();
                    let s = alpha * qk + rab.map_or(R::zero(), |f| f(b, i, j));
                    let a = silu(s) * inv_n;
                    if let Some(m) = matrix.as_mut() {
                        m.data[i * len + j] = a;
                    }
                    let vj = &v[((start + j) * h + head) * dv..][..dv];
                    for (o, &x) in out[oi..oi + dv].iter_mut().zip(vj) {
                        *o += a * x;
                    }
                }
            }
            if let (Some(c), Some(m)) = (capture.as_deref_mut(), matrix) {
                c.push(m);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_rules() {
        // U = 3 history tokens, 2 targets (ids 3, 3).
        assert!(valid(2, 0, 3, 0) && valid(2, 2, 3, 0) && !valid(0, 2, 3, 0));
        assert!(valid(3, 0, 3, 0) && valid(4, 2, 3, 0) && valid(4, 4, 3, 0));
        assert!(!valid(4, 3, 3, 0) && !valid(3, 4, 3, 0) && !valid(1, 3, 3, 0));
        assert!(valid(2, 1, 3, 1) && !valid(2, 0, 3, 1));
    }
}
