//! Correctness and speed of the fused HSTU attention kernels (hstu-spec section 6).
//!
//!     bench_attention [--golden-dir tests/golden] [--json FILE] [--quick] [--reps N]
//!                     [--ns 1024,8192] [--ds 128,64] [--no-rab] [--no-side-by-side]
//!                     [--no-sweep] [--variant-sweep] [--wgmma-sweep]
//!
//! Both kernel families run where both apply (mma.sync, and wgmma + TMA for the forward, the
//! dQ and the dK/dV pass, see `hstu_cuda::attention::AttnImpl`): the checks below run once per family and
//! every timed config prints one line per distinct selection, the default (Auto) first.
//!
//! 1. goldens (f64, production-style) and a random jagged problem with rab / targets /
//!    max_attn_len against the CPU reference (`hstu_cuda::reference`);
//! 2. timing with CUDA events (median and P10 of `--reps` runs after warm-up) at H = 4,
//!    D = 64/128/256, N = 1024..8192, full and jagged (lengths uniform in [1, N]), with and
//!    without rab, B = 65536 / N sequences; every timed config is first checked on sampled rows.
use anyhow::{Context, Result, bail};
use half::bf16;
use hstu_cuda::CudaDevice;
use hstu_cuda::attention::{
    AttentionGradsDevice, AttentionInputs, AttentionOptions, AttentionShape, AttnImpl, RabGrads,
    RabTensors, attn_impl, dkdv_uses_wgmma, dq_uses_wgmma, fwd_uses_wgmma,
    hstu_attention_fwd_flops, set_attn_impl,
};
use hstu_cuda::host::attention_host;
use hstu_cuda::reference::{
    AttentionProblem, RabHost, hstu_attention_bwd_reference, hstu_attention_fwd_reference,
    reference_rows,
};
use serde_json::json;
use std::path::Path;

struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let x = *x as f64;
        if !x.is_finite() {
            return f64::INFINITY;
        }
        num += (x - y) * (x - y);
        den += y * y;
    }
    (num / den.max(1e-300)).sqrt()
}

fn load_golden(dir: &Path) -> Result<(AttentionProblem, Vec<Vec<f64>>)> {
    let bytes = std::fs::read(dir.join("attention.safetensors"))
        .with_context(|| dir.display().to_string())?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let f64s = |n: &str| -> Result<Vec<f64>> {
        let t = st.tensor(n).with_context(|| n.to_string())?;
        Ok(t.data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    };
    let i64s = |n: &str| -> Result<Vec<i64>> {
        let t = st.tensor(n).with_context(|| n.to_string())?;
        Ok(t.data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect())
    };
    let q = st.tensor("q")?;
    let v = st.tensor("v")?;
    let p = AttentionProblem {
        seq_offsets: i64s("seq_offsets")?,
        num_targets: if st.names().contains(&"num_targets") {
            Some(i64s("num_targets")?)
        } else {
            None
        },
        heads: q.shape()[1],
        dqk: q.shape()[2],
        dv: v.shape()[2],
        alpha: f64s("alpha")?[0],
        norm_n: i64s("max_seq_len")?[0] as f64,
        max_attn_len: i64s("max_attn_len")?[0] as usize,
        rab: None,
    };
    let ts = ["q", "k", "v", "dout", "out", "dq", "dk", "dv"]
        .iter()
        .map(|n| f64s(n))
        .collect::<Result<_>>()?;
    Ok((p, ts))
}

fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}
fn bf16_round(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| bf16::from_f32(v).to_f64()).collect()
}

/// Goldens: kernel error against the f64 outputs, and the error of exact math on bf16-rounded
/// inputs (the floor any bf16 implementation shares).
fn check_goldens(
    dev: &CudaDevice,
    dir: &Path,
    report: &mut Vec<serde_json::Value>,
) -> Result<bool> {
    let mut ok = true;
    for case in ["attention_causal", "attention_targets"] {
        let (p, t) = load_golden(&dir.join(case))?;
        let r = attention_host(
            dev,
            &p,
            &to_f32(&t[0]),
            &to_f32(&t[1]),
            &to_f32(&t[2]),
            Some(&to_f32(&t[3])),
        )?;
        let (qb, kb, vb, db) = (
            bf16_round(&to_f32(&t[0])),
            bf16_round(&to_f32(&t[1])),
            bf16_round(&to_f32(&t[2])),
            bf16_round(&to_f32(&t[3])),
        );
        let fo = hstu_attention_fwd_reference(&p, &qb, &kb, &vb);
        let fg = hstu_attention_bwd_reference(&p, &qb, &kb, &vb, &db);
        let floor = |a: &[f64], b: &[f64]| rel_err(&to_f32(a), b);
        let errs = [
            rel_err(&r.out, &t[4]),
            rel_err(&r.dq, &t[5]),
            rel_err(&r.dk, &t[6]),
            rel_err(&r.dv, &t[7]),
        ];
        let floors = [
            floor(&fo, &t[4]),
            floor(&fg.dq, &t[5]),
            floor(&fg.dk, &t[6]),
            floor(&fg.dv, &t[7]),
        ];
        println!(
            "golden {case:18} rel err out {:.2e} dq {:.2e} dk {:.2e} dv {:.2e}   (bf16-input floor {:.1e} {:.1e} {:.1e} {:.1e})",
            errs[0], errs[1], errs[2], errs[3], floors[0], floors[1], floors[2], floors[3]
        );
        ok &= errs.iter().all(|e| *e < 2e-2);
        report.push(json!({"case": case, "rel_err": {"out": errs[0], "dq": errs[1], "dk": errs[2], "dv": errs[3]},
            "bf16_input_floor": {"out": floors[0], "dq": floors[1], "dk": floors[2], "dv": floors[3]}}));
    }
    Ok(ok)
}

fn random_rab(rng: &mut Rng, n: usize, seq_offsets: &[i64], targets: Option<&[i64]>) -> RabHost {
    let total = *seq_offsets.last().unwrap() as usize;
    let mut ts = vec![0i64; total];
    let mut t_next = vec![0i64; total];
    for (b, w) in seq_offsets.windows(2).enumerate() {
        let (s, e) = (w[0] as usize, w[1] as usize);
        let u = e - s - targets.map_or(0, |t| t[b] as usize);
        let mut t = 978_300_000i64;
        for slot in &mut ts[s..s + u] {
            t += (rng.next_u64() % 100_000) as i64;
            *slot = t;
        }
        let tq = t + (rng.next_u64() % 10_000) as i64;
        for x in s..e {
            if x >= s + u {
                ts[x] = tq;
            }
            t_next[x] = if x + 1 < s + u { ts[x + 1] } else { tq };
        }
    }
    RabHost {
        n,
        num_buckets: 128,
        bucket_divisor: 0.301,
        pos_w: (0..2 * n - 1).map(|_| 0.5 * rng.sym()).collect(),
        ts_w: (0..129).map(|_| 0.5 * rng.sym()).collect(),
        timestamps: ts,
        t_next,
    }
}

/// Random jagged problems with every option, full CPU reference (rab gradients too).
fn check_random(dev: &CudaDevice, report: &mut Vec<serde_json::Value>) -> Result<bool> {
    let mut ok = true;
    let mut rng = Rng(42);
    // The last four have no rab, so the wgmma forward runs them (D = 128 and 64, padded 32/24);
    // `long` sequences span several key tiles, so every pipeline stage is reused.
    for (dqk, dv, targets, mal, rab, long) in [
        (64, 64, false, 0, true, false),
        (128, 128, true, 0, true, false),
        (256, 256, false, 0, false, false),
        (32, 24, true, 37, true, false),
        (128, 128, false, 50, false, false),
        (256, 256, true, 0, true, false),
        (128, 128, true, 0, false, true),
        (128, 128, false, 300, false, true),
        (64, 64, true, 0, false, true),
        (32, 24, false, 0, false, true),
    ] {
        let lens: &[usize] = if long {
            &[700, 5, 333, 517, 129]
        } else {
            &[1, 77, 200, 130, 64, 211]
        };
        let max_len = *lens.iter().max().unwrap();
        let mut offs = vec![0i64];
        for &l in lens {
            offs.push(offs.last().unwrap() + l as i64);
        }
        let nt: Option<Vec<i64>> = targets.then(|| {
            lens.iter()
                .map(|&l| (l as i64 / 10).min(l as i64 - 1))
                .collect()
        });
        let heads = 2;
        let p = AttentionProblem {
            seq_offsets: offs.clone(),
            num_targets: nt.clone(),
            heads,
            dqk,
            dv,
            alpha: 1.0 / (dqk as f64).sqrt(),
            norm_n: max_len as f64,
            max_attn_len: mal,
            rab: rab.then(|| random_rab(&mut rng, max_len, &offs, nt.as_deref())),
        };
        let t = p.total_tokens();
        let mk = |rng: &mut Rng, d: usize| -> Vec<f32> {
            (0..t * heads * d).map(|_| rng.sym()).collect()
        };
        let (q, k, v, dout) = (
            mk(&mut rng, dqk),
            mk(&mut rng, dqk),
            mk(&mut rng, dv),
            mk(&mut rng, dv),
        );
        let r = attention_host(dev, &p, &q, &k, &v, Some(&dout))?;
        let (qb, kb, vb, db) = (
            bf16_round(&q),
            bf16_round(&k),
            bf16_round(&v),
            bf16_round(&dout),
        );
        let fo = hstu_attention_fwd_reference(&p, &qb, &kb, &vb);
        let g = hstu_attention_bwd_reference(&p, &qb, &kb, &vb, &db);
        let mut errs = vec![
            rel_err(&r.out, &fo),
            rel_err(&r.dq, &g.dq),
            rel_err(&r.dk, &g.dk),
            rel_err(&r.dv, &g.dv),
        ];
        if rab {
            errs.push(rel_err(&r.dpos_w, &g.dpos_w));
            errs.push(rel_err(&r.dts_w, &g.dts_w));
        }
        let name = format!(
            "random dqk{dqk} dv{dv} targets={targets} mal={mal} rab={rab}{}",
            if long { " long" } else { "" }
        );
        println!(
            "{name:48} rel err out/dq/dk/dv[/dpos/dts] {}",
            errs.iter()
                .map(|e| format!("{e:.2e}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        ok &= errs.iter().all(|e| *e < 2e-2);
        report.push(json!({"case": name, "rel_err": errs}));
    }
    Ok(ok)
}

fn median_p10(mut v: Vec<f32>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2] as f64, v[v.len() / 10] as f64)
}

struct BenchCfg {
    n: usize,
    d: usize,
    jagged: bool,
    rab: bool,
    /// Also time (and check) the other forward implementation where both can run.
    side_by_side: bool,
}

fn bench_one(
    dev: &CudaDevice,
    c: &BenchCfg,
    reps: usize,
    rng: &mut Rng,
) -> Result<serde_json::Value> {
    let heads = 4;
    let batch = 65536 / c.n;
    let lens: Vec<usize> = (0..batch)
        .map(|_| if c.jagged { 1 + rng.below(c.n) } else { c.n })
        .collect();
    let mut offs = vec![0i64];
    for &l in &lens {
        offs.push(offs.last().unwrap() + l as i64);
    }
    let t = *offs.last().unwrap() as usize;
    let d = c.d;
    let sz = t * heads * d;
    let host: Vec<Vec<bf16>> = (0..4)
        .map(|_| (0..sz).map(|_| bf16::from_f32(rng.sym())).collect())
        .collect();
    let rab_h = c.rab.then(|| random_rab(rng, c.n, &offs, None));
    let up: Vec<_> = host
        .iter()
        .map(|h| dev.upload(h))
        .collect::<std::result::Result<_, _>>()?;
    let offs_d = dev.upload(&offs)?;
    let rab_d = match &rab_h {
        Some(r) => Some((
            dev.upload(&r.pos_w)?,
            dev.upload(&r.ts_w)?,
            dev.upload(&r.timestamps)?,
            dev.upload(&r.t_next)?,
        )),
        None => None,
    };
    let max_len = *lens.iter().max().unwrap();
    let alpha = 1.0 / (d as f32).sqrt();
    let x = AttentionInputs {
        shape: AttentionShape {
            batch,
            heads,
            head_dim: d,
            total_tokens: t,
            max_len,
        },
        options: AttentionOptions {
            alpha,
            norm_n: c.n as f32,
            max_attn_len: 0,
        },
        seq_offsets: &offs_d,
        num_targets: None,
        rab: rab_h
            .as_ref()
            .zip(rab_d.as_ref())
            .map(|(r, dd)| RabTensors {
                n: r.n,
                num_buckets: r.num_buckets,
                bucket_divisor: 0.301,
                pos_w: &dd.0,
                ts_w: &dd.1,
                timestamps: &dd.2,
                t_next: &dd.3,
            }),
        q: &up[0],
        k: &up[1],
        v: &up[2],
    };
    let nan = vec![bf16::NAN; sz];
    let mut out = dev.upload(&nan)?;
    let mut dq = dev.upload(&nan)?;
    let mut dk = dev.upload(&nan)?;
    let mut dv = dev.upload(&nan)?;
    let mut dpos = dev.zeros::<f32>(2 * c.n - 1)?;
    let mut dts = dev.zeros::<f32>(129)?;
    let run_fwd = |out: &mut _| dev.hstu_attention_fwd(&x, out);
    macro_rules! run_bwd {
        () => {
            dev.hstu_attention_bwd(
                &x,
                &up[3],
                AttentionGradsDevice {
                    dq: &mut dq,
                    dk: &mut dk,
                    dv: &mut dv,
                },
                if c.rab {
                    Some(RabGrads {
                        dpos_w: &mut dpos,
                        dts_w: &mut dts,
                        deterministic: false,
                    })
                } else {
                    None
                },
            )
        };
    }
    // Sampled rows and their f64 references (shared by every forward implementation).
    let mut samples = Vec::new();
    for _ in 0..6 {
        let b = rng.below(batch);
        let h = rng.below(heads);
        let (s, l) = (offs[b] as usize, lens[b]);
        let r = rng.below(l);
        let slice = |v: &[bf16]| -> Vec<f64> {
            v[s * heads * d..(s + l) * heads * d]
                .iter()
                .map(|x| x.to_f64())
                .collect()
        };
        let sub = AttentionProblem {
            seq_offsets: vec![0, l as i64],
            num_targets: None,
            heads,
            dqk: d,
            dv: d,
            alpha: alpha as f64,
            norm_n: c.n as f64,
            max_attn_len: 0,
            rab: rab_h.as_ref().map(|rh| RabHost {
                timestamps: rh.timestamps[s..s + l].to_vec(),
                t_next: rh.t_next[s..s + l].to_vec(),
                ..rh.clone()
            }),
        };
        let refs = reference_rows(
            &sub,
            &slice(&host[0]),
            &slice(&host[1]),
            &slice(&host[2]),
            &slice(&host[3]),
            (0, h, r),
        );
        samples.push((((s + r) * heads + h) * d, refs));
    }
    let row_err = |dev_v: &[bf16], m: usize| -> f64 {
        let mut e = 0f64;
        for (at, refs) in &samples {
            let rf = &refs[m];
            let got: Vec<f32> = dev_v[*at..*at + d].iter().map(|x| x.to_f32()).collect();
            let norm: f64 = rf.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 1e-6 {
                e = e.max(rel_err(&got, rf));
            }
        }
        e
    };
    let ev = |_: ()| {
        dev.context()
            .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
    };
    let (e0, e1) = (ev(()).context("event")?, ev(()).context("event")?);
    let flops = hstu_attention_fwd_flops(&lens, heads, d, d);
    let tf = |ms: f64, mult: f64| mult * flops / (ms * 1e-3) / 1e12;
    let name = format!(
        "N={} D={} {} {}",
        c.n,
        d,
        if c.jagged { "jagged" } else { "full" },
        if c.rab { "rab" } else { "no-rab" }
    );
    // Every distinct kernel selection side by side (Auto first: the default), each checked on
    // the sampled rows with freshly poisoned outputs.
    let selected = attn_impl();
    let mut seen = Vec::new();
    let mut per_impl = Vec::new();
    let cands: &[AttnImpl] = if c.side_by_side {
        &[AttnImpl::Auto, AttnImpl::Mma, AttnImpl::Wgmma]
    } else {
        &[AttnImpl::Auto]
    };
    for &imp in cands {
        set_attn_impl(imp);
        let key = (fwd_uses_wgmma(&x), dq_uses_wgmma(&x), dkdv_uses_wgmma(&x));
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let fam = |w: bool| if w { "wgmma" } else { "mma" };
        let label = format!("fwd {} dq {} dkdv {}", fam(key.0), fam(key.1), fam(key.2));
        for buf in [&mut out, &mut dq, &mut dk, &mut dv] {
            dev.stream().memcpy_htod(&nan[..], buf)?;
        }
        run_fwd(&mut out)?;
        run_bwd!()?;
        let (o_h, dq_h, dk_h, dv_h) = (
            dev.download(&out)?,
            dev.download(&dq)?,
            dev.download(&dk)?,
            dev.download(&dv)?,
        );
        let all_finite = [&o_h, &dq_h, &dk_h, &dv_h]
            .iter()
            .all(|v| v.iter().all(|x| x.is_finite()));
        let max_err = [
            row_err(&o_h, 0),
            row_err(&dq_h, 1),
            row_err(&dk_h, 2),
            row_err(&dv_h, 3),
        ];
        let mut time =
            |which: u8, out: &mut cudarc::driver::CudaSlice<bf16>| -> Result<(f64, f64)> {
                let mut v = Vec::with_capacity(reps);
                for it in 0..reps + 3 {
                    e0.record(dev.stream())?;
                    if which & 1 != 0 {
                        run_fwd(out)?;
                    }
                    if which & 2 != 0 {
                        run_bwd!()?;
                    }
                    e1.record(dev.stream())?;
                    let ms = e0.elapsed_ms(&e1)?;
                    if it >= 3 {
                        v.push(ms);
                    }
                }
                Ok(median_p10(v))
            };
        let fwd = time(1, &mut out)?;
        let bwd = time(2, &mut out)?;
        let both = time(3, &mut out)?;
        println!(
            "{name:30} [{label:30}] fwd {:7.3} ms {:6.1} TF/s | bwd {:7.3} ms {:6.1} | fwd+bwd {:7.3} ms {:6.1} | err {:.1e} {:.1e} {:.1e} {:.1e}{}",
            fwd.0,
            tf(fwd.0, 1.0),
            bwd.0,
            tf(bwd.0, 2.5),
            both.0,
            tf(both.0, 3.5),
            max_err[0],
            max_err[1],
            max_err[2],
            max_err[3],
            if all_finite { "" } else { " NON-FINITE" }
        );
        per_impl.push(json!({"impl": label, "fwd_wgmma": key.0, "dq_wgmma": key.1, "dkdv_wgmma": key.2,
            "fwd_ms": fwd.0, "fwd_ms_p10": fwd.1, "bwd_ms": bwd.0, "bwd_ms_p10": bwd.1, "fwdbwd_ms": both.0, "fwdbwd_ms_p10": both.1,
            "fwd_tflops": tf(fwd.0, 1.0), "bwd_tflops": tf(bwd.0, 2.5), "fwdbwd_tflops": tf(both.0, 3.5),
            "tokens_per_s_fwdbwd": t as f64 / (both.0 * 1e-3),
            "sampled_rel_err": {"out": max_err[0], "dq": max_err[1], "dk": max_err[2], "dv": max_err[3]}, "all_finite": all_finite}));
    }
    set_attn_impl(selected);
    let default_label = per_impl[0]["impl"].as_str().unwrap_or("").to_string();
    let mut r = json!({"name": name, "n": c.n, "d": d, "heads": heads, "batch": batch, "tokens": t, "jagged": c.jagged, "rab": c.rab,
        "dtype": "bf16", "backend": format!("hstu-cuda sm_90a ({default_label})")});
    for (k, v) in per_impl[0].as_object().unwrap() {
        r[k] = v.clone();
    }
    r["impls"] = json!(per_impl);
    Ok(r)
}

/// Reference points of shared/docs/performance.md (same H200, D = 128, no rab, TFLOP/s
/// fwd / fwd+bwd): reference Triton HSTU (the floor to beat), cuDNN softmax attention, goal.
const ANCHORS: &[(usize, bool, f64, f64, f64, f64)] = &[
    // (N, jagged, triton fwd, triton fwd+bwd, cudnn fwd, cudnn fwd+bwd)
    (1024, false, 197.0, 179.0, 432.0, 285.0),
    (2048, false, 343.0, 242.0, 490.0, 374.0),
    (4096, false, 366.0, 197.0, 534.0, 439.0),
    (8192, false, 383.0, 208.0, 560.0, 488.0),
    (8192, true, 302.0, 186.0, f64::NAN, f64::NAN),
];
const GOAL: (f64, f64) = (600.0, 520.0);

/// Default-variant D = 128 no-rab results against the anchors.
fn print_anchors(results: &[serde_json::Value]) {
    println!(
        "\nvs anchors (D=128, no rab; TFLOP/s fwd / fwd+bwd; goal {} / {}):",
        GOAL.0, GOAL.1
    );
    for &(n, jagged, tf, tb, cf, cb) in ANCHORS {
        let hit = results.iter().find(|r| {
            r["variant"].is_null()
                && r["wgmma_variant"].is_null()
                && r["n"] == n
                && r["d"] == 128
                && r["jagged"] == jagged
                && r["rab"] == false
        });
        let Some(r) = hit else { continue };
        let (f, b) = (
            r["fwd_tflops"].as_f64().unwrap_or(0.0),
            r["fwdbwd_tflops"].as_f64().unwrap_or(0.0),
        );
        println!(
            "  N={n:5} {:6}  hstu-cuda {f:6.1} / {b:6.1} | Triton {tf:.0} / {tb:.0} ({:.2}x / {:.2}x) | cuDNN {cf:.0} / {cb:.0} ({:.2}x / {:.2}x) | goal {:.2}x / {:.2}x",
            if jagged { "jagged" } else { "full" },
            f / tf,
            b / tb,
            f / cf,
            b / cb,
            f / GOAL.0,
            b / GOAL.1
        );
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let golden = arg("--golden-dir").unwrap_or_else(|| "tests/golden".into());
    let reps: usize = arg("--reps").map(|s| s.parse()).transpose()?.unwrap_or(20);
    let quick = args.iter().any(|a| a == "--quick");
    let dev = CudaDevice::new(0)?;
    println!(
        "device: {}  kernels embedded: {}",
        dev.describe()?,
        hstu_cuda::kernels::kernels_embedded()
    );
    let mut checks = Vec::new();
    let (mut ok_g, mut ok_r) = (true, true);
    let selected = attn_impl();
    for (label, imp) in [("mma", AttnImpl::Mma), ("wgmma", AttnImpl::Wgmma)] {
        // wgmma: the shapes it does not cover (rab, D = 256) run the mma.sync kernels
        set_attn_impl(imp);
        println!("-- checks, kernel family {label} (forward, dQ, dK/dV)");
        let mut c = Vec::new();
        ok_g &= check_goldens(&dev, Path::new(&golden), &mut c)
            .map_err(|e| println!("golden checks FAILED: {e:#}"))
            .unwrap_or(false);
        ok_r &= check_random(&dev, &mut c)
            .map_err(|e| println!("random checks FAILED: {e:#}"))
            .unwrap_or(false);
        checks.push(json!({"impl": label, "checks": c}));
    }
    set_attn_impl(selected);
    let mut results = Vec::new();
    let mut rng = Rng(7);
    if args.iter().any(|a| a == "--variant-sweep") {
        // Tile variants side by side on a subset (checked like every timed config).
        for v in 0..hstu_cuda::attention::TILE_VARIANTS {
            hstu_cuda::attention::set_tile_variants(v, v);
            println!("-- tile variant {v}");
            let ok = check_random(&dev, &mut Vec::new()).unwrap_or(false);
            println!("variant {v} random checks pass: {ok}");
            for (d, n, jagged, rab) in [
                (128, 8192, false, false),
                (128, 8192, true, false),
                (128, 2048, false, false),
                (64, 8192, false, false),
                (256, 8192, false, false),
                (128, 8192, false, true),
            ] {
                let cfg = BenchCfg {
                    n,
                    d,
                    jagged,
                    rab,
                    side_by_side: false,
                };
                match bench_one(&dev, &cfg, reps, &mut rng) {
                    Ok(mut r) => {
                        r["variant"] = json!(v);
                        results.push(r)
                    }
                    Err(e) => println!("variant {v} N={n} D={d}: FAILED: {e:#}"),
                }
            }
        }
        hstu_cuda::attention::set_tile_variants(
            hstu_cuda::attention::DEFAULT_VARIANT,
            hstu_cuda::attention::DEFAULT_VARIANT,
        );
    }
    if args.iter().any(|a| a == "--wgmma-sweep") {
        // wgmma forward variants side by side (each line also times the mma.sync forward)
        for v in 0..hstu_cuda::attention::WGMMA_FWD_VARIANTS {
            hstu_cuda::attention::set_wgmma_fwd_variant(v);
            println!("-- wgmma forward variant {v}");
            for (d, n, jagged) in [
                (128, 8192, false),
                (128, 8192, true),
                (128, 2048, false),
                (64, 8192, false),
            ] {
                let cfg = BenchCfg {
                    n,
                    d,
                    jagged,
                    rab: false,
                    side_by_side: true,
                };
                match bench_one(&dev, &cfg, reps, &mut rng) {
                    Ok(mut r) => {
                        r["wgmma_variant"] = json!(v);
                        results.push(r)
                    }
                    Err(e) => println!("wgmma variant {v} N={n} D={d}: FAILED: {e:#}"),
                }
            }
        }
        hstu_cuda::attention::set_wgmma_fwd_variant(hstu_cuda::attention::DEFAULT_VARIANT);
    }
    let list = |k: &str, dflt: &[usize]| -> Result<Vec<usize>> {
        match arg(k) {
            Some(s) => s
                .split(',')
                .map(|x| x.trim().parse().with_context(|| format!("{k} {s}")))
                .collect(),
            None => Ok(dflt.to_vec()),
        }
    };
    let ns = list(
        "--ns",
        if quick {
            &[1024, 8192]
        } else {
            &[1024, 2048, 4096, 8192]
        },
    )?;
    let ds = if args.iter().any(|a| a == "--no-sweep") {
        Vec::new()
    } else {
        list("--ds", &[128, 64, 256])?
    };
    let no_rab = args.iter().any(|a| a == "--no-rab");
    let side_by_side = !args.iter().any(|a| a == "--no-side-by-side");
    for &d in &ds {
        for &n in &ns {
            for (jagged, rab) in [(false, false), (true, false), (false, true), (true, true)] {
                if (d != 128 || no_rab) && rab {
                    continue;
                }
                let cfg = BenchCfg {
                    n,
                    d,
                    jagged,
                    rab,
                    side_by_side,
                };
                match bench_one(&dev, &cfg, reps, &mut rng) {
                    Ok(r) => results.push(r),
                    Err(e) => println!("N={n} D={d} jagged={jagged} rab={rab}: FAILED: {e:#}"),
                }
            }
        }
    }
    print_anchors(&results);
    let report = json!({"device": dev.describe()?, "checks": checks, "results": results});
    if let Some(path) = arg("--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    }
    if !(ok_g && ok_r) {
        bail!("correctness checks failed");
    }
    Ok(())
}
