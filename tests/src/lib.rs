//! Shared helpers of the cross-vendor, golden and end-to-end tests.

use std::path::PathBuf;

/// `tests/golden/<case>`: copies of `../shared/golden` produced by the reference implementation.
pub fn golden_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(case)
}

/// Largest absolute difference, with the index where it occurs.
pub fn max_abs_diff(actual: &[f64], expected: &[f64]) -> (f64, usize) {
    assert_eq!(actual.len(), expected.len(), "length mismatch");
    actual
        .iter()
        .zip(expected)
        .enumerate()
        .map(|(i, (a, e))| ((a - e).abs(), i))
        .fold(
            (0.0, 0),
            |acc, x| if x.0 > acc.0 || x.0.is_nan() { x } else { acc },
        )
}

pub mod gpu;
