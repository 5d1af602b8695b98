//! Element-wise and row-wise ops of the reference.

use crate::real::Real;

/// Layer norm without affine parameters: `(x - mean) / sqrt(var + eps)`, biased variance.
pub fn layer_norm<R: Real>(x: &[R], eps: f64) -> Vec<R> {
    let n = R::of_usize(x.len());
    let mean = x.iter().copied().sum::<R>() / n;
    let var = x.iter().map(|&a| (a - mean) * (a - mean)).sum::<R>() / n;
    let inv = R::one() / (var + R::from_f64c(eps)).sqrt();
    x.iter().map(|&a| (a - mean) * inv).collect()
}

/// `x / max(||x||, eps)`.
pub fn l2_normalize<R: Real>(x: &[R], eps: f64) -> Vec<R> {
    let norm = x.iter().map(|&a| a * a).sum::<R>().sqrt();
    let denom = norm.max(R::from_f64c(eps));
    x.iter().map(|&a| a / denom).collect()
}

/// `bucket(dt) = clamp(floor(ln(max(|dt|, 1)) / divisor), 0, num_buckets)` (natural log).
pub fn time_bucket(dt_secs: i64, divisor: f64, num_buckets: usize) -> usize {
    let x = (dt_secs.unsigned_abs().max(1) as f64).ln() / divisor;
    (x.floor().max(0.0) as usize).min(num_buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(time_bucket(0, 0.301, 128), 0);
        assert_eq!(time_bucket(1, 0.301, 128), 0);
        assert_eq!(time_bucket(2, 0.301, 128), 2); // ln 2 / .301 = 2.30
        assert_eq!(time_bucket(-2, 0.301, 128), 2);
        assert_eq!(time_bucket(i64::MAX, 0.301, 128), 128);
    }

    #[test]
    fn layer_norm_moments() {
        let y = layer_norm(&[1.0f64, 2.0, 3.0, 6.0], 1e-6);
        let mean: f64 = y.iter().sum::<f64>() / 4.0;
        let var: f64 = y.iter().map(|a| a * a).sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-5);
    }
}
