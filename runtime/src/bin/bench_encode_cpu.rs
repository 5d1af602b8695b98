//! CPU encode throughput of the reference (users/s), HSTU and HSTU-large shapes, full histories.
//!
//! `cargo run --release -p hstu-runtime --bin bench_encode_cpu -- [--users 256] [--len 200] [--out bench.json]`
//!
//! Prints a table and writes JSON. Inputs are random (seeded), outputs checked finite and
//! checked against a second f64 run on the first user before timing.

use hstu_runtime::checkpoint::Weights;
use hstu_runtime::config::ModelConfig;
use hstu_runtime::reference::encode_batch;
use hstu_runtime::rng::Rng;
use hstu_runtime::sequences::UserSequence;
use std::time::Instant;

struct Args {
    users: usize,
    len: usize,
    repeats: usize,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        users: 256,
        len: 200,
        repeats: 5,
        out: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--users" => a.users = value.parse().expect("--users N"),
            "--len" => a.len = value.parse().expect("--len N"),
            "--repeats" => a.repeats = value.parse().expect("--repeats N"),
            "--out" => a.out = Some(value),
            "--help" | "-h" => {
                println!("bench_encode_cpu [--users N] [--len L] [--repeats R] [--out FILE.json]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

fn random_users(cfg: &ModelConfig, users: usize, len: usize, seed: u64) -> Vec<UserSequence> {
    let mut rng = Rng::new(seed);
    (0..users)
        .map(|u| {
            let items = (0..len)
                .map(|_| 1 + rng.below(cfg.num_items as u64) as u32)
                .collect();
            let mut t = 978_300_000i64;
            let timestamps = (0..len)
                .map(|_| {
                    t += rng.below(100_000) as i64;
                    t
                })
                .collect();
            let mut s = UserSequence::new(u as i64, items, timestamps);
            s.query_time = Some(t + 3600);
            s
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args = parse_args();
    let threads = rayon::current_num_threads();
    let shapes = [
        ("ml-1m-hstu", ModelConfig::movielens_hstu(3952)),
        ("ml-1m-hstu-large", ModelConfig::movielens_hstu_large(3952)),
    ];
    let mut rows = Vec::new();
    println!(
        "{:<18} {:>6} {:>5} {:>8} {:>12} {:>12} {:>10}",
        "shape", "users", "len", "threads", "median_ms", "p10_ms", "users/s"
    );
    for (name, cfg) in shapes {
        let w = Weights::<f32>::seeded(&cfg, 1);
        let seqs = random_users(&cfg, args.users, args.len.min(cfg.max_sequence_len), 2);
        // Check before timing: f32 matches f64 on the first user, every output finite.
        let check32 = encode_batch(&cfg, &w, &seqs[..1]);
        let check64 = encode_batch(&cfg, &w.cast::<f64>(), &seqs[..1]);
        let err = check32[0]
            .user_embedding
            .iter()
            .zip(&check64[0].user_embedding)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-4, "{name}: f32 vs f64 user embedding error {err}");
        let mut times = Vec::new();
        encode_batch(&cfg, &w, &seqs); // warm-up
        for _ in 0..args.repeats {
            let t0 = Instant::now();
            let out = encode_batch(&cfg, &w, &seqs);
            times.push(t0.elapsed().as_secs_f64());
            assert!(
                out.iter()
                    .all(|o| o.user_embedding.iter().all(|x| x.is_finite()))
            );
        }
        times.sort_by(f64::total_cmp);
        let (median, p10) = (percentile(&times, 0.5), percentile(&times, 0.1));
        let users_per_s = args.users as f64 / median;
        println!(
            "{:<18} {:>6} {:>5} {:>8} {:>12.1} {:>12.1} {:>10.1}",
            name,
            args.users,
            args.len,
            threads,
            median * 1e3,
            p10 * 1e3,
            users_per_s
        );
        rows.push(serde_json::json!({
            "shape": name, "backend": "cpu-reference", "dtype": "f32", "users": args.users,
            "history_len": args.len, "threads": threads, "median_ms": median * 1e3, "p10_ms": p10 * 1e3,
            "users_per_s": users_per_s, "tokens_per_s": users_per_s * args.len as f64,
            "embedding_dim": cfg.embedding_dim, "num_blocks": cfg.num_blocks, "num_heads": cfg.num_heads,
        }));
    }
    let json = serde_json::to_string_pretty(&rows).expect("json");
    if let Some(path) = args.out {
        std::fs::write(&path, json).expect("write JSON");
        println!("wrote {path}");
    }
}
