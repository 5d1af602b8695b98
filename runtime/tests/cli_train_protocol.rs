//! `hstu train --eval-test` (spec section 8 protocol): trains on all but each user's last item and
//! evaluates that item every epoch; refused with `--refit` and for ranking configs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ratings(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let data = dir.join("u.data");
    let lines: String = (1..=8)
        .flat_map(|u| {
            (1..=9)
                .map(move |i| format!("{u}\t{}\t4\t{}\n", (u * 7 + i * 3) % 60 + 1, 1000 + 50 * i))
        })
        .collect();
    std::fs::write(&data, lines).unwrap();
    data
}

fn hstu(args: &[&str], data: &Path, out: &Path) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Command::new(env!("CARGO_BIN_EXE_hstu"))
        .args([
            "train",
            "--no-progress",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--negatives",
            "8",
        ])
        .args(args)
        .arg("--data")
        .arg(data)
        .arg("--config")
        .arg(root.join("assets/ml-100k-hstu/config.json"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn eval_test_reports_the_last_item_every_epoch() {
    let dir = std::env::temp_dir().join(format!("hstu-evaltest-{}", std::process::id()));
    let data = ratings(&dir);
    let out = dir.join("run");
    let r = hstu(&["--eval-test"], &data, &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(report["epochs_done"], 2);
    // every epoch evaluated on the 8 users' last items
    assert_eq!(report["last"]["users"], 8, "{report}");
    assert_eq!(report["last"]["split"], "test", "{report}");
    assert!(report["best"]["HR@10"].as_f64().is_some(), "{report}");
    assert!(out.join("model.safetensors").is_file());

    let r = hstu(&["--eval-test", "--refit"], &data, &dir.join("both"));
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--refit"));
    let _ = std::fs::remove_dir_all(&dir);
}
