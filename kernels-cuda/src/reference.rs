//! CPU reference of the attention operator (hstu-spec section 6), naive loops in f64.
//! The spec in code form: every CUDA kernel is tested against these functions.

/// Host description of one jagged attention problem (shapes and scalars; tensors separate).
#[derive(Clone, Debug)]
pub struct AttentionProblem {
    /// `[batch + 1]`, starting at 0.
    pub seq_offsets: Vec<i64>,
    /// `[batch]` or None.
    pub num_targets: Option<Vec<i64>>,
    pub heads: usize,
    pub dqk: usize,
    pub dv: usize,
    pub alpha: f64,
    /// The normaliser n.
    pub norm_n: f64,
    /// 0 = unlimited.
    pub max_attn_len: usize,
    pub rab: Option<RabHost>,
}

/// Relative attention bias of one layer on the host.
#[derive(Clone, Debug)]
pub struct RabHost {
    /// N (pos_w has 2N - 1 entries).
    pub n: usize,
    pub num_buckets: usize,
    pub bucket_divisor: f64,
    pub pos_w: Vec<f32>,
    pub ts_w: Vec<f32>,
    /// `[total_tokens]`.
    pub timestamps: Vec<i64>,
    /// `[total_tokens]`: the next token's time.
    pub t_next: Vec<i64>,
}

/// Gradients of the reference backward.
#[derive(Clone, Debug, Default)]
pub struct AttentionGradsHost {
    pub dq: Vec<f64>,
    pub dk: Vec<f64>,
    pub dv: Vec<f64>,
    pub dpos_w: Vec<f64>,
    pub dts_w: Vec<f64>,
}

/// `bucket(dt) = clamp(floor(ln(max(|dt|, 1)) / divisor), 0, num_buckets)`.
pub fn time_bucket(dt: i64, divisor: f64, num_buckets: usize) -> usize {
    let a = dt.unsigned_abs().max(1) as f64;
    let b = (a.ln() / divisor).floor();
    b.clamp(0.0, num_buckets as f64) as usize
}

impl AttentionProblem {
    pub fn batch(&self) -> usize {
        self.seq_offsets.len() - 1
    }
    pub fn total_tokens(&self) -> usize {
        *self.seq_offsets.last().unwrap_or(&0) as usize
    }
    pub fn seq_lens(&self) -> Vec<usize> {
        self.seq_offsets
            .windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .collect()
    }

    /// `valid(i, j)` of section 6 for sequence b (positions local to the sequence).
    pub fn valid(&self, b: usize, i: usize, j: usize) -> bool {
        let l = (self.seq_offsets[b + 1] - self.seq_offsets[b]) as usize;
        let u = l - self.num_targets.as_ref().map_or(0, |t| t[b] as usize);
        if i == j {
            return true;
        }
        let d = i.min(u) as i64 - j.min(u) as i64;
        d > 0 && (self.max_attn_len == 0 || d <= self.max_attn_len as i64)
    }

    /// `(pos index, ts index)` of rab_ij for sequence b starting at token `start`.
    fn rab_index(&self, r: &RabHost, b: usize, start: usize, i: usize, j: usize) -> (usize, usize) {
        let l = (self.seq_offsets[b + 1] - self.seq_offsets[b]) as usize;
        let u = l - self.num_targets.as_ref().map_or(0, |t| t[b] as usize);
        let pos = (r.n as i64 - 1 + j.min(u) as i64 - i.min(u) as i64) as usize;
        let dt = r.t_next[start + i] - r.timestamps[start + j];
        (pos, time_bucket(dt, r.bucket_divisor, r.num_buckets))
    }

    /// `s_ij = alpha q_i . k_j + rab_ij` (unmasked), plus the rab indices.
    fn score(
        &self,
        q: &[f64],
        k: &[f64],
        b: usize,
        h: usize,
        i: usize,
        j: usize,
    ) -> (f64, Option<(usize, usize)>) {
        let start = self.seq_offsets[b] as usize;
        let (hd, dqk) = (self.heads, self.dqk);
        let qi = &q[((start + i) * hd + h) * dqk..][..dqk];
        let kj = &k[((start + j) * hd + h) * dqk..][..dqk];
        let dot: f64 = qi.iter().zip(kj).map(|(a, b)| a * b).sum();
        let mut s = self.alpha * dot;
        let mut idx = None;
        if let Some(r) = &self.rab {
            let (p, t) = self.rab_index(r, b, start, i, j);
            s += r.pos_w[p] as f64 + r.ts_w[t] as f64;
            idx = Some((p, t));
        }
        (s, idx)
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Forward reference. q, k: `[T, H, dqk]`, v: `[T, H, dv]` -> out `[T, H, dv]`.
pub fn hstu_attention_fwd_reference(
    p: &AttentionProblem,
    q: &[f64],
    k: &[f64],
    v: &[f64],
) -> Vec<f64> {
    let (hd, dv) = (p.heads, p.dv);
    let mut out = vec![0.0; p.total_tokens() * hd * dv];
    for (b, &l) in p.seq_lens().iter().enumerate() {
        let start = p.seq_offsets[b] as usize;
        for h in 0..hd {
            for i in 0..l {
                let o = ((start + i) * hd + h) * dv;
                for j in 0..l {
                    if !p.valid(b, i, j) {
                        continue;
                    }
                    let (s, _) = p.score(q, k, b, h, i, j);
                    let a = s * sigmoid(s) / p.norm_n;
                    let vj = ((start + j) * hd + h) * dv;
                    for c in 0..dv {
                        out[o + c] += a * v[vj + c];
                    }
                }
            }
        }
    }
    out
}

/// Backward reference (section 6 formulas), including the rab gradients when `p.rab` is set.
pub fn hstu_attention_bwd_reference(
    p: &AttentionProblem,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dout: &[f64],
) -> AttentionGradsHost {
    let (hd, dqk, dv) = (p.heads, p.dqk, p.dv);
    let t = p.total_tokens();
    let mut g = AttentionGradsHost {
        dq: vec![0.0; t * hd * dqk],
        dk: vec![0.0; t * hd * dqk],
        dv: vec![0.0; t * hd * dv],
        dpos_w: vec![0.0; p.rab.as_ref().map_or(0, |r| 2 * r.n - 1)],
        dts_w: vec![0.0; p.rab.as_ref().map_or(0, |r| r.num_buckets + 1)],
    };
    for (b, &l) in p.seq_lens().iter().enumerate() {
        let start = p.seq_offsets[b] as usize;
        for h in 0..hd {
            for i in 0..l {
                for j in 0..l {
                    if !p.valid(b, i, j) {
                        continue;
                    }
                    let (s, idx) = p.score(q, k, b, h, i, j);
                    let sg = sigmoid(s);
                    let a = s * sg / p.norm_n;
                    let (oi, vj) = (((start + i) * hd + h) * dv, ((start + j) * hd + h) * dv);
                    let mut gdot = 0.0;
                    for c in 0..dv {
                        gdot += dout[oi + c] * v[vj + c];
                        g.dv[vj + c] += a * dout[oi + c];
                    }
                    let ds = gdot * sg * (1.0 + s * (1.0 - sg)) / p.norm_n;
                    let (qi, kj) = (((start + i) * hd + h) * dqk, ((start + j) * hd + h) * dqk);
                    for c in 0..dqk {
                        g.dq[qi + c] += p.alpha * ds * k[kj + c];
                        g.dk[kj + c] += p.alpha * ds * q[qi + c];
                    }
                    if let Some((pi, ti)) = idx {
                        g.dpos_w[pi] += ds;
                        g.dts_w[ti] += ds;
                    }
                }
            }
        }
    }
    g
}

/// One row of every output, for sampled checks of large problems: for sequence b, head h and
/// local position r returns `(out_r [dv], dq_r [dqk], dk_r [dqk], dv_r [dv])` (dk/dv of key r).
pub fn reference_rows(
    p: &AttentionProblem,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dout: &[f64],
    (b, h, r): (usize, usize, usize),
) -> [Vec<f64>; 4] {
    let (hd, dqk, dv) = (p.heads, p.dqk, p.dv);
    let l = (p.seq_offsets[b + 1] - p.seq_offsets[b]) as usize;
    let start = p.seq_offsets[b] as usize;
    let row = |t: usize, d: usize| ((start + t) * hd + h) * d;
    let (mut o, mut dq, mut dk, mut dvv) =
        (vec![0.0; dv], vec![0.0; dqk], vec![0.0; dqk], vec![0.0; dv]);
    for x in 0..l {
        // (i, j) = (r, x): out_r and dq_r; (i, j) = (x, r): dk_r and dv_r.
        for (i, j, as_query) in [(r, x, true), (x, r, false)] {
            if !p.valid(b, i, j) {
                continue;
            }
            let (s, _) = p.score(q, k, b, h, i, j);
            let sg = sigmoid(s);
            let a = s * sg / p.norm_n;
            let gdot: f64 = (0..dv)
                .map(|c| dout[row(i, dv) + c] * v[row(j, dv) + c])
                .sum();
            let ds = gdot * sg * (1.0 + s * (1.0 - sg)) / p.norm_n;
            if as_query {
                (0..dv).for_each(|c| o[c] += a * v[row(j, dv) + c]);
                (0..dqk).for_each(|c| dq[c] += p.alpha * ds * k[row(j, dqk) + c]);
            } else {
                (0..dv).for_each(|c| dvv[c] += a * dout[row(i, dv) + c]);
                (0..dqk).for_each(|c| dk[c] += p.alpha * ds * q[row(i, dqk) + c]);
            }
        }
    }
    [o, dq, dk, dvv]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_matches_spec_examples() {
        assert_eq!(time_bucket(0, 0.301, 128), 0);
        assert_eq!(time_bucket(-1, 0.301, 128), 0);
        // ln(60) / 0.301 = 13.6
        assert_eq!(time_bucket(60, 0.301, 128), 13);
        assert_eq!(time_bucket(i64::MAX, 0.301, 128), 128);
    }

    #[test]
    fn targets_mask_follows_section_5() {
        let p = AttentionProblem {
            seq_offsets: vec![0, 5],
            num_targets: Some(vec![2]),
            heads: 1,
            dqk: 1,
            dv: 1,
            alpha: 1.0,
            norm_n: 5.0,
            max_attn_len: 0,
            rab: None,
        };
        assert!(p.valid(0, 2, 1) && p.valid(0, 2, 2) && !p.valid(0, 1, 2));
        assert!(p.valid(0, 3, 2) && p.valid(0, 4, 0) && p.valid(0, 4, 4));
        assert!(!p.valid(0, 4, 3) && !p.valid(0, 3, 4));
    }

    /// Finite differences of the forward against the analytic backward, rab included.
    #[test]
    fn backward_matches_finite_differences() {
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let (t, h, d) = (7, 2, 3);
        let ts: Vec<i64> = (0..t as i64).map(|i| 1000 + i * i * 37).collect();
        let mut t_next: Vec<i64> = ts[1..].to_vec();
        t_next.insert(3, 1500);
        t_next.push(2000);
        let p = AttentionProblem {
            seq_offsets: vec![0, 4, 7],
            num_targets: Some(vec![0, 1]),
            heads: h,
            dqk: d,
            dv: d,
            alpha: 0.7,
            norm_n: 4.0,
            max_attn_len: 0,
            rab: Some(RabHost {
                n: 4,
                num_buckets: 8,
                bucket_divisor: 0.301,
                pos_w: (0..7).map(|i| i as f32 * 0.1 - 0.3).collect(),
                ts_w: (0..9).map(|i| 0.05 * i as f32).collect(),
                timestamps: ts,
                t_next,
            }),
        };
        let n = t * h * d;
        let (q, k, v, dout): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) = (
            (0..n).map(|_| rnd()).collect(),
            (0..n).map(|_| rnd()).collect(),
            (0..n).map(|_| rnd()).collect(),
            (0..n).map(|_| rnd()).collect(),
        );
        let g = hstu_attention_bwd_reference(&p, &q, &k, &v, &dout);
        let loss = |q: &[f64], k: &[f64], v: &[f64]| -> f64 {
            hstu_attention_fwd_reference(&p, q, k, v)
                .iter()
                .zip(&dout)
                .map(|(a, b)| a * b)
                .sum()
        };
        let eps = 1e-6;
        for idx in [0, 5, 17, 30, n - 1] {
            for (which, grad) in [(0, &g.dq), (1, &g.dk), (2, &g.dv)] {
                let mut xs = [q.clone(), k.clone(), v.clone()];
                xs[which][idx] += eps;
                let up = loss(&xs[0], &xs[1], &xs[2]);
                xs[which][idx] -= 2.0 * eps;
                let dn = loss(&xs[0], &xs[1], &xs[2]);
                let fd = (up - dn) / (2.0 * eps);
                assert!(
                    (fd - grad[idx]).abs() < 1e-6,
                    "tensor {which} idx {idx}: {fd} vs {}",
                    grad[idx]
                );
            }
        }
    }
}
