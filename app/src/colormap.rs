//! The viridis colormap and the attention heatmap image (computed on the worker, drawn as a texture).

use egui::{Color32, ColorImage};

/// Viridis (matplotlib) sampled at 9 evenly spaced stops; linear in between.
const VIRIDIS_STOPS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [72, 40, 120],
    [62, 73, 137],
    [49, 104, 142],
    [38, 130, 142],
    [31, 158, 137],
    [53, 183, 121],
    [110, 206, 88],
    [253, 231, 37],
];

/// Okabe and Ito's qualitative palette (distinct for colour-blind readers too), with grey-white for
/// black so that it shows on a dark background: the colours of plot series.
const SERIES: [[u8; 3]; 8] = [
    [86, 180, 233],
    [230, 159, 0],
    [0, 158, 115],
    [240, 228, 66],
    [204, 121, 167],
    [213, 94, 0],
    [0, 114, 178],
    [200, 200, 200],
];

/// Colour of plot series `k`: eight distinct colours, then they repeat.
pub fn series_color(k: usize) -> Color32 {
    let [r, g, b] = SERIES[k % SERIES.len()];
    Color32::from_rgb(r, g, b)
}

/// Colour of masked (future) cells of a causal attention map.
pub const MASKED: Color32 = Color32::from_rgb(24, 24, 28);

/// Viridis at `x` in `[0, 1]` (clamped; NaN maps to 0).
pub fn viridis(x: f32) -> Color32 {
    let x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
    let scaled = x * (VIRIDIS_STOPS.len() - 1) as f32;
    let lo = (scaled.floor() as usize).min(VIRIDIS_STOPS.len() - 2);
    let f = scaled - lo as f32;
    let (a, b) = (VIRIDIS_STOPS[lo], VIRIDIS_STOPS[lo + 1]);
    let mix = |c: usize| (a[c] as f32 + (b[c] as f32 - a[c] as f32) * f).round() as u8;
    Color32::from_rgb(mix(0), mix(1), mix(2))
}

/// The value range a heatmap's colours span.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValueRange {
    pub min: f32,
    pub max: f32,
}

impl ValueRange {
    /// Position of `v` in the range, in `[0, 1]`.
    pub fn unit(&self, v: f32) -> f32 {
        let span = (self.max - self.min).max(f32::MIN_POSITIVE);
        ((v - self.min) / span).clamp(0.0, 1.0)
    }
}

/// Heatmap of a causal `[t, t]` attention matrix (row-major, `a_ij` for query i, key j):
/// valid cells (j <= i) coloured by viridis over their own min..max, masked cells [`MASKED`].
pub fn causal_heatmap(a: &[f32], t: usize) -> (ColorImage, ValueRange) {
    assert!(
        t >= 1 && a.len() == t * t,
        "attention matrix must be [t, t] with t >= 1"
    );
    let mut range = ValueRange {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
    };
    for i in 0..t {
        for &v in &a[i * t..i * t + i + 1] {
            range.min = range.min.min(v);
            range.max = range.max.max(v);
        }
    }
    if !range.min.is_finite() {
        range = ValueRange { min: 0.0, max: 1.0 };
    }
    let pixels = (0..t * t)
        .map(|idx| {
            let (i, j) = (idx / t, idx % t);
            if j > i {
                MASKED
            } else {
                viridis(range.unit(a[idx]))
            }
        })
        .collect();
    (ColorImage::new([t, t], pixels), range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_and_clamps() {
        assert_eq!(viridis(0.0), Color32::from_rgb(68, 1, 84));
        assert_eq!(viridis(1.0), Color32::from_rgb(253, 231, 37));
        assert_eq!(viridis(-3.0), viridis(0.0));
        assert_eq!(viridis(7.0), viridis(1.0));
        assert_eq!(viridis(0.5), Color32::from_rgb(38, 130, 142));
    }

    #[test]
    fn series_colours_are_distinct_then_repeat() {
        let first: Vec<Color32> = (0..8).map(series_color).collect();
        for (i, a) in first.iter().enumerate() {
            for b in &first[i + 1..] {
                let d: i32 = (0..3).map(|c| (a[c] as i32 - b[c] as i32).abs()).sum();
                assert!(d > 60, "series colours {a:?} and {b:?} are too close");
            }
        }
        assert_eq!(series_color(8), series_color(0));
    }

    #[test]
    fn heatmap_masks_future_and_spans_valid_range() {
        let a = [0.1, 9.0, 0.3, 0.5];
        let (img, range) = causal_heatmap(&a, 2);
        assert_eq!(range, ValueRange { min: 0.1, max: 0.5 });
        assert_eq!(img.size, [2, 2]);
        assert_eq!(img.pixels[1], MASKED);
        assert_eq!(img.pixels[0], viridis(0.0));
        assert_eq!(img.pixels[3], viridis(1.0));
    }
}
