//! AdamW as torch implements it (decoupled weight decay, bias-corrected moments).
//!
//! ```text
//! p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//! p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```

use super::grads::{tensors_mut, zeros_like};
use crate::checkpoint::Weights;
use crate::real::Real;

/// Hyper-parameters (spec section 7: lr 1e-3, betas 0.9 / 0.98, eps 1e-8, weight decay 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Optimizer state: the step count and both moments, shaped like the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW<R> {
    pub config: AdamWConfig,
    pub step: u64,
    pub m: Weights<R>,
    pub v: Weights<R>,
}

impl<R: Real> AdamW<R> {
    pub fn new(config: AdamWConfig, w: &Weights<R>) -> Self {
        AdamW {
            config,
            step: 0,
            m: zeros_like(w),
            v: zeros_like(w),
        }
    }

    /// One update of `w` with gradients `g`.
    pub fn update(&mut self, w: &mut Weights<R>, g: &Weights<R>) {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let (b1, b2) = (R::from_f64c(c.beta1), R::from_f64c(c.beta2));
        let (one, eps) = (R::one(), R::from_f64c(c.eps));
        let step_size = R::from_f64c(c.lr / bc1);
        let inv_bc2 = R::from_f64c(1.0 / bc2_sqrt);
        let decay = R::from_f64c(1.0 - c.lr * c.weight_decay);
        let grads = g.named();
        let params = tensors_mut(w).into_iter();
        let moments = tensors_mut(&mut self.m)
            .into_iter()
            .zip(tensors_mut(&mut self.v));
        for ((p, (_, _, gt)), (m, v)) in params.zip(grads).zip(moments) {
            for i in 0..p.len() {
                let gi = gt[i];
                m[i] = b1 * m[i] + (one - b1) * gi;
                v[i] = b2 * v[i] + (one - b2) * gi * gi;
                if c.weight_decay != 0.0 {
                    p[i] *= decay;
                }
                p[i] -= step_size * m[i] / (v[i].sqrt() * inv_bc2 + eps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    #[test]
    fn first_step_moves_by_lr_against_the_gradient_sign() {
        let cfg = ModelConfig::tiny_for_tests();
        let mut w = Weights::<f64>::seeded(&cfg, 1);
        let before = w.clone();
        let mut g = zeros_like(&w);
        g.layers[0].o_b[0] = 3.0;
        g.layers[0].o_b[1] = -0.5;
        let mut opt = AdamW::new(AdamWConfig::default(), &w);
        opt.update(&mut w, &g);
        let d0 = w.layers[0].o_b[0] - before.layers[0].o_b[0];
        let d1 = w.layers[0].o_b[1] - before.layers[0].o_b[1];
        assert!(
            (d0 + 1e-3).abs() < 1e-9 && (d1 - 1e-3).abs() < 1e-9,
            "{d0} {d1}"
        );
        assert_eq!(w.layers[0].o_b[2], before.layers[0].o_b[2]);
    }
}
