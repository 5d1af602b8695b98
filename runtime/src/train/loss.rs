//! The training losses: autoregressive sampled softmax (spec section 7) and the ranking head's
//! binary cross-entropy (spec section 5), each with its gradient.

use crate::checkpoint::RankingWeights;
use crate::real::{Real, sigmoid};
use crate::rng::Rng;
use crate::tensor::{Mat, dot, linear};

/// Sampled softmax settings (spec section 7: 128 negatives, temperature 0.05).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampledSoftmax {
    pub num_negatives: usize,
    pub temperature: f64,
    /// Negatives are drawn uniformly with replacement from `1..=num_items`.
    pub num_items: usize,
}

/// A loss summed over supervised positions (or candidates), and their number.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossSum {
    pub sum: f64,
    pub count: usize,
}

impl LossSum {
    pub fn add(&mut self, other: LossSum) {
        self.sum += other.sum;
        self.count += other.count;
    }
}

impl SampledSoftmax {
    /// Negative item ids of one position: `[num_negatives]`.
    pub fn draw(&self, rng: &mut Rng) -> Vec<u32> {
        (0..self.num_negatives)
            .map(|_| 1 + rng.below(self.num_items as u64) as u32)
            .collect()
    }

    /// `-log_softmax([o.e_pos, o.e_neg..] / tau)[0]` at every position `p` with `positives[p] != 0`;
    /// a negative equal to the positive gets logit `-inf`.
    ///
    /// * `o: [L, D]` L2-normalised outputs, `items_normed: [num_items + 1, D]` the normalised table;
    /// * returns the loss sum and count, adds `d loss_sum / d o` into `d_o: [L, D]` and
    ///   `d loss_sum / d items_normed` into `d_items_normed`.
    pub fn loss<R: Real>(
        &self,
        o: &Mat<R>,
        positives: &[u32],
        items_normed: &Mat<R>,
        rng: &mut Rng,
        d_o: &mut Mat<R>,
        d_items_normed: &mut Mat<R>,
    ) -> LossSum {
        assert_eq!(o.rows, positives.len(), "one positive per position");
        let inv_tau = R::from_f64c(1.0 / self.temperature);
        let mut total = LossSum::default();
        let mut ids = vec![0u32; self.num_negatives + 1];
        let mut logits = vec![R::zero(); self.num_negatives + 1];
        for (p, &pos) in positives.iter().enumerate() {
            let negatives = self.draw(rng);
            if pos == 0 {
                continue;
            }
            ids[0] = pos;
            ids[1..].copy_from_slice(&negatives);
            let op = o.row(p);
            for (c, (z, &id)) in logits.iter_mut().zip(&ids).enumerate() {
                *z = if c > 0 && id == pos {
                    R::neg_infinity()
                } else {
                    dot(op, items_normed.row(id as usize)) * inv_tau
                };
            }
            let max = logits.iter().copied().fold(R::neg_infinity(), R::max);
            let sum_exp: R = logits.iter().map(|&z| (z - max).exp()).sum();
            let log_z = max + sum_exp.ln();
            total.sum += (log_z - logits[0]).to_f64c();
            total.count += 1;
            // d loss / d z_c = softmax_c - [c == 0]
            let dop = d_o.row_mut(p);
            for (c, (&z, &id)) in logits.iter().zip(&ids).enumerate() {
                let mut dz = (z - log_z).exp();
                if c == 0 {
                    dz -= R::one();
                }
                if dz == R::zero() {
                    continue;
                }
                let dz = dz * inv_tau;
                let item = items_normed.row(id as usize);
                for (g, &x) in dop.iter_mut().zip(item) {
                    *g += dz * x;
                }
                for (g, &x) in d_items_normed.row_mut(id as usize).iter_mut().zip(op) {
                    *g += dz * x;
                }
            }
        }
        total
    }
}

/// `-[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]`, stable for any `z`.
pub fn bce_with_logits(z: f64, y: f64) -> f64 {
    z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
}

/// The ranking head `W2 relu(W0 e + b0) + b2` on one candidate with BCE per task, summed over tasks.
///
/// `e: [D]` final candidate embedding, `labels: [T]`; adds `d loss / d params` into `g` and
/// returns `(loss, d loss / d e)`.
pub fn ranking_head_bce<R: Real>(
    r: &RankingWeights<R>,
    e: &[R],
    labels: &[f32],
    g: &mut RankingWeights<R>,
) -> (f64, Vec<R>) {
    let pre = linear(e, &r.mlp0_w, Some(&r.mlp0_b));
    let hidden: Vec<R> = pre.iter().map(|&x| x.max(R::zero())).collect();
    let logits = linear(&hidden, &r.mlp2_w, Some(&r.mlp2_b));
    assert_eq!(logits.len(), labels.len(), "one label per task");
    let mut loss = 0.0;
    let mut d_hidden = vec![R::zero(); hidden.len()];
    for (t, (&z, &y)) in logits.iter().zip(labels).enumerate() {
        loss += bce_with_logits(z.to_f64c(), y as f64);
        let dz = sigmoid(z) - R::from_f64c(y as f64);
        g.mlp2_b[t] += dz;
        let w2 = r.mlp2_w.row(t);
        for (c, gw) in g.mlp2_w.row_mut(t).iter_mut().enumerate() {
            *gw += dz * hidden[c];
            d_hidden[c] += dz * w2[c];
        }
    }
    let mut d_e = vec![R::zero(); e.len()];
    for (h, &p) in pre.iter().enumerate() {
        if p <= R::zero() {
            continue;
        }
        let dh = d_hidden[h];
        g.mlp0_b[h] += dh;
        let w0 = r.mlp0_w.row(h);
        for (c, gw) in g.mlp0_w.row_mut(h).iter_mut().enumerate() {
            *gw += dh * e[c];
            d_e[c] += dh * w0[c];
        }
    }
    (loss, d_e)
}
