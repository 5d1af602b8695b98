//! Crash safety of the trainer: a run killed (SIGKILL) at arbitrary moments and resumed with
//! `--resume` ends with exactly the weights of an uninterrupted run, and the output directory
//! never holds a truncated checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const HSTU: &str = env!("CARGO_BIN_EXE_hstu");
const EPOCHS: &str = "20";

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hstu-kill-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small MovieLens-100K-format file: 60 users, 14 to 30 ratings each, 80 items.
fn write_data(dir: &Path) -> PathBuf {
    let mut text = String::new();
    let mut x: u64 = 12345;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for user in 1..=60u64 {
        let n = 14 + next() % 17;
        let mut t = 880_000_000 + next() % 1_000_000;
        for _ in 0..n {
            t += next() % 5000;
            let item = 1 + (next() % 80).min(next() % 80);
            text.push_str(&format!("{user}\t{item}\t{}\t{t}\n", 1 + next() % 5));
        }
    }
    let p = dir.join("u.data");
    std::fs::write(&p, text).unwrap();
    p
}

fn write_config(dir: &Path) -> PathBuf {
    let cfg = serde_json::json!({
        "architecture": "hstu", "num_items": 80, "embedding_dim": 8, "num_blocks": 1, "num_heads": 1,
        "attention_dim": 4, "linear_dim": 4, "max_sequence_len": 20, "max_output_len": 2,
        "num_time_buckets": 128, "time_bucket_fn": "log", "time_bucket_divisor": 0.301,
        "layer_norm_eps": 1e-6, "l2_norm_eps": 1e-6, "input_dropout": 0.2, "linear_dropout": 0.2
    });
    let p = dir.join("config.json");
    std::fs::write(&p, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    p
}

fn train(data: &Path, config: &Path, out: &Path, resume: bool) -> Child {
    let mut c = Command::new(HSTU);
    c.args(["--log", "warn", "train", "--data"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out);
    c.args(["--epochs", EPOCHS, "--seed", "9", "--batch-size", "16"]);
    if resume {
        c.arg("--resume");
    }
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    c.spawn().expect("spawn hstu train")
}

fn finish(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn killed_training_resumes_to_the_same_weights() {
    let dir = tmp("run");
    let data = write_data(&dir);
    let config = write_config(&dir);

    let reference_out = dir.join("uninterrupted");
    let t0 = Instant::now();
    finish(train(&data, &config, &reference_out, false));
    let full = t0.elapsed();
    let reference = std::fs::read(reference_out.join("checkpoint/model.safetensors")).unwrap();

    // Kill at several points spread over the run, resuming each time; the first start is fresh.
    let killed_out = dir.join("killed");
    let mut kills = 0;
    for (round, fraction) in [0.1, 0.2, 0.3, 0.45, 0.55, 0.7, 0.85]
        .into_iter()
        .enumerate()
    {
        let mut child = train(&data, &config, &killed_out, round > 0);
        std::thread::sleep(full.mul_f64(fraction).max(Duration::from_millis(50)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait();
        // Whatever is on disk must load: never a truncated checkpoint.
        let ckpt = killed_out.join("checkpoint");
        if ckpt.join("model.safetensors").exists() {
            let status = Command::new(HSTU)
                .args(["--log", "error", "info", "--model"])
                .arg(&ckpt)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(
                status.success(),
                "checkpoint after kill {kills} does not load"
            );
        }
    }
    finish(train(&data, &config, &killed_out, true));
    let resumed = std::fs::read(killed_out.join("checkpoint/model.safetensors")).unwrap();
    println!("killed {kills} times over a {full:?} run");
    assert!(kills >= 1, "the run finished before any kill");
    assert!(
        resumed == reference,
        "weights after kill + resume differ from the uninterrupted run"
    );
}
