//! Checks every element-wise kernel and the cuBLAS wrapper against CPU loops on random data,
//! and both attention kernel families (mma.sync; wgmma + TMA for the forward, dQ and dK/dV) against
//! the f64 reference on random jagged problems (targets, max_attn_len, several key tiles).
//!
//!     check_ops        (prints one line per op; exit code 1 when an op exceeds its tolerance)
use anyhow::{Result, bail};
use hstu_cuda::CudaDevice;
use hstu_cuda::attention::{AttnImpl, attn_impl, set_attn_impl};
use hstu_cuda::elementwise::{AdamW, SampledSoftmax};
use hstu_cuda::host::attention_host;
use hstu_cuda::reference::{
    AttentionProblem, hstu_attention_bwd_reference, hstu_attention_fwd_reference,
};

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
    fn below(&mut self, n: usize) -> i64 {
        ((self.f() * 0.5 + 0.5) * n as f32).min(n as f32 - 1.0) as i64
    }
}

fn max_abs(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

/// f32 kernels against f64 loops: 1e-4 absolute covers fast exp/log intrinsics at these scales.
const TOL: f64 = 1e-4;

fn main() -> Result<()> {
    let dev = CudaDevice::new(0)?;
    let mut rng = Rng(3);
    let mut fails = 0;
    let mut report = |name: &str, err: f64, tol: f64| {
        let ok = err <= tol;
        fails += usize::from(!ok);
        println!(
            "{name:24} max abs err {err:.2e} (tol {tol:.0e}) {}",
            if ok { "ok" } else { "FAIL" }
        );
    };
    let (rows, dim) = (300, 50);
    // layer norm
    let x = rng.vec(rows * dim);
    let dy = rng.vec(rows * dim);
    let (xd, dyd) = (dev.upload(&x)?, dev.upload(&dy)?);
    let mut yd = dev.zeros::<f32>(rows * dim)?;
    let mut rs = dev.zeros::<f32>(rows)?;
    let mut dxd = dev.zeros::<f32>(rows * dim)?;
    dev.layer_norm_fwd(&xd, &mut yd, &mut rs, rows, dim, 1e-6)?;
    dev.layer_norm_bwd(&dyd, &yd, &rs, &mut dxd, rows, dim)?;
    let (mut yr, mut dxr) = (vec![0f64; rows * dim], vec![0f64; rows * dim]);
    for r in 0..rows {
        let xs = &x[r * dim..][..dim];
        let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
        let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
        let rstd = 1.0 / (var + 1e-6).sqrt();
        let y: Vec<f64> = xs.iter().map(|&v| (v as f64 - mean) * rstd).collect();
        let g = &dy[r * dim..][..dim];
        let a = g.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
        let b = g.iter().zip(&y).map(|(&v, y)| v as f64 * y).sum::<f64>() / dim as f64;
        for c in 0..dim {
            yr[r * dim + c] = y[c];
            dxr[r * dim + c] = rstd * (g[c] as f64 - a - y[c] * b);
        }
    }
    report("layer_norm_fwd", max_abs(&dev.download(&yd)?, &yr), TOL);
    report("layer_norm_bwd", max_abs(&dev.download(&dxd)?, &dxr), TOL);
    // silu
    let mut sd = dev.zeros::<f32>(rows * dim)?;
    dev.silu_fwd(&xd, &mut sd)?;
    dev.silu_bwd(&xd, &dyd, &mut dxd)?;
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let sr: Vec<f64> = x.iter().map(|&v| v as f64 * sig(v as f64)).collect();
    let sbr: Vec<f64> = x
        .iter()
        .zip(&dy)
        .map(|(&v, &g)| {
            let s = sig(v as f64);
            g as f64 * s * (1.0 + v as f64 * (1.0 - s))
        })
        .collect();
    report("silu_fwd", max_abs(&dev.download(&sd)?, &sr), TOL);
    report("silu_bwd", max_abs(&dev.download(&dxd)?, &sbr), TOL);
    // gate + dropout: rate 0 is exact; rate 0.2 keeps ~80% and is consistent fwd/bwd.
    let mut gd = dev.zeros::<f32>(rows * dim)?;
    dev.gate_dropout_fwd(&xd, &dyd, &mut gd, 0.0, 9)?;
    let gr: Vec<f64> = x
        .iter()
        .zip(&dy)
        .map(|(&a, &b)| a as f64 * b as f64)
        .collect();
    report("gate_fwd (rate 0)", max_abs(&dev.download(&gd)?, &gr), TOL);
    dev.gate_dropout_fwd(&xd, &dyd, &mut gd, 0.2, 9)?;
    let (mut du, mut da) = (dev.zeros::<f32>(rows * dim)?, dev.zeros::<f32>(rows * dim)?);
    let ones = dev.upload(&vec![1f32; rows * dim])?;
    dev.gate_dropout_bwd(&xd, &dyd, &ones, &mut du, &mut da, 0.2, 9)?;
    let (g, duh) = (dev.download(&gd)?, dev.download(&du)?);
    let kept = g.iter().filter(|v| **v != 0.0).count() as f64 / g.len() as f64;
    let consistent = g
        .iter()
        .zip(&duh)
        .zip(&x)
        .map(|((y, d), &u)| (*y as f64 - *d as f64 * u as f64).abs())
        .fold(0.0, f64::max);
    report("gate_dropout keep-0.8", (kept - 0.8).abs(), 0.02);
    report("gate_dropout fwd~bwd", consistent, TOL);
    // embedding gather / scatter-add
    let (items, npos, tokens) = (40, 20, 500);
    let item_emb = rng.vec((items + 1) * dim);
    let pos_emb = rng.vec(npos * dim);
    let ids: Vec<i64> = (0..tokens).map(|_| 1 + rng.below(items)).collect();
    let pos: Vec<i64> = (0..tokens).map(|_| rng.below(npos)).collect();
    let (ie, pe, idd, pd) = (
        dev.upload(&item_emb)?,
        dev.upload(&pos_emb)?,
        dev.upload(&ids)?,
        dev.upload(&pos)?,
    );
    let mut out = dev.zeros::<f32>(tokens * dim)?;
    let scale = (dim as f32).sqrt();
    dev.embedding_fwd(&ie, &pe, &idd, &pd, &mut out, dim, scale)?;
    let dout = rng.vec(tokens * dim);
    let dod = dev.upload(&dout)?;
    let (mut di, mut dp) = (
        dev.zeros::<f32>((items + 1) * dim)?,
        dev.zeros::<f32>(npos * dim)?,
    );
    dev.embedding_bwd(&dod, &idd, &pd, &mut di, &mut dp, dim, scale)?;
    let mut er = vec![0f64; tokens * dim];
    let (mut dir, mut dpr) = (vec![0f64; (items + 1) * dim], vec![0f64; npos * dim]);
    for t in 0..tokens {
        for c in 0..dim {
            let (i, p) = (ids[t] as usize * dim + c, pos[t] as usize * dim + c);
            er[t * dim + c] = item_emb[i] as f64 * scale as f64 + pos_emb[p] as f64;
            dir[i] += dout[t * dim + c] as f64 * scale as f64;
            dpr[p] += dout[t * dim + c] as f64;
        }
    }
    report("embedding_fwd", max_abs(&dev.download(&out)?, &er), TOL);
    report(
        "embedding_bwd item",
        max_abs(&dev.download(&di)?, &dir),
        1e-3,
    );
    report(
        "embedding_bwd pos",
        max_abs(&dev.download(&dp)?, &dpr),
        1e-3,
    );
    // sampled softmax, against f64 loops (loss and both gradients)
    let (prow, k, temp) = (64usize, 128usize, 0.05f64);
    let o = rng.vec(prow * dim);
    let pos_ids: Vec<i64> = (0..prow)
        .map(|r| if r % 9 == 8 { 0 } else { 1 + rng.below(items) })
        .collect();
    let neg: Vec<i64> = (0..prow * k).map(|_| 1 + rng.below(items)).collect();
    let valid = pos_ids.iter().filter(|&&p| p != 0).count();
    let w = 1.0 / valid as f64;
    let (od, ppd, nd) = (dev.upload(&o)?, dev.upload(&pos_ids)?, dev.upload(&neg)?);
    let (mut ld, mut dod2, mut did) = (
        dev.zeros::<f32>(prow)?,
        dev.zeros::<f32>(prow * dim)?,
        dev.zeros::<f32>((items + 1) * dim)?,
    );
    let x = SampledSoftmax {
        o: &od,
        item_emb: &ie,
        pos_ids: &ppd,
        neg_ids: &nd,
        num_neg: k,
        temperature: temp as f32,
        eps: 1e-6,
        weight: w as f32,
    };
    dev.sampled_softmax(&x, &mut ld, &mut dod2, &mut did)?;
    let (mut lr, mut dor, mut dir2) = (
        vec![0f64; prow],
        vec![0f64; prow * dim],
        vec![0f64; (items + 1) * dim],
    );
    let norm = |v: &[f32]| -> (Vec<f64>, f64) {
        let n = v
            .iter()
            .map(|&x| (x as f64).powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-6);
        (v.iter().map(|&x| x as f64 / n).collect(), n)
    };
    for r in 0..prow {
        if pos_ids[r] == 0 {
            continue;
        }
        let (q, qn) = norm(&o[r * dim..][..dim]);
        let cands: Vec<i64> = std::iter::once(pos_ids[r])
            .chain(neg[r * k..][..k].iter().copied())
            .collect();
        let es: Vec<(Vec<f64>, f64)> = cands
            .iter()
            .map(|&c| norm(&item_emb[c as usize * dim..][..dim]))
            .collect();
        let lg: Vec<f64> = cands
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if i > 0 && c == pos_ids[r] {
                    f64::NEG_INFINITY
                } else {
                    q.iter().zip(&es[i].0).map(|(a, b)| a * b).sum::<f64>() / temp
                }
            })
            .collect();
        let mx = lg.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + lg.iter().map(|l| (l - mx).exp()).sum::<f64>().ln();
        lr[r] = w * (lse - lg[0]);
        let mut dq = vec![0f64; dim];
        for (i, &c) in cands.iter().enumerate() {
            let dl = w * ((lg[i] - lse).exp() - if i == 0 { 1.0 } else { 0.0 }) / temp;
            let (eh, en) = &es[i];
            let qe: f64 = q.iter().zip(eh).map(|(a, b)| a * b).sum();
            for cc in 0..dim {
                dq[cc] += dl * eh[cc];
                dir2[c as usize * dim + cc] += dl * (q[cc] - eh[cc] * qe) / en;
            }
        }
        let qd: f64 = q.iter().zip(&dq).map(|(a, b)| a * b).sum();
        for cc in 0..dim {
            dor[r * dim + cc] = (dq[cc] - q[cc] * qd) / qn;
        }
    }
    report(
        "sampled_softmax loss",
        max_abs(&dev.download(&ld)?, &lr),
        TOL,
    );
    report(
        "sampled_softmax d_o",
        max_abs(&dev.download(&dod2)?, &dor),
        TOL,
    );
    report(
        "sampled_softmax d_item",
        max_abs(&dev.download(&did)?, &dir2),
        1e-3,
    );
    // AdamW, 3 steps
    let n = 1000;
    let (p0, g0) = (rng.vec(n), rng.vec(n));
    let (mut pd2, gd2, mut md, mut vd) = (
        dev.upload(&p0)?,
        dev.upload(&g0)?,
        dev.zeros::<f32>(n)?,
        dev.zeros::<f32>(n)?,
    );
    let opt = AdamW {
        weight_decay: 0.01,
        ..Default::default()
    };
    let (mut pr, mut mr, mut vr): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        p0.iter().map(|&v| v as f64).collect(),
        vec![0.0; n],
        vec![0.0; n],
    );
    for step in 1..=3 {
        dev.adamw_step(&opt, step, &mut pd2, &gd2, &mut md, &mut vd)?;
        let (b1, b2) = (opt.beta1 as f64, opt.beta2 as f64);
        for i in 0..n {
            let g = g0[i] as f64;
            mr[i] = b1 * mr[i] + (1.0 - b1) * g;
            vr[i] = b2 * vr[i] + (1.0 - b2) * g * g;
            let upd = (mr[i] / (1.0 - b1.powi(step as i32)))
                / ((vr[i] / (1.0 - b2.powi(step as i32))).sqrt() + opt.eps as f64);
            pr[i] -= opt.lr as f64 * (upd + opt.weight_decay as f64 * pr[i]);
        }
    }
    report("adamw 3 steps", max_abs(&dev.download(&pd2)?, &pr), 1e-5);
    // cuBLAS row-major matmul with both transposes
    let (m, nn, kk) = (70, 90, 50);
    let blas = dev.blas()?;
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (a, b) = (rng.vec(m * kk), rng.vec(kk * nn));
        let mut cd = dev.zeros::<f32>(m * nn)?;
        blas.matmul_f32(
            (m, nn, kk),
            &dev.upload(&a)?,
            ta,
            &dev.upload(&b)?,
            tb,
            &mut cd,
            1.0,
            0.0,
        )?;
        let at = |i: usize, l: usize| if ta { a[l * m + i] } else { a[i * kk + l] } as f64;
        let bt = |l: usize, j: usize| if tb { b[j * kk + l] } else { b[l * nn + j] } as f64;
        let cr: Vec<f64> = (0..m * nn)
            .map(|x| (0..kk).map(|l| at(x / nn, l) * bt(l, x % nn)).sum())
            .collect();
        report(
            &format!("matmul_f32 ta={ta} tb={tb}"),
            max_abs(&dev.download(&cd)?, &cr),
            1e-4,
        );
    }
    // attention forward, both implementations, relative L2 error vs f64 on bf16-rounded inputs
    let rel = |a: &[f32], b: &[f64]| -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for (x, y) in a.iter().zip(b) {
            if !x.is_finite() {
                return f64::INFINITY;
            }
            num += (*x as f64 - y).powi(2);
            den += y * y;
        }
        (num / den.max(1e-300)).sqrt()
    };
    let selected = attn_impl();
    for (d, targets, mal) in [
        (128, true, 0),
        (128, false, 200),
        (64, true, 90),
        (64, false, 0),
    ] {
        let lens = [1000usize, 3, 129, 640, 257];
        let mut offs = vec![0i64];
        for l in lens {
            offs.push(offs.last().unwrap() + l as i64);
        }
        let heads = 2;
        let p = AttentionProblem {
            seq_offsets: offs,
            num_targets: targets.then(|| {
                lens.iter()
                    .map(|&l| (l as i64 / 7).min(l as i64 - 1))
                    .collect()
            }),
            heads,
            dqk: d,
            dv: d,
            alpha: 1.0 / (d as f64).sqrt(),
            norm_n: 1000.0,
            max_attn_len: mal,
            rab: None,
        };
        let n = p.total_tokens() * heads * d;
        let (q, k, v, dout) = (rng.vec(n), rng.vec(n), rng.vec(n), rng.vec(n));
        let r16 = |x: &[f32]| -> Vec<f64> {
            x.iter()
                .map(|&a| half::bf16::from_f32(a).to_f64())
                .collect()
        };
        let (qb, kb, vb) = (r16(&q), r16(&k), r16(&v));
        let want = hstu_attention_fwd_reference(&p, &qb, &kb, &vb);
        let want_g = hstu_attention_bwd_reference(&p, &qb, &kb, &vb, &r16(&dout));
        let mut outs = Vec::new();
        for (label, imp) in [("mma", AttnImpl::Mma), ("wgmma", AttnImpl::Wgmma)] {
            set_attn_impl(imp);
            let got = attention_host(&dev, &p, &q, &k, &v, Some(&dout))?;
            report(
                &format!("attn fwd {label} D{d} t={targets} mal={mal} (rel)"),
                rel(&got.out, &want),
                6e-3,
            );
            report(
                &format!("attn dq  {label} D{d} t={targets} mal={mal} (rel)"),
                rel(&got.dq, &want_g.dq),
                6e-3,
            );
            report(
                &format!("attn dk  {label} D{d} t={targets} mal={mal} (rel)"),
                rel(&got.dk, &want_g.dk),
                6e-3,
            );
            report(
                &format!("attn dv  {label} D{d} t={targets} mal={mal} (rel)"),
                rel(&got.dv, &want_g.dv),
                6e-3,
            );
            outs.push(got);
        }
        let a: Vec<f64> = outs[0].out.iter().map(|&x| x as f64).collect();
        report(
            &format!("attn fwd wgmma~mma D{d} (rel)"),
            rel(&outs[1].out, &a),
            6e-3,
        );
        for (name, x, y) in [
            ("dq", &outs[0].dq, &outs[1].dq),
            ("dk", &outs[0].dk, &outs[1].dk),
            ("dv", &outs[0].dv, &outs[1].dv),
        ] {
            let a: Vec<f64> = x.iter().map(|&x| x as f64).collect();
            report(
                &format!("attn {name}  wgmma~mma D{d} (rel)"),
                rel(y, &a),
                6e-3,
            );
        }
    }
    set_attn_impl(selected);
    if fails > 0 {
        bail!("{fails} op checks failed");
    }
    Ok(())
}
