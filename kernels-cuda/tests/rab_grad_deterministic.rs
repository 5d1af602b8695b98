//! GPU test: `RabGrads::deterministic` sums the relative-bias gradients in a fixed order
//! (bitwise equal across runs), agrees with the atomic default and with the f64 reference, and
//! leaves dq/dk/dv bit-identical. Skips (with a printed reason) without CUDA.
use hstu_cuda::host::attention_host_with;
use hstu_cuda::reference::{AttentionProblem, RabHost, hstu_attention_bwd_reference};
use hstu_cuda::{CudaDevice, cuda_available};
use std::time::Instant;

/// bf16 operands against the f64 reference (the golden tests' bound).
const BF16_ATTENTION: f64 = 1e-2;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn vec(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n)
            .map(|_| ((2.0 * self.next() - 1.0) * scale) as f32)
            .collect()
    }
}

fn rel(got: &[f32], want: &[f64]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - b).powi(2))
        .sum();
    let den: f64 = want.iter().map(|b| b * b).sum();
    (num / den.max(1e-300)).sqrt()
}

fn problem(rng: &mut Lcg, targets: bool, max_attn_len: usize) -> AttentionProblem {
    let lens = [300usize, 1, 77, 129, 211];
    let mut offs = vec![0i64];
    for l in lens {
        offs.push(offs.last().unwrap() + l as i64);
    }
    let total = *offs.last().unwrap() as usize;
    let n = 320;
    // per sequence: non-decreasing times with gaps from seconds to months; t_next = next token's
    let mut timestamps = Vec::with_capacity(total);
    let mut t_next = Vec::with_capacity(total);
    for &l in &lens {
        let mut t = 900_000_000i64;
        let seq: Vec<i64> = (0..l)
            .map(|_| {
                t += (rng.next().powi(4) * 5e6) as i64;
                t
            })
            .collect();
        let t_q = t + 3600;
        for i in 0..l {
            timestamps.push(seq[i]);
            t_next.push(if i + 1 < l { seq[i + 1] } else { t_q });
        }
    }
    AttentionProblem {
        num_targets: targets.then(|| {
            lens.iter()
                .map(|&l| (l as i64 / 5).min(l as i64 - 1))
                .collect()
        }),
        seq_offsets: offs,
        heads: 2,
        dqk: 50,
        dv: 50,
        alpha: 1.0,
        norm_n: n as f64,
        max_attn_len,
        rab: Some(RabHost {
            n,
            num_buckets: 128,
            bucket_divisor: 0.301,
            pos_w: rng.vec(2 * n - 1, 0.5),
            ts_w: rng.vec(129, 0.5),
            timestamps,
            t_next,
        }),
    }
}

#[test]
fn deterministic_rab_gradients_repeat_bitwise_and_match_the_reference() {
    if !cuda_available() {
        println!(
            "SKIPPED deterministic_rab_gradients_repeat_bitwise_and_match_the_reference: no CUDA driver"
        );
        return;
    }
    let dev = CudaDevice::new(0).expect("device");
    let mut rng = Lcg(11);
    for (targets, mal) in [(false, 0), (true, 0), (true, 100)] {
        let p = problem(&mut rng, targets, mal);
        let n = p.total_tokens() * p.heads * p.dqk;
        let (q, k, v, dout) = (
            rng.vec(n, 1.0),
            rng.vec(n, 1.0),
            rng.vec(n, 1.0),
            rng.vec(n, 1.0),
        );
        let run = |det: bool| {
            let t0 = Instant::now();
            let r = attention_host_with(&dev, &p, &q, &k, &v, Some(&dout), det).expect("run");
            (r, t0.elapsed().as_secs_f64() * 1e3)
        };
        let (atomic, ta) = run(false);
        let (det1, td) = run(true);
        let (det2, _) = run(true);
        let case = format!("targets={targets} max_attn_len={mal}");
        assert!(
            det1.dpos_w
                .iter()
                .zip(&det2.dpos_w)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{case}: dpos_w differs between two deterministic runs"
        );
        assert!(
            det1.dts_w
                .iter()
                .zip(&det2.dts_w)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{case}: dts_w differs between two deterministic runs"
        );
        for (name, a, b) in [
            ("dq", &atomic.dq, &det1.dq),
            ("dk", &atomic.dk, &det1.dk),
            ("dv", &atomic.dv, &det1.dv),
        ] {
            assert!(
                a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{case}: {name} changed with the deterministic rab option"
            );
        }
        let r16 = |x: &[f32]| -> Vec<f64> {
            x.iter()
                .map(|&a| half::bf16::from_f32(a).to_f64())
                .collect()
        };
        let want = hstu_attention_bwd_reference(&p, &r16(&q), &r16(&k), &r16(&v), &r16(&dout));
        let errs = [
            rel(&det1.dpos_w, &want.dpos_w),
            rel(&det1.dts_w, &want.dts_w),
            rel(&atomic.dpos_w, &want.dpos_w),
            rel(&atomic.dts_w, &want.dts_w),
        ];
        println!(
            "{case}: rel err vs f64 dpos_w / dts_w: deterministic {:.2e} / {:.2e}, atomic {:.2e} / {:.2e}; host round trip {ta:.1} ms (atomic) vs {td:.1} ms (deterministic)",
            errs[0], errs[1], errs[2], errs[3]
        );
        for e in errs {
            assert!(e < BF16_ATTENTION, "{case}: rel err {e:.3e}");
        }
    }
}
