//! Gradients share the layout of the weights: a [`Weights`] of zeros, viewed as flat tensors.
//!
//! The retrieval loss also produces gradients of the L2-normalised item table (the sampled
//! softmax scores `o . normalize(ItemEmb[c])`); they are kept apart in [`Grads::item_normed`] and
//! folded into `item_emb` once per step by [`Grads::finish`], which is exact because the
//! normalisation backward is linear in its incoming gradient.

use super::ops::l2_normalize_backward;
use crate::checkpoint::Weights;
use crate::real::Real;
use crate::tensor::Mat;

/// Every tensor of `w` as a mutable flat slice, in the order of [`Weights::named`].
pub fn tensors_mut<R>(w: &mut Weights<R>) -> Vec<&mut [R]> {
    let mut v: Vec<&mut [R]> = vec![&mut w.item_emb.data, &mut w.pos_emb.data];
    for l in &mut w.layers {
        v.push(&mut l.uvqk.data);
        v.push(&mut l.pos_w);
        v.push(&mut l.ts_w);
        v.push(&mut l.o_w.data);
        v.push(&mut l.o_b);
    }
    if let Some(r) = &mut w.ranking {
        v.push(&mut r.action_emb.data);
        v.push(&mut r.mlp0_w.data);
        v.push(&mut r.mlp0_b);
        v.push(&mut r.mlp2_w.data);
        v.push(&mut r.mlp2_b);
    }
    v
}

/// Weights of the same shapes as `w`, all zero.
pub fn zeros_like<R: Real>(w: &Weights<R>) -> Weights<R> {
    let mut z = w.clone();
    for t in tensors_mut(&mut z) {
        t.fill(R::zero());
    }
    z
}

/// Gradients of one step (or one chunk of users of a step).
#[derive(Clone, Debug)]
pub struct Grads<R> {
    /// d loss / d parameter, shaped like the weights.
    pub w: Weights<R>,
    /// d loss / d normalize(ItemEmb[c]): [num_items + 1, D] (retrieval loss only).
    pub item_normed: Mat<R>,
}

impl<R: Real> Grads<R> {
    pub fn zeros(w: &Weights<R>) -> Self {
        Grads {
            w: zeros_like(w),
            item_normed: Mat::zeros(w.item_emb.rows, w.item_emb.cols),
        }
    }

    /// `self += other`, element by element (a fixed order keeps training deterministic).
    pub fn add(&mut self, other: &Grads<R>) {
        let src = other.w.named();
        for (d, (_, _, s)) in tensors_mut(&mut self.w).into_iter().zip(src) {
            d.iter_mut().zip(s.iter()).for_each(|(a, &b)| *a += b);
        }
        for (a, &b) in self
            .item_normed
            .data
            .iter_mut()
            .zip(&other.item_normed.data)
        {
            *a += b;
        }
    }

    /// Fold `item_normed` into `w.item_emb` through the normalisation backward; returns the
    /// parameter gradients.
    pub fn finish(mut self, weights: &Weights<R>, l2_norm_eps: f64) -> Weights<R> {
        for r in 0..self.item_normed.rows {
            let d = self.item_normed.row(r);
            if d.iter().all(|&x| x == R::zero()) {
                continue;
            }
            let de = l2_normalize_backward(weights.item_emb.row(r), d, l2_norm_eps);
            for (g, x) in self.w.item_emb.row_mut(r).iter_mut().zip(de) {
                *g += x;
            }
        }
        self.w
    }
}

/// Multiply every gradient by `s`.
pub fn scale<R: Real>(g: &mut Weights<R>, s: R) {
    for t in tensors_mut(g) {
        t.iter_mut().for_each(|x| *x *= s);
    }
}
