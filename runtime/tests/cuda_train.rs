//! The CUDA training step (`hstu_runtime::train::cuda`) against the CPU backward, and a short
//! `train()` on the device. Needs an NVIDIA sm_90 GPU: without a CUDA driver every test prints
//! why it skipped (CI has none; the device runs are recorded in runtime/BENCHMARKS-train.md).

#![cfg(feature = "cuda")]

use hstu_runtime::checkpoint::Weights;
use hstu_runtime::config::ModelConfig;
use hstu_runtime::reference::retrieval::normalized_items;
use hstu_runtime::rng::Rng;
use hstu_runtime::sequences::UserSequence;
use hstu_runtime::train::adamw::{AdamW, AdamWConfig};
use hstu_runtime::train::cuda::{CudaStepOptions, CudaTrainer};
use hstu_runtime::train::grads::{Grads, scale};
use hstu_runtime::train::loss::SampledSoftmax;
use hstu_runtime::train::step::retrieval_example;
use hstu_runtime::train::tape::Dropout;
use hstu_runtime::train::{TrainData, TrainDevice, TrainOptions, train};

/// Error bounds of a gradient tensor against the f32 CPU backward, which the f64 path confirms
/// to 1e-6: the device rounds q, k, v, the attention output and its gradient to bf16 (8-bit
/// mantissa, 2^-9 relative), and those roundings compound through the layers (measured on the
/// H200: up to 3.6% of the largest entry in the first layer's tensors, 0.5-1% in the last).
/// Relative L2 error ||gpu - cpu|| / ||cpu||, and the largest entry error over the largest |cpu|.
/// Shallow models (2 layers): measured up to 1.7% relative L2, 3.6% of the largest entry.
const SHALLOW: Tolerance = Tolerance {
    l2: 3e-2,
    max: 8e-2,
};
/// 8 layers: the roundings compound through the residual stream; measured up to 11% relative
/// L2 (pos_w of the first layer) and 31% of the largest entry, with the loss equal to 6e-5.
/// Still far from the O(1) errors of a wrong index or a missing term.
const DEEP: Tolerance = Tolerance { l2: 0.2, max: 0.5 };

#[derive(Clone, Copy)]
struct Tolerance {
    l2: f64,
    max: f64,
}
const LOSS_TOL: f64 = 5e-3;

fn no_cuda(test: &str) -> bool {
    if !hstu_cuda::cuda_available() {
        eprintln!("SKIPPED {test}: no CUDA driver (libcuda.so) on this machine");
        return true;
    }
    if let Err(e) = hstu_cuda::CudaDevice::new(0) {
        eprintln!("SKIPPED {test}: no usable CUDA device: {e}");
        return true;
    }
    false
}

fn sequences(cfg: &ModelConfig, users: usize, seed: u64) -> Vec<UserSequence> {
    let mut r = Rng::new(seed);
    (0..users)
        .map(|u| {
            let len = 1 + r.below(cfg.max_sequence_len as u64) as usize;
            let mut t = 1_000_000_000 + r.below(1_000_000) as i64;
            let mut items = Vec::new();
            let mut ts = Vec::new();
            for _ in 0..len {
                items.push(1 + r.below(cfg.num_items as u64) as u32);
                t += r.below(200_000) as i64;
                ts.push(t);
            }
            let mut s = UserSequence::new(u as i64, items, ts);
            s.target = Some(1 + r.below(cfg.num_items as u64) as u32);
            s.query_time = Some(t + 3600);
            s
        })
        .collect()
}

/// CPU mean loss and gradients of the batch, and the negatives it drew (token order).
fn cpu_gradients(
    cfg: &ModelConfig,
    w: &Weights<f32>,
    seqs: &[UserSequence],
    loss: &SampledSoftmax,
) -> (f64, Weights<f32>, Vec<i64>) {
    let items = normalized_items(&w.item_emb, cfg.l2_norm_eps);
    let mut g = Grads::zeros(w);
    let (mut sum, mut count, mut negs) = (0.0, 0, Vec::new());
    for (i, s) in seqs.iter().enumerate() {
        let mut draw = Rng::new(11).fork(i as u64);
        for _ in 0..s.items.len() {
            negs.extend(loss.draw(&mut draw).into_iter().map(i64::from));
        }
        let mut r = Rng::new(11).fork(i as u64);
        let (l, _) = retrieval_example(cfg, w, &items, loss, Dropout::OFF, s, &mut r, &mut g);
        sum += l.sum;
        count += l.count;
    }
    let mut g = g.finish(w, cfg.l2_norm_eps);
    scale(&mut g, 1.0 / count as f32);
    (sum / count as f64, g, negs)
}

/// `temperature`: the loss scales logits by 1 / temperature, which amplifies the forward's bf16
/// error in the softmax probabilities; deep models are checked at a milder one so that the
/// comparison measures the backward.
fn check_gradients(cfg: &ModelConfig, users: usize, temperature: f64, tol: Tolerance) {
    let w = Weights::<f32>::seeded(cfg, 5);
    let seqs = sequences(cfg, users, 9);
    let loss = SampledSoftmax {
        num_negatives: 16,
        temperature,
        num_items: cfg.num_items,
    };
    let (cpu_loss, cpu, negs) = cpu_gradients(cfg, &w, &seqs, &loss);
    let mut item_grads = Vec::new();
    for sorted_softmax in [true, false] {
        let opts = CudaStepOptions {
            num_negatives: loss.num_negatives,
            temperature: temperature as f32,
            dropout: Dropout::OFF,
            tf32: false,
            sorted_softmax,
        };
        let mut t = CudaTrainer::new(0, cfg, &w, &AdamW::new(AdamWConfig::default(), &w), opts)
            .expect("CUDA trainer");
        let refs: Vec<&UserSequence> = seqs.iter().collect();
        let (gpu_loss, gpu) = t.gradients(&refs, &negs, 1).expect("device gradients");
        eprintln!(
            "{} (sorted softmax {sorted_softmax}): loss cpu {cpu_loss:.6} gpu {gpu_loss:.6}",
            t.describe()
        );
        compare(&cpu, &gpu, cpu_loss, gpu_loss, tol);
        item_grads.push(gpu.item_emb.data);
    }
    // The two softmax kernels differ in summation order and where the table is normalised: f32
    // rounding, which the deep model's backward amplifies (measured 4e-6 at 2 layers, 1.5e-3 at
    // 8 layers).
    let bound = if tol.l2 > SHALLOW.l2 { 1e-2 } else { 1e-4 };
    let (a, b) = (&item_grads[0], &item_grads[1]);
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    eprintln!(
        "item gradient, sorted vs atomic softmax: relative L2 {:.3e}",
        diff / norm
    );
    assert!(
        diff <= bound * norm,
        "sorted softmax differs: {diff} vs norm {norm}"
    );
}

fn compare(cpu: &Weights<f32>, gpu: &Weights<f32>, cpu_loss: f64, gpu_loss: f64, tol: Tolerance) {
    assert!(
        (gpu_loss - cpu_loss).abs() <= LOSS_TOL * cpu_loss.abs().max(1.0),
        "loss {gpu_loss} vs {cpu_loss}"
    );
    let mut failed = Vec::new();
    for ((name, _, c), (_, _, g)) in cpu.named().into_iter().zip(gpu.named()) {
        let scale = c.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
        let err = c
            .iter()
            .zip(g)
            .fold(0f64, |m, (&a, &b)| m.max((a - b).abs() as f64));
        let norm = c.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        let diff = c
            .iter()
            .zip(g)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let rel = diff / norm.max(1e-12);
        eprintln!(
            "  {name}: max |cpu| {scale:.3e}, max |gpu - cpu| {err:.3e}, relative L2 {rel:.3e}"
        );
        if rel > tol.l2 || err > tol.max * scale.max(1e-6) {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "gradients off tolerance: {failed:?}");
}

#[test]
fn device_gradients_match_the_cpu_backward_tiny() {
    if no_cuda("device_gradients_match_the_cpu_backward_tiny") {
        return;
    }
    // 2 heads, dqk 4 != dv 3: padding to the 64-wide kernel heads and unequal head dims.
    check_gradients(&ModelConfig::tiny_for_tests(), 6, 0.05, SHALLOW);
}

#[test]
fn device_gradients_match_the_cpu_backward_movielens_shape() {
    if no_cuda("device_gradients_match_the_cpu_backward_movielens_shape") {
        return;
    }
    let mut cfg = ModelConfig::movielens_hstu(300);
    cfg.max_sequence_len = 60;
    check_gradients(&cfg, 12, 0.05, SHALLOW);
    let mut large = cfg.clone();
    large.num_blocks = 8;
    large.num_heads = 2;
    large.attention_dim = 25;
    large.linear_dim = 25;
    // 8 layers at temperature 0.05 measured 8% relative L2 on the item table, all of it from
    // the forward's deviation amplified 20x in the logits.
    check_gradients(&large, 8, 0.5, DEEP);
}

#[test]
fn device_user_embeddings_match_the_cpu_encoder() {
    if no_cuda("device_user_embeddings_match_the_cpu_encoder") {
        return;
    }
    let mut cfg = ModelConfig::movielens_hstu(300);
    cfg.max_sequence_len = 50;
    let w = Weights::<f32>::seeded(&cfg, 2);
    let seqs = sequences(&cfg, 40, 4);
    let opts = CudaStepOptions {
        num_negatives: 8,
        temperature: 0.05,
        dropout: Dropout::of_config(&cfg),
        tf32: false,
        sorted_softmax: true,
    };
    let t = CudaTrainer::new(0, &cfg, &w, &AdamW::new(AdamWConfig::default(), &w), opts)
        .expect("CUDA trainer");
    // 7 users per forward: several jagged batches.
    let gpu = t.encode_users(&seqs, 7).expect("device encode");
    let d = cfg.embedding_dim;
    let mut worst = 0f32;
    for (i, s) in seqs.iter().enumerate() {
        let cpu = hstu_runtime::reference::encode_user(&cfg, &w, s).user_embedding;
        for (a, b) in cpu.iter().zip(&gpu[i * d..(i + 1) * d]) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("user embeddings: max |gpu - cpu| {worst:.3e} (unit vectors)");
    assert!(worst < 2e-2, "user embeddings differ by {worst}");
}

#[test]
fn device_training_lowers_the_loss_and_checkpoints_load() {
    if no_cuda("device_training_lowers_the_loss_and_checkpoints_load") {
        return;
    }
    let mut cfg = ModelConfig::movielens_hstu(200);
    cfg.max_sequence_len = 40;
    let train_seqs = sequences(&cfg, 256, 3);
    // A learnable signal: every user repeats a short cycle of items.
    let train_seqs: Vec<UserSequence> = train_seqs
        .into_iter()
        .map(|mut s| {
            let base = (s.user_id as u32 * 7) % 190;
            for (p, x) in s.items.iter_mut().enumerate() {
                *x = 1 + base + (p as u32 % 5);
            }
            s.target = Some(1 + base + (s.items.len() as u32 % 5));
            s
        })
        .collect();
    let valid = train_seqs[..32].to_vec();
    let data = TrainData::Retrieval {
        train: train_seqs,
        valid,
    };
    let opts = TrainOptions {
        epochs: 4,
        batch_size: 32,
        num_negatives: 32,
        patience: 0,
        progress: false,
        device: TrainDevice::Cuda {
            ordinal: 0,
            tf32: true,
        },
        ..TrainOptions::default()
    };
    let out = std::env::temp_dir().join(format!("hstu-cuda-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let report = train(&cfg, Weights::seeded(&cfg, 1), &data, &opts, &out, false).expect("train");
    let losses: Vec<f64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v.get("loss").and_then(|x| x.as_f64()))
        .collect();
    let k = losses.len() / 4;
    let first: f64 = losses[..k].iter().sum::<f64>() / k as f64;
    let last: f64 = losses[losses.len() - k..].iter().sum::<f64>() / k as f64;
    eprintln!(
        "loss {first:.4} -> {last:.4} over {} steps, {:.0} tokens/s",
        losses.len(),
        report.tokens_per_s
    );
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    let m = hstu_runtime::checkpoint::Model::load(&out).expect("the best model loads");
    assert!(m.weights.find_non_finite().is_none());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn train_device_cuda_without_a_driver_is_one_clear_error() {
    if hstu_cuda::cuda_available() {
        eprintln!(
            "SKIPPED train_device_cuda_without_a_driver_is_one_clear_error: a CUDA driver is present"
        );
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("hstu-nocuda-{}", std::process::id()));
    let dir = out.with_extension("data");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("u.data");
    let ratings: String = (1..=3)
        .flat_map(|u| (1..=6).map(move |i| format!("{u}\t{}\t4\t{}\n", u * 10 + i, 1000 + i)))
        .collect();
    std::fs::write(&data, ratings).unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_hstu"))
        .args(["train", "--device", "cuda", "--no-progress", "--data"])
        .arg(&data)
        .arg("--config")
        .arg(root.join("assets/ml-100k-hstu/config.json"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "must fail: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("no CUDA driver"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&dir);
}
