//! End-to-end training throughput of the CUDA step (`hstu_runtime::train::cuda`): tokens/s and
//! TFLOP/s of whole AdamW steps (forward, sampled softmax, backward, update) on full-length
//! random sequences, for the shapes of issue 5:
//!
//! * `ml1m-large`: the ML-1M HSTU-large config (8 blocks, 2 heads x 25, D = 50, N = 211),
//!   128 users x 200 items per step;
//! * `ml1m`: the ML-1M HSTU config (2 blocks, 1 head x 50);
//! * `big`: 8 blocks, D = 1024, 4 heads x 256, sequences of 4096 (16 per step = 65,536 tokens).
//!
//! `bench_train_cuda [--shapes ml1m-large,ml1m,big] [--steps 20] [--warmup 3] [--no-tf32] [--profile] [--out F.json]`
//!
//! `--sorted-softmax` sums the loss's item gradient per item after a counting sort instead of
//! one float atomic per (row, candidate, column) (the comparison in BENCHMARKS).
//! `--profile` adds 2 steps after the timed ones with the stream synchronised after every phase
//! and prints ms per step of each phase (the timed steps are not synchronised).
//!
//! FLOPs counted: the dense products (3x the forward's `2 T D (U + H dv)` per layer) and the
//! attention as hstu-spec section 6 (3.5x the forward); element-wise work and the loss are not
//! counted. Each step ends with the loss readback, so steps are timed back to back.

use hstu_runtime::checkpoint::Weights;
use hstu_runtime::config::ModelConfig;
use hstu_runtime::rng::Rng;
use hstu_runtime::sequences::UserSequence;
use hstu_runtime::train::adamw::{AdamW, AdamWConfig};
use hstu_runtime::train::cuda::{CudaStepOptions, CudaTrainer};
use hstu_runtime::train::tape::Dropout;
use std::time::Instant;

struct Shape {
    name: &'static str,
    cfg: ModelConfig,
    users: usize,
    len: usize,
}

fn shapes() -> Vec<Shape> {
    let ml1m = ModelConfig::movielens_hstu(3952);
    let mut large = ml1m.clone();
    large.num_blocks = 8;
    large.num_heads = 2;
    large.attention_dim = 25;
    large.linear_dim = 25;
    let mut big = ml1m.clone();
    big.num_items = 100_000;
    big.embedding_dim = 1024;
    big.num_blocks = 8;
    big.num_heads = 4;
    big.attention_dim = 256;
    big.linear_dim = 256;
    big.max_sequence_len = 4096;
    big.max_output_len = 0;
    vec![
        Shape {
            name: "ml1m-large",
            cfg: large,
            users: 128,
            len: 200,
        },
        Shape {
            name: "ml1m",
            cfg: ml1m,
            users: 128,
            len: 200,
        },
        Shape {
            name: "big",
            cfg: big,
            users: 16,
            len: 4096,
        },
    ]
}

fn users(cfg: &ModelConfig, n: usize, len: usize, seed: u64) -> Vec<UserSequence> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|u| {
            let mut t = 978_300_000i64;
            let items = (0..len)
                .map(|_| 1 + r.below(cfg.num_items as u64) as u32)
                .collect();
            let ts = (0..len)
                .map(|_| {
                    t += r.below(100_000) as i64;
                    t
                })
                .collect();
            let mut s = UserSequence::new(u as i64, items, ts);
            s.target = Some(1 + r.below(cfg.num_items as u64) as u32);
            s
        })
        .collect()
}

fn step_flops(cfg: &ModelConfig, users: usize, len: usize) -> f64 {
    let t = (users * len) as f64;
    let (d, u, hdv) = (
        cfg.embedding_dim as f64,
        cfg.uvqk_dim() as f64,
        cfg.hdv() as f64,
    );
    let gemm = 3.0 * 2.0 * t * d * (u + hdv);
    let attn_fwd = 2.0
        * cfg.num_heads as f64
        * (cfg.attention_dim + cfg.linear_dim) as f64
        * users as f64
        * (len * len) as f64
        / 2.0;
    cfg.num_blocks as f64 * (gemm + 3.5 * attn_fwd)
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (mut profile, mut sorted_softmax) = (false, false);
    let (mut names, mut steps, mut warmup, mut tf32, mut out) = (
        "ml1m-large,ml1m,big".to_string(),
        20usize,
        3usize,
        true,
        None::<String>,
    );
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--shapes" => names = v,
            "--steps" => steps = v.parse()?,
            "--warmup" => warmup = v.parse()?,
            "--out" => out = Some(v),
            "--sorted-softmax" => {
                sorted_softmax = true;
                i += 1;
                continue;
            }
            "--profile" => {
                profile = true;
                i += 1;
                continue;
            }
            "--no-tf32" => {
                tf32 = false;
                i += 1;
                continue;
            }
            "--help" | "-h" => {
                println!(
                    "bench_train_cuda [--shapes ml1m-large,ml1m,big] [--steps N] [--warmup N] [--no-tf32] [--sorted-softmax] [--profile] [--out FILE.json]"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
        i += 2;
    }
    let mut rows = Vec::new();
    println!(
        "{:<11} {:>7} {:>8} {:>11} {:>12} {:>9} {:>10}",
        "shape", "tokens", "step ms", "tokens/s", "TFLOP/s", "loss0", "loss_end"
    );
    for s in shapes()
        .into_iter()
        .filter(|s| names.split(',').any(|n| n == s.name))
    {
        let w = Weights::<f32>::seeded(&s.cfg, 1);
        let opt = AdamW::new(AdamWConfig::default(), &w);
        let opts = CudaStepOptions {
            num_negatives: 128,
            temperature: 0.05,
            dropout: Dropout::of_config(&s.cfg),
            tf32,
            sorted_softmax,
        };
        let mut t = match CudaTrainer::new(0, &s.cfg, &w, &opt, opts) {
            Ok(t) => t,
            Err(e) => {
                println!("{:<11} error: {e}", s.name);
                rows.push(serde_json::json!({"shape": s.name, "error": e.to_string()}));
                continue;
            }
        };
        drop(w);
        let data = users(&s.cfg, s.users * 4, s.len, 7);
        let batches: Vec<Vec<&UserSequence>> =
            data.chunks(s.users).map(|c| c.iter().collect()).collect();
        let mut first = f64::NAN;
        let mut run = |k: usize| -> anyhow::Result<(f64, usize)> {
            let (l, tok) = t.step(&batches[k % batches.len()], 42)?;
            Ok((l.sum / l.count.max(1) as f64, tok))
        };
        for k in 0..warmup {
            let (l, _) = run(k)?;
            if k == 0 {
                first = l;
            }
        }
        let t0 = Instant::now();
        let (mut tokens, mut last) = (0usize, f64::NAN);
        for k in 0..steps {
            let (l, tok) = run(k)?;
            tokens += tok;
            last = l;
        }
        let secs = t0.elapsed().as_secs_f64();
        let tps = tokens as f64 / secs;
        let tflops = step_flops(&s.cfg, s.users, s.len) * steps as f64 / secs / 1e12;
        println!(
            "{:<11} {:>7} {:>8.2} {:>11.0} {:>12.1} {:>9.4} {:>10.4}",
            s.name,
            s.users * s.len,
            secs * 1e3 / steps as f64,
            tps,
            tflops,
            first,
            last
        );
        let mut phases = serde_json::Map::new();
        if profile {
            t.set_profile(true);
            const PROFILED: usize = 2;
            for k in 0..PROFILED {
                t.step(&batches[k % batches.len()], 42)?;
            }
            t.set_profile(false);
            let prof = t.take_profile();
            let total: f64 = prof.iter().map(|p| p.1).sum();
            for (name, secs) in &prof {
                let ms = secs * 1e3 / PROFILED as f64;
                println!(
                    "    {name:<22} {ms:>9.3} ms/step {:>5.1}%",
                    100.0 * secs / total
                );
                phases.insert(name.to_string(), ms.into());
            }
        }
        rows.push(serde_json::json!({
            "phase_ms": phases,
            "shape": s.name, "device": t.describe(), "tf32": tf32, "sorted_softmax": sorted_softmax, "users": s.users, "len": s.len,
            "tokens_per_step": s.users * s.len, "steps": steps, "step_ms": secs * 1e3 / steps as f64,
            "tokens_per_s": tps, "tflops": tflops, "loss_first": first, "loss_last": last,
        }));
    }
    if let Some(p) = out {
        std::fs::write(&p, serde_json::to_string_pretty(&rows)?)?;
        println!("wrote {p}");
    }
    Ok(())
}
