//! Backward of the element-wise and row-wise ops of `reference::ops`.

use crate::real::{Real, sigmoid};

/// Layer norm without affine, keeping `rstd = 1 / sqrt(var + eps)` for the backward.
/// Same arithmetic as `reference::ops::layer_norm`.
pub fn layer_norm_rstd<R: Real>(x: &[R], eps: f64) -> (Vec<R>, R) {
    let n = R::of_usize(x.len());
    let mean = x.iter().copied().sum::<R>() / n;
    let var = x.iter().map(|&a| (a - mean) * (a - mean)).sum::<R>() / n;
    let inv = R::one() / (var + R::from_f64c(eps)).sqrt();
    (x.iter().map(|&a| (a - mean) * inv).collect(), inv)
}

/// `y = LN(x)` (no affine): `dx = rstd * (dy - mean(dy) - y * mean(dy * y))`, added into `dx`.
pub fn layer_norm_backward<R: Real>(y: &[R], rstd: R, dy: &[R], dx: &mut [R]) {
    let n = R::of_usize(y.len());
    let mean_dy = dy.iter().copied().sum::<R>() / n;
    let mean_dyy = dy.iter().zip(y).map(|(&a, &b)| a * b).sum::<R>() / n;
    for ((d, &g), &yy) in dx.iter_mut().zip(dy).zip(y) {
        *d += rstd * (g - mean_dy - yy * mean_dyy);
    }
}

/// `d silu(x) / dx = sigmoid(x) * (1 + x * (1 - sigmoid(x)))`.
pub fn silu_grad<R: Real>(x: R) -> R {
    let s = sigmoid(x);
    s * (R::one() + x * (R::one() - s))
}

/// `o = e / max(||e||, eps)`: `de = (do - o (o . do)) / ||e||`, or `do / eps` below `eps`.
pub fn l2_normalize_backward<R: Real>(e: &[R], d_o: &[R], eps: f64) -> Vec<R> {
    let norm = e.iter().map(|&a| a * a).sum::<R>().sqrt();
    let eps = R::from_f64c(eps);
    if norm <= eps {
        return d_o.iter().map(|&g| g / eps).collect();
    }
    let dot = e.iter().zip(d_o).map(|(&a, &g)| a * g).sum::<R>() / norm;
    e.iter()
        .zip(d_o)
        .map(|(&a, &g)| (g - a / norm * dot) / norm)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::ops::{l2_normalize, layer_norm};

    /// Central differences of `f` at `x` along every coordinate, against `grad`.
    fn check(f: &dyn Fn(&[f64]) -> f64, x: &[f64], grad: &[f64]) {
        let h = 1e-6;
        for i in 0..x.len() {
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            a[i] += h;
            b[i] -= h;
            let fd = (f(&a) - f(&b)) / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() < 1e-6,
                "coord {i}: fd {fd} vs {}",
                grad[i]
            );
        }
    }

    #[test]
    fn layer_norm_l2_silu_match_finite_differences() {
        let x = [0.3, -1.2, 2.0, 0.7, -0.1];
        let w = [0.5, 1.5, -0.7, 0.2, 1.1];
        let (y, rstd) = layer_norm_rstd(&x, 1e-6);
        assert_eq!(y, layer_norm(&x, 1e-6));
        let mut dx = vec![0.0; 5];
        layer_norm_backward(&y, rstd, &w, &mut dx);
        let loss = |x: &[f64]| {
            layer_norm(x, 1e-6)
                .iter()
                .zip(&w)
                .map(|(a, b)| a * b)
                .sum::<f64>()
        };
        check(&loss, &x, &dx);
        let de = l2_normalize_backward(&x, &w, 1e-6);
        let loss = |x: &[f64]| {
            l2_normalize(x, 1e-6)
                .iter()
                .zip(&w)
                .map(|(a, b)| a * b)
                .sum::<f64>()
        };
        check(&loss, &x, &de);
        for &v in &x {
            let fd = (crate::real::silu(v + 1e-6) - crate::real::silu(v - 1e-6)) / 2e-6;
            assert!((fd - silu_grad(v)).abs() < 1e-8);
        }
    }
}
