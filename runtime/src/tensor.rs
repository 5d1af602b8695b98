//! A row-major matrix: the one container of the CPU reference.

use crate::real::Real;

/// Row-major `[rows, cols]` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Mat<R> {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<R>,
}

impl<R: Real> Mat<R> {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            data: vec![R::zero(); rows * cols],
        }
    }

    pub fn from_vec(rows: usize, cols: usize, data: Vec<R>) -> Self {
        assert_eq!(data.len(), rows * cols, "Mat::from_vec: data length");
        Mat { rows, cols, data }
    }

    pub fn row(&self, r: usize) -> &[R] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn row_mut(&mut self, r: usize) -> &mut [R] {
        &mut self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn at(&self, r: usize, c: usize) -> R {
        self.data[r * self.cols + c]
    }

    /// Convert element type (f32 <-> f64).
    pub fn cast<S: Real>(&self) -> Mat<S> {
        Mat {
            rows: self.rows,
            cols: self.cols,
            data: self
                .data
                .iter()
                .map(|x| S::from_f64c(x.to_f64c()))
                .collect(),
        }
    }

    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
}

/// `y[c] = sum_r x[r] * w[r, c]` for `w: [x.len(), cols]`.
pub fn vec_mat<R: Real>(x: &[R], w: &Mat<R>) -> Vec<R> {
    assert_eq!(x.len(), w.rows, "vec_mat: x length vs w rows");
    let mut y = vec![R::zero(); w.cols];
    for (r, &xr) in x.iter().enumerate() {
        for (yc, &wrc) in y.iter_mut().zip(w.row(r)) {
            *yc += xr * wrc;
        }
    }
    y
}

/// `y[r] = sum_c w[r, c] * x[c] + b[r]` (torch Linear layout `w: [out, in]`).
pub fn linear<R: Real>(x: &[R], w: &Mat<R>, b: Option<&[R]>) -> Vec<R> {
    assert_eq!(x.len(), w.cols, "linear: x length vs w cols");
    (0..w.rows)
        .map(|r| {
            let dot: R = w.row(r).iter().zip(x).map(|(&a, &b)| a * b).sum();
            dot + b.map_or(R::zero(), |b| b[r])
        })
        .collect()
}

pub fn dot<R: Real>(a: &[R], b: &[R]) -> R {
    a.iter().zip(b).map(|(&x, &y)| x * y).sum()
}
