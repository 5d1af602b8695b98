//! The scalar type of the CPU reference: f32 for speed, f64 for golden and finite-difference checks.

use num_traits::{Float, FromPrimitive};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A float the CPU reference computes in (`f32` or `f64`).
pub trait Real:
    Float
    + FromPrimitive
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Send
    + Sync
    + Default
    + std::fmt::Debug
    + std::fmt::Display
    + 'static
{
    fn from_f64c(x: f64) -> Self;
    fn to_f64c(self) -> f64;
    fn of_usize(x: usize) -> Self {
        Self::from_f64c(x as f64)
    }
}

impl Real for f32 {
    fn from_f64c(x: f64) -> Self {
        x as f32
    }
    fn to_f64c(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    fn from_f64c(x: f64) -> Self {
        x
    }
    fn to_f64c(self) -> f64 {
        self
    }
}

/// silu(x) = x * sigmoid(x)
pub fn silu<R: Real>(x: R) -> R {
    x * sigmoid(x)
}

/// sigmoid(x) = 1 / (1 + exp(-x)), computed without overflow for large |x|.
pub fn sigmoid<R: Real>(x: R) -> R {
    if x >= R::zero() {
        R::one() / (R::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (R::one() + e)
    }
}
