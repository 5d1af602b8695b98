//! The trainer end to end on tiny synthetic data: the loss falls, `--resume` continues exactly,
//! the ranking trainer runs. CI-friendly (a few seconds in the test profile).

use hstu_runtime::checkpoint::Weights;
use hstu_runtime::config::{ModelConfig, RankingConfig};
use hstu_runtime::data::UserHistory;
use hstu_runtime::data::ranking::eval_example;
use hstu_runtime::rng::Rng;
use hstu_runtime::sequences::UserSequence;
use hstu_runtime::train::{TrainData, TrainOptions, train};
use std::path::PathBuf;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hstu-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Users walking the catalogue: the next item is `prev + 1` (mod 40) most of the time.
fn walks(n: usize, len: usize, seed: u64) -> Vec<UserSequence> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|u| {
            let mut item = 1 + rng.below(40) as u32;
            let mut items = Vec::new();
            for _ in 0..len {
                items.push(item);
                item = if rng.uniform() < 0.9 {
                    item % 40 + 1
                } else {
                    1 + rng.below(40) as u32
                };
            }
            let ts: Vec<i64> = (0..len as i64).map(|t| 1_000_000 + 600 * t).collect();
            let mut s =
                UserSequence::new(u as i64, items[..len - 1].to_vec(), ts[..len - 1].to_vec());
            s.target = Some(items[len - 1]);
            s.query_time = Some(ts[len - 1]);
            s
        })
        .collect()
}

fn options(epochs: usize) -> TrainOptions {
    TrainOptions {
        epochs,
        seed: 3,
        batch_size: 16,
        num_negatives: 16,
        patience: 0,
        progress: false,
        adamw: hstu_runtime::train::adamw::AdamWConfig {
            lr: 5e-3,
            ..Default::default()
        },
        ..TrainOptions::default()
    }
}

fn losses(out: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v.get("loss").and_then(|x| x.as_f64()))
        .collect()
}

#[test]
fn retrieval_loss_falls() {
    let cfg = ModelConfig::tiny_for_tests();
    let data = TrainData::Retrieval {
        train: walks(64, 11, 1),
        valid: walks(32, 11, 2),
    };
    let out = tmp("falls");
    let report = train(
        &cfg,
        Weights::seeded(&cfg, 3),
        &data,
        &options(6),
        &out,
        false,
    )
    .unwrap();
    let l = losses(&out);
    assert_eq!(l.len(), 24, "4 steps x 6 epochs");
    let (first, last) = (
        l[..4].iter().sum::<f64>() / 4.0,
        l[l.len() - 4..].iter().sum::<f64>() / 4.0,
    );
    assert!(last < 0.8 * first, "loss did not fall: {first} -> {last}");
    assert!(report.state.best_epoch >= 1 && out.join("model.safetensors").is_file());
    let m = hstu_runtime::checkpoint::Model::load(&out).unwrap();
    assert_eq!(m.config, cfg);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn resume_continues_exactly() {
    let cfg = ModelConfig::tiny_for_tests();
    let data = TrainData::Retrieval {
        train: walks(40, 9, 4),
        valid: walks(16, 9, 5),
    };
    let (straight, resumed) = (tmp("straight"), tmp("resumed"));
    train(
        &cfg,
        Weights::seeded(&cfg, 3),
        &data,
        &options(3),
        &straight,
        false,
    )
    .unwrap();
    train(
        &cfg,
        Weights::seeded(&cfg, 3),
        &data,
        &options(1),
        &resumed,
        false,
    )
    .unwrap();
    // without --resume an existing checkpoint is refused
    assert!(
        train(
            &cfg,
            Weights::seeded(&cfg, 3),
            &data,
            &options(3),
            &resumed,
            false
        )
        .is_err()
    );
    let report = train(
        &cfg,
        Weights::seeded(&cfg, 99),
        &data,
        &options(3),
        &resumed,
        true,
    )
    .unwrap();
    assert_eq!(report.state.epochs_done, 3);
    let files = |d: &PathBuf| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d.join("checkpoint"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .chain([d.join("model.safetensors")])
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (a, b) = (files(&straight), files(&resumed));
    assert_eq!(a.len(), b.len(), "checkpoint files differ");
    for ((na, da), (nb, db)) in a.iter().zip(&b) {
        assert!(na == nb && da == db, "{na} vs {nb} differ after resume");
    }
    assert_eq!(losses(&straight), losses(&resumed));
    std::fs::remove_dir_all(&straight).unwrap();
    std::fs::remove_dir_all(&resumed).unwrap();
}

#[test]
fn ranking_trainer_runs_and_loss_falls() {
    let cfg = ModelConfig {
        ranking: Some(RankingConfig {
            num_actions: 6,
            mlp_hidden_dim: 8,
            task_thresholds: vec![4, 3],
        }),
        ..ModelConfig::tiny_for_tests()
    };
    // ratings follow the item: items 1..=20 are liked
    let users: Vec<UserHistory> = walks(32, 30, 6)
        .into_iter()
        .map(|s| {
            let ratings = s
                .items
                .iter()
                .map(|&i| if i <= 20 { 5.0 } else { 1.0 })
                .collect();
            UserHistory {
                user_id: s.user_id,
                items: s.items,
                timestamps: s.timestamps,
                ratings,
            }
        })
        .collect();
    let valid = users
        .iter()
        .filter_map(|u| eval_example(u, cfg.max_sequence_len))
        .collect();
    let data = TrainData::Ranking {
        users,
        valid,
        task_names: vec!["rating>=4".into(), "rating>=3".into()],
    };
    let out = tmp("ranking");
    let report = train(
        &cfg,
        Weights::seeded(&cfg, 3),
        &data,
        &options(24),
        &out,
        false,
    )
    .unwrap();
    let l = losses(&out);
    let (first, last) = (
        l[..4].iter().sum::<f64>() / 4.0,
        l[l.len() - 4..].iter().sum::<f64>() / 4.0,
    );
    assert!(last < 0.8 * first, "ranking loss did not fall: {l:?}");
    assert!(
        report.state.best_metrics.get("AUC[rating>=4]").is_some(),
        "{:?}",
        report.state
    );
    std::fs::remove_dir_all(&out).unwrap();
}
