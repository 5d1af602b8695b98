//! GPU benchmark of the wgpu runtime: fused attention TFLOP/s (f32, f16, coop-matrix), retrieval
//! users/s (ML-1M / ML-20M HSTU-large shapes) and M-FALCON candidates/s vs one pass per candidate.
//!
//! `cargo run --release -p hstu-runtime --bin bench_gpu -- [--small] [--retrieval-only | --attention-only] [--lengths 8192] [--reps 10] [--out bench_gpu.json]`
//!
//! GPU time from timestamp queries after warm-up (median and P10); inputs random (seeded);
//! attention outputs poisoned with NaN before the timed runs; every result checked against the
//! CPU reference (sampled rows for the large attention shapes) before it is reported.

use anyhow::{Context, Result, bail};
use hstu_runtime::checkpoint::Weights;
use hstu_runtime::config::ModelConfig;
use hstu_runtime::gpu::model::time_bucket_thresholds;
use hstu_runtime::gpu::ops::{self, AttentionBuffers, AttentionKernel, AttentionParams};
use hstu_runtime::gpu::record::{Recorder, to_f32};
use hstu_runtime::gpu::{GpuContext, GpuModel, PassTime, UploadOptions};
use hstu_runtime::real::silu;
use hstu_runtime::reference::{self, attention::valid, ops::time_bucket};
use hstu_runtime::rng::Rng;
use hstu_runtime::sequences::UserSequence;
use hstu_shaders::Variant;
use serde_json::{Value, json};
use std::time::Instant;

struct Args {
    small: bool,
    retrieval_only: bool,
    attention_only: bool,
    /// Attention lengths to run (all of the size class when None).
    lengths: Option<Vec<usize>>,
    /// Attention forms to run, `variant/kernel` (default: f32, f16, coop_matrix, each `auto`).
    kernels: Vec<(Variant, AttentionKernel)>,
    reps: usize,
    out: String,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        small: false,
        retrieval_only: false,
        attention_only: false,
        lengths: None,
        kernels: vec![
            (Variant::F32, AttentionKernel::Auto),
            (Variant::F16, AttentionKernel::Auto),
            (Variant::CoopMatrix, AttentionKernel::Auto),
        ],
        reps: 10,
        out: "bench_gpu.json".into(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "--small" => a.small = true,
            "--retrieval-only" => a.retrieval_only = true,
            "--attention-only" => a.attention_only = true,
            "--lengths" => {
                i += 1;
                let list = argv.get(i).context("--lengths N,N,..")?;
                a.lengths = Some(
                    list.split(',')
                        .map(|x| x.trim().parse::<usize>())
                        .collect::<std::result::Result<_, _>>()?,
                );
            }
            "--kernels" => {
                i += 1;
                let list = argv.get(i).context("--kernels VARIANT/KERNEL,..")?;
                a.kernels = list.split(',').map(parse_form).collect::<Result<_>>()?;
            }
            "--reps" => {
                i += 1;
                a.reps = argv.get(i).context("--reps N")?.parse()?;
            }
            "--out" => {
                i += 1;
                a.out = argv.get(i).context("--out FILE")?.clone();
            }
            "-h" | "--help" => {
                println!(
                    "bench_gpu [--small] [--retrieval-only | --attention-only] [--lengths N,N] [--kernels VARIANT/KERNEL,..] [--reps N] [--out FILE.json]\n  VARIANT: f32, f16, coop_matrix; KERNEL: auto, tiled_qcQ_vcV, big_tyT_bkK_qcQ_vcV[_pf], coop, coop_long_lkL_siluS[_rsR][_q|_qs][_vp]\n  HSTU_SHADER_CHECKS=on|bounds|off: the shader runtime checks (default bounds)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
        i += 1;
    }
    Ok(a)
}

/// `f32/big_ty16_bk64_qc16_vc16` -> (variant, kernel).
fn parse_form(text: &str) -> Result<(Variant, AttentionKernel)> {
    let (v, k) = text.trim().split_once('/').unwrap_or((text.trim(), "auto"));
    let variant = [Variant::F32, Variant::F16, Variant::CoopMatrix]
        .into_iter()
        .find(|x| x.name() == v)
        .with_context(|| format!("attention variant `{v}`"))?;
    Ok((variant, k.parse()?))
}

/// (median, p10) of nanosecond samples, in milliseconds.
/// Warm-up: `call` at least 3 times and for at least 0.5 s of back-to-back work, so that the GPU
/// clocks are up (after idle time, such as a pipeline compile, the H200 runs the first 100-300 ms
/// of work at a third of its steady speed).
fn warm_up(mut call: impl FnMut() -> hstu_runtime::Result<()>) -> Result<()> {
    let t0 = Instant::now();
    let mut calls = 0;
    while calls < 3 || t0.elapsed().as_secs_f64() < 0.5 {
        call()?;
        calls += 1;
    }
    Ok(())
}

fn stats_ms(ns: &mut [f64]) -> (f64, f64) {
    ns.sort_by(f64::total_cmp);
    let pick = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] * 1e-6;
    (pick(0.5), pick(0.1))
}

/// Per-op GPU time over repetitions: for every label (first-seen order), the dispatches per
/// repetition and the median over repetitions of that op's summed GPU time.
fn kernel_table(reps: &[Vec<PassTime>]) -> Vec<Value> {
    let mut labels: Vec<String> = Vec::new();
    for rep in reps {
        for p in rep {
            if !labels.contains(&p.label) {
                labels.push(p.label.clone());
            }
        }
    }
    let mut total_ns: Vec<f64> = reps
        .iter()
        .map(|rep| rep.iter().map(|p| p.ns).sum())
        .collect();
    let (total_ms, _) = stats_ms(&mut total_ns);
    labels
        .iter()
        .map(|label| {
            let mut ns: Vec<f64> = reps
                .iter()
                .map(|rep| rep.iter().filter(|p| &p.label == label).map(|p| p.ns).sum())
                .collect();
            let dispatches = reps
                .first()
                .map_or(0, |rep| rep.iter().filter(|p| &p.label == label).count());
            let (med, p10) = stats_ms(&mut ns);
            json!({
                "op": label, "dispatches": dispatches, "median_ms": med, "p10_ms": p10,
                "share": if total_ms > 0.0 { med / total_ms } else { 0.0 },
            })
        })
        .collect()
}

fn print_kernels(title: &str, kernels: &[Value]) {
    println!("  per-op GPU time, {title}:");
    println!(
        "    {:<28} {:>10} {:>11} {:>10} {:>7}",
        "op", "dispatches", "median ms", "P10 ms", "share"
    );
    for k in kernels {
        println!(
            "    {:<28} {:>10} {:>11.3} {:>10.3} {:>6.1}%",
            k["op"].as_str().unwrap_or("?"),
            k["dispatches"].as_u64().unwrap_or(0),
            k["median_ms"].as_f64().unwrap_or(0.0),
            k["p10_ms"].as_f64().unwrap_or(0.0),
            100.0 * k["share"].as_f64().unwrap_or(0.0)
        );
    }
}

fn random(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

const BUCKETS: usize = 128;
const DIVISOR: f64 = 0.301;

/// One attention shape: B sequences of length N, H heads, head dim D.
struct AttnCase {
    n: usize,
    b: usize,
    h: usize,
    d: usize,
    rab: bool,
}

/// f64 `out_i` of (b, i, head) straight from the formula of spec section 6 (causal, optional rab).
#[allow(clippy::too_many_arguments)]
fn reference_row(
    c: &AttnCase,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    rab: &(Vec<f32>, Vec<i32>),
    b: usize,
    i: usize,
    head: usize,
) -> Vec<f64> {
    let (h, d, n) = (c.h, c.d, c.n);
    let alpha = 1.0 / (d as f64).sqrt();
    let at = |x: &[f32], t: usize, cc: usize| x[(t * h + head) * d + cc] as f64;
    let mut out = vec![0.0; d];
    for j in 0..=i {
        if !valid(i, j, n, 0) {
            continue;
        }
        let (ti, tj) = (b * n + i, b * n + j);
        let mut s = alpha * (0..d).map(|cc| at(q, ti, cc) * at(k, tj, cc)).sum::<f64>();
        if c.rab {
            let (w, times) = rab;
            let dt = times[ti] as i64 - times[c.b * n + tj] as i64;
            s += w[n - 1 + j - i] as f64 + w[2 * n - 1 + time_bucket(dt, DIVISOR, BUCKETS)] as f64;
        }
        let a = silu(s) / n as f64;
        for (cc, o) in out.iter_mut().enumerate() {
            *o += a * at(v, tj, cc);
        }
    }
    out
}

fn bench_attention(
    ctx: &GpuContext,
    c: &AttnCase,
    variant: Variant,
    kernel: AttentionKernel,
    reps: usize,
) -> Result<Value> {
    let (n, b, h, d) = (c.n, c.b, c.h, c.d);
    let t = n * b;
    let mut rng = Rng::new(17);
    let q = random(&mut rng, t * h * d, 0.3);
    let k = random(&mut rng, t * h * d, 0.3);
    let v = random(&mut rng, t * h * d, 1.0);
    let f16 = variant.requirements().shader_f16;
    let round = |x: &[f32]| -> Vec<f32> {
        if f16 {
            x.iter().map(|&y| half::f16::from_f32(y).to_f32()).collect()
        } else {
            x.to_vec()
        }
    };
    let (qr, kr, vr) = (round(&q), round(&k), round(&v));
    let mut w = random(&mut rng, 2 * n - 1, 0.3);
    w.extend(random(&mut rng, BUCKETS + 1, 0.3));
    let mut times = vec![0i32; 2 * t];
    for s in 0..b {
        let mut now = 0i32;
        for i in 0..n {
            now += rng.below(1000) as i32;
            times[t + s * n + i] = now;
        }
        for i in 0..n {
            times[s * n + i] = if i + 1 < n {
                times[t + s * n + i + 1]
            } else {
                now + 60
            };
        }
    }
    let mut rec = Recorder::new(ctx);
    let up = |rec: &mut Recorder, x: &[f32]| -> Result<wgpu::Buffer> {
        let mut x = x.to_vec();
        x.extend(std::iter::repeat_n(0.0, 64 * h * d));
        Ok(if f16 {
            rec.upload(
                &x.iter()
                    .map(|&y| half::f16::from_f32(y))
                    .collect::<Vec<_>>(),
            )?
        } else {
            rec.upload(&x)?
        })
    };
    let (qb, kb, vb) = (up(&mut rec, &q)?, up(&mut rec, &k)?, up(&mut rec, &v)?);
    let mut meta: Vec<u32> = (0..=b).map(|s| (s * n) as u32).collect();
    meta.extend(std::iter::repeat_n(0, b));
    meta.extend(time_bucket_thresholds(DIVISOR, BUCKETS));
    let meta = rec.upload(&meta)?;
    let rab_w = rec.upload(&w)?;
    let times_b = rec.upload(&times)?;
    let out = rec.scratch((t * h * d * 4) as u64)?;
    let p = AttentionParams {
        batch: b as u32,
        heads: h as u32,
        dqk: d as u32,
        dv: d as u32,
        q_stride: (h * d) as u32,
        k_stride: (h * d) as u32,
        v_stride: (h * d) as u32,
        out_stride: (h * d) as u32,
        alpha: 1.0 / (d as f32).sqrt(),
        inv_n: 1.0 / n as f32,
        has_rab: c.rab as u32,
        rab_n: n as u32,
        num_buckets: BUCKETS as u32,
        bucket_divisor: DIVISOR as f32,
        num_targets_base: (b + 1) as u32,
        thresholds_base: (2 * b + 1) as u32,
        times_key_base: t as u32,
        ..AttentionParams::default()
    };
    let bufs = AttentionBuffers {
        meta: &meta,
        q: &qb,
        k: &kb,
        v: &vb,
        rab_w: &rab_w,
        times: &times_b,
        out: &out,
        capture: None,
    };
    rec.submit()?; // the uploads
    warm_up(|| {
        let mut rec = Recorder::new(ctx);
        ops::attention_with(&mut rec, variant, kernel, &p, &bufs, n)?;
        rec.submit()
    })?;
    // Timed: outputs poisoned with NaN first, `reps` dispatches each timestamped.
    ctx.queue
        .write_buffer(&out, 0, &vec![0xffu8; t * h * d * 4]);
    let mut rec = Recorder::new(ctx).with_profiling(reps as u32);
    for _ in 0..reps {
        ops::attention_with(&mut rec, variant, kernel, &p, &bufs, n)?;
    }
    let (data, passes) = rec.finish_profiled(&[(&out, 0, (t * h * d * 4) as u64)])?;
    let got = to_f32(&data[0]);
    // Check sampled rows of the first and last sequence, first and last head.
    let mut max_err = 0.0f64;
    let rab = (w.clone(), times.clone());
    let mut srng = Rng::new(5);
    for &s in &[0, b - 1] {
        for &head in &[0, h - 1] {
            for _ in 0..8 {
                let i = srng.below(n as u64) as usize;
                let want = reference_row(c, &qr, &kr, &vr, &rab, s, i, head);
                for (cc, &wv) in want.iter().enumerate() {
                    let g = got[((s * n + i) * h + head) * d + cc] as f64;
                    max_err = max_err.max(if g.is_nan() {
                        f64::INFINITY
                    } else {
                        (g - wv).abs()
                    });
                }
            }
        }
    }
    let name = variant.name();
    let tol = if variant == Variant::CoopMatrix {
        2e-3
    } else {
        5e-5
    };
    if max_err > tol {
        bail!(
            "attention N={n} {name} {}: max error {max_err:.3e} > {tol:.0e}",
            kernel.name()
        );
    }
    let mut ns: Vec<f64> = passes.iter().map(|p| p.ns).collect();
    if ns.is_empty() {
        bail!("no timestamp queries on this adapter");
    }
    // In dispatch order, to show drift or two modes that a median hides.
    let rep_ms: Vec<f64> = ns.iter().map(|x| x * 1e-6).collect();
    let (med, p10) = stats_ms(&mut ns);
    let flops = 2.0 * h as f64 * (2 * d) as f64 * b as f64 * (n * n) as f64 / 2.0;

    Ok(json!({
        "section": "attention", "n": n, "batch": b, "heads": h, "head_dim": d, "rab": c.rab,
        "variant": name, "kernel": kernel.name(), "median_ms": med, "p10_ms": p10,
        "tflops": flops / (med * 1e-3) / 1e12, "tokens_per_s": t as f64 / (med * 1e-3), "max_err": max_err, "rep_ms": rep_ms,
    }))
}

fn random_user(cfg: &ModelConfig, rng: &mut Rng, id: i64, len: usize) -> UserSequence {
    let items = (0..len)
        .map(|_| 1 + rng.below(cfg.num_items as u64) as u32)
        .collect();
    let mut now = 978_300_000i64;
    let ts = (0..len)
        .map(|_| {
            now += rng.below(100_000) as i64;
            now
        })
        .collect();
    let mut s = UserSequence::new(id, items, ts);
    s.query_time = Some(now + 3600);
    s
}

fn bench_retrieval(
    ctx: &GpuContext,
    name: &str,
    cfg: &ModelConfig,
    batches: &[usize],
    len: usize,
    reps: usize,
) -> Result<Vec<Value>> {
    let w = Weights::<f32>::seeded(cfg, 7);
    let gpu = GpuModel::upload_with(ctx, cfg, &w, UploadOptions::default())?;
    let mut rng = Rng::new(3);
    let max_b = *batches.iter().max().unwrap_or(&1);
    let users: Vec<UserSequence> = (0..max_b)
        .map(|u| random_user(cfg, &mut rng, u as i64, len))
        .collect();
    // Check user 0 against the CPU reference.
    let cpu = reference::encode_user(cfg, &w, &users[0]);
    let items = reference::retrieval::normalized_items(&w.item_emb, cfg.l2_norm_eps);
    let want = reference::retrieve_top_k(&cpu.user_embedding, &items, &users[0].items, 10);
    let got = gpu.retrieve(&users[..1], 10)?;
    let score_err = got[0]
        .scores
        .iter()
        .zip(&want.scores)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    if got[0].items != want.items || score_err > 1e-4 {
        bail!(
            "{name}: gpu top-10 {:?} != cpu {:?}",
            got[0].items,
            want.items
        );
    }
    let mut rows = Vec::new();
    for &b in batches {
        warm_up(|| gpu.retrieve(&users[..b], 10).map(|_| ()))?;
        // Wall time without timestamp queries first, then the profiled runs.
        let mut plain = Vec::new();
        for _ in 0..reps {
            let t0 = Instant::now();
            gpu.retrieve(&users[..b], 10)?;
            plain.push(t0.elapsed().as_secs_f64() * 1e9);
        }
        gpu.set_profiling(true);
        gpu.take_gpu_ns();
        gpu.take_pass_times();
        let mut ns = Vec::new();
        let mut wall = Vec::new();
        let mut passes = Vec::new();
        for _ in 0..reps {
            let t0 = Instant::now();
            gpu.retrieve(&users[..b], 10)?;
            wall.push(t0.elapsed().as_secs_f64() * 1e9);
            ns.push(gpu.take_gpu_ns());
            passes.push(gpu.take_pass_times());
        }
        gpu.set_profiling(false);
        let (med, p10) = stats_ms(&mut ns);
        let (wall_med, _) = stats_ms(&mut wall);
        let (plain_med, _) = stats_ms(&mut plain);
        let kernels = kernel_table(&passes);
        rows.push(json!({
            "section": "retrieval", "model": name, "items": cfg.num_items + 1, "batch": b, "len": len,
            "median_ms": med, "p10_ms": p10, "wall_median_ms": wall_med,
            "wall_unprofiled_median_ms": plain_med,
            "users_per_s": b as f64 / (med * 1e-3),
            "users_per_s_wall": b as f64 / (plain_med * 1e-3),
            "top10_score_err": score_err, "kernels": kernels,
        }));
    }
    Ok(rows)
}

fn bench_mfalcon(
    ctx: &GpuContext,
    history: usize,
    counts: &[usize],
    d: usize,
    reps: usize,
) -> Result<Vec<Value>> {
    let mut cfg = ModelConfig::movielens_hstu(3952);
    cfg.embedding_dim = d;
    cfg.num_blocks = 3;
    cfg.num_heads = 4;
    cfg.attention_dim = d / 4;
    cfg.linear_dim = d / 4;
    cfg.max_sequence_len = history;
    let w = Weights::<f32>::seeded(&cfg, 11);
    let gpu = GpuModel::upload_with(ctx, &cfg, &w, UploadOptions::default())?;
    let mut rng = Rng::new(8);
    let seq = random_user(&cfg, &mut rng, 1, history);
    let max_m = *counts.iter().max().unwrap_or(&1);
    let cands: Vec<u32> = (0..max_m)
        .map(|_| 1 + rng.below(cfg.num_items as u64) as u32)
        .collect();
    // Checks: M-FALCON == one pass on the GPU (full history), and == the CPU reference (128-item history).
    let cache = gpu.prefill(&seq)?;
    let mf = gpu.score_candidates(&cache, &cands[..8])?;
    let one = gpu.candidates_one_pass(&seq, &cands[..8])?;
    let err_one = mf
        .iter()
        .zip(&one)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let short = UserSequence {
        items: seq.items[..128].to_vec(),
        timestamps: seq.timestamps[..128].to_vec(),
        ..seq.clone()
    };
    let cpu_cache = reference::prefill(&cfg, &w, &short);
    let cpu = reference::score_candidates(&cfg, &w, &cpu_cache, &cands[..4]);
    let gpu_short = gpu.score_candidates(&gpu.prefill(&short)?, &cands[..4])?;
    let err_cpu = gpu_short
        .iter()
        .zip(&cpu.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    if err_one > 1e-4 || err_cpu > 1e-3 {
        bail!("m-falcon check: vs one pass {err_one:.3e}, vs cpu {err_cpu:.3e}");
    }
    warm_up(|| gpu.candidates_one_pass(&seq, &cands[..1]).map(|_| ()))?;
    gpu.set_profiling(true);
    gpu.take_gpu_ns();
    let mut single = Vec::new();
    for &c in cands.iter().take(reps.max(3)) {
        gpu.candidates_one_pass(&seq, &[c])?;
        single.push(gpu.take_gpu_ns());
    }
    let (single_ms, _) = stats_ms(&mut single);
    warm_up(|| gpu.prefill(&seq).map(|_| ()))?;
    gpu.take_gpu_ns();
    let mut prefill = Vec::new();
    for _ in 0..reps.max(3) {
        let c = gpu.prefill(&seq)?;
        prefill.push(gpu.take_gpu_ns());
        drop(c);
    }
    let (prefill_ms, _) = stats_ms(&mut prefill);
    let mut rows = Vec::new();
    for &m in counts {
        warm_up(|| gpu.score_candidates(&cache, &cands[..m]).map(|_| ()))?;
        gpu.take_gpu_ns();
        let mut ns = Vec::new();
        for _ in 0..reps {
            gpu.score_candidates(&cache, &cands[..m])?;
            ns.push(gpu.take_gpu_ns());
        }
        let (med, p10) = stats_ms(&mut ns);
        let per_s = m as f64 / ((med + prefill_ms) * 1e-3);
        rows.push(json!({
            "section": "m-falcon", "history": history, "candidates": m, "dim": d, "layers": 3, "heads": 4,
            "median_ms": med, "p10_ms": p10, "prefill_ms": prefill_ms,
            "candidates_per_s": m as f64 / (med * 1e-3),
            "candidates_per_s_with_prefill": per_s,
            "one_pass_per_candidate_ms": single_ms,
            "one_pass_candidates_per_s": 1e3 / single_ms,
            "speedup_vs_one_pass": per_s / (1e3 / single_ms),
            "err_vs_one_pass": err_one, "err_vs_cpu_history128": err_cpu,
        }));
    }
    gpu.set_profiling(false);
    Ok(rows)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let ctx = GpuContext::new()?;
    println!("adapter: {}", ctx.adapter_summary());
    println!(
        "shader runtime checks: {} (HSTU_SHADER_CHECKS=on|bounds|off: both checks, index clamping only, none)",
        hstu_runtime::gpu::cache::shader_checks().name()
    );
    if !ctx.has_timestamps() {
        bail!("adapter has no TIMESTAMP_QUERY: GPU times cannot be measured");
    }
    let mut rows = Vec::new();
    let (lengths, tokens, d): (&[usize], usize, usize) = if args.small {
        (&[128, 256], 1024, 64)
    } else {
        (&[1024, 4096, 8192], 65536, 128)
    };
    for &n in lengths
        .iter()
        .filter(|&&n| !args.retrieval_only && args.lengths.as_ref().is_none_or(|l| l.contains(&n)))
    {
        for &(variant, kernel) in &args.kernels {
            // A device per form: each form starts from empty pipeline / bind-group caches and
            // buffer pool, as a user's first call would.
            let ctx = GpuContext::new()?;
            if let Some(why) = ctx.variant_unsupported(variant) {
                println!("skip attention {} {}: {why}", variant.name(), kernel.name());
                continue;
            }
            for rab in [false, true] {
                if rab && n != lengths[lengths.len() / 2] {
                    continue;
                }
                let c = AttnCase {
                    n,
                    b: tokens / n,
                    h: 4,
                    d,
                    rab,
                };
                // A named (non-default) form that fails is reported, not fatal.
                let r = match bench_attention(&ctx, &c, variant, kernel, args.reps) {
                    Ok(r) => r,
                    Err(e) if kernel != AttentionKernel::Auto => {
                        println!(
                            "attention N={n:5} rab={rab:5} {} {} FAILED: {e:#}",
                            variant.name(),
                            kernel.name()
                        );
                        rows.push(json!({
                            "section": "attention", "n": n, "rab": rab, "variant": variant.name(),
                            "kernel": kernel.name(), "error": format!("{e:#}"),
                        }));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                println!(
                    "attention N={n:5} B={:3} H=4 D={d} rab={rab:5} {:12} {:28} {:9.3} ms (p10 {:9.3})  {:7.2} TFLOP/s  err {:.1e}",
                    c.b,
                    r["variant"].as_str().unwrap_or("?"),
                    r["kernel"].as_str().unwrap_or("?"),
                    r["median_ms"].as_f64().unwrap_or(0.0),
                    r["p10_ms"].as_f64().unwrap_or(0.0),
                    r["tflops"].as_f64().unwrap_or(0.0),
                    r["max_err"].as_f64().unwrap_or(0.0)
                );
                rows.push(r);
            }
        }
    }
    if args.attention_only {
        let doc = json!({
            "adapter": ctx.info.name, "backend": format!("{:?}", ctx.info.backend), "shader_runtime_checks": hstu_runtime::gpu::cache::shader_checks().name(),
            "driver": format!("{} {}", ctx.info.driver, ctx.info.driver_info), "small": args.small,
            "reps": args.reps, "results": rows,
        });
        std::fs::write(&args.out, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", args.out))?;
        println!("wrote {}", args.out);
        return Ok(());
    }
    let retrieval: Vec<(&str, ModelConfig, Vec<usize>, usize)> = if args.small {
        vec![(
            "ml-1m hstu-large",
            ModelConfig::movielens_hstu_large(3952),
            vec![1, 8],
            50,
        )]
    } else {
        let mut ml20 = ModelConfig::movielens_hstu_large(131262);
        ml20.embedding_dim = 256;
        ml20.num_blocks = 16;
        ml20.num_heads = 8;
        ml20.attention_dim = 32;
        ml20.linear_dim = 32;
        vec![
            (
                "ml-1m hstu-large",
                ModelConfig::movielens_hstu_large(3952),
                vec![1, 128, 1024],
                200,
            ),
            ("ml-20m hstu-large", ml20, vec![1, 128, 1024], 200),
        ]
    };
    for (name, cfg, batches, len) in &retrieval {
        for r in bench_retrieval(&ctx, name, cfg, batches, *len, args.reps)? {
            println!(
                "retrieval {name:18} items {:6} B={:5} {:9.3} ms (p10 {:9.3}, wall {:9.3})  {:10.0} users/s",
                r["items"],
                r["batch"],
                r["median_ms"].as_f64().unwrap_or(0.0),
                r["p10_ms"].as_f64().unwrap_or(0.0),
                r["wall_median_ms"].as_f64().unwrap_or(0.0),
                r["users_per_s"].as_f64().unwrap_or(0.0)
            );
            println!(
                "  wall without timestamps {:9.3} ms  {:10.0} users/s",
                r["wall_unprofiled_median_ms"].as_f64().unwrap_or(0.0),
                r["users_per_s_wall"].as_f64().unwrap_or(0.0)
            );
            if let Some(k) = r["kernels"].as_array() {
                print_kernels(&format!("{name} B={}", r["batch"]), k);
            }
            rows.push(r);
        }
    }
    let (history, counts, dim) = if args.small {
        (256, vec![64, 256], 64)
    } else {
        (2048, vec![1024, 16384], 512)
    };
    let mfalcon = if args.retrieval_only {
        vec![]
    } else {
        bench_mfalcon(&ctx, history, &counts, dim, args.reps.min(5))?
    };
    for r in mfalcon {
        println!(
            "m-falcon history {history} D={dim} m={:6} {:9.3} ms (p10 {:9.3}) + prefill {:7.3} ms  {:10.0} cand/s  one-pass/cand {:7.3} ms  speedup {:6.1}x",
            r["candidates"],
            r["median_ms"].as_f64().unwrap_or(0.0),
            r["p10_ms"].as_f64().unwrap_or(0.0),
            r["prefill_ms"].as_f64().unwrap_or(0.0),
            r["candidates_per_s_with_prefill"].as_f64().unwrap_or(0.0),
            r["one_pass_per_candidate_ms"].as_f64().unwrap_or(0.0),
            r["speedup_vs_one_pass"].as_f64().unwrap_or(0.0)
        );
        rows.push(r);
    }
    let doc = json!({
        "adapter": ctx.info.name, "backend": format!("{:?}", ctx.info.backend), "shader_runtime_checks": hstu_runtime::gpu::cache::shader_checks().name(),
        "driver": format!("{} {}", ctx.info.driver, ctx.info.driver_info), "small": args.small, "retrieval_only": args.retrieval_only, "reps": args.reps,
        "results": rows,
    });
    std::fs::write(&args.out, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", args.out))?;
    println!("wrote {}", args.out);
    Ok(())
}
