//! Hostile input, case by case: each malformed model, config or sequences file makes `hstu` exit
//! non-zero with one `error:` line naming the file, line or tensor; never a panic or a signal,
//! under a 4 GiB address-space limit and a time limit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HSTU: &str = env!("CARGO_BIN_EXE_hstu");
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/golden/retrieval_small"
);
/// Generous bound: a malformed file must be rejected quickly, never by exhausting time.
const TIME_LIMIT: Duration = Duration::from_secs(30);

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

fn run_hstu(args: &[&str]) -> Outcome {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!("ulimit -v 4194304; exec '{HSTU}' {}", quoted.join(" "));
    let t0 = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("spawn hstu");
    assert!(
        t0.elapsed() < TIME_LIMIT,
        "hstu {args:?} took {:?}",
        t0.elapsed()
    );
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Expect a clean rejection whose error line contains every `needle`.
fn expect_rejected(case: &str, args: &[&str], needles: &[&str]) {
    let o = run_hstu(args);
    assert!(
        o.code.is_some(),
        "{case}: killed by a signal; stderr: {}",
        o.stderr
    );
    assert_ne!(o.code, Some(0), "{case}: accepted; stderr: {}", o.stderr);
    assert!(
        !o.stderr.contains("panicked"),
        "{case}: panicked: {}",
        o.stderr
    );
    let errors: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{case}: expected one error line, got: {}",
        o.stderr
    );
    for n in needles {
        assert!(
            errors[0].contains(n),
            "{case}: error line lacks {n:?}: {}",
            errors[0]
        );
    }
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hstu-malformed-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A model dir copied from the golden case, with `model.safetensors` replaced by `bytes`.
fn model_with_weights(tag: &str, bytes: &[u8]) -> PathBuf {
    let d = tmp(tag);
    std::fs::copy(Path::new(GOLDEN).join("config.json"), d.join("config.json")).unwrap();
    std::fs::write(d.join("model.safetensors"), bytes).unwrap();
    d
}

fn model_with_config(tag: &str, config: &str) -> PathBuf {
    let d = tmp(tag);
    std::fs::copy(
        Path::new(GOLDEN).join("model.safetensors"),
        d.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(d.join("config.json"), config).unwrap();
    d
}

fn sequences_file(tag: &str, text: &[u8]) -> PathBuf {
    let p = tmp(tag).join("seqs.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

fn golden(name: &str) -> String {
    Path::new(GOLDEN).join(name).display().to_string()
}

fn retrieve(model: &Path, seqs: &str) -> Vec<String> {
    [
        "retrieve",
        "--model",
        &model.display().to_string(),
        "--sequences",
        seqs,
        "--top-k",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn expect_model_rejected(case: &str, model: &Path, needles: &[&str]) {
    let args = retrieve(model, &golden("sequences.jsonl"));
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    expect_rejected(case, &args, needles);
}

/// Build a safetensors file from `(name, dtype, shape, data_offsets)` and a data blob.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

/// Golden weights with one tensor's header entry rewritten by `edit`.
fn golden_with_header_edit(
    edit: impl Fn(&mut serde_json::Map<String, serde_json::Value>),
) -> Vec<u8> {
    let bytes = std::fs::read(golden("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    safetensors_bytes(&serde_json::to_string(&header).unwrap(), &bytes[8 + n..])
}

const POS_W: &str = "_hstu._attention_layers.0._rel_attn_bias._pos_w";

#[test]
fn checkpoint_files_rejected() {
    let good = std::fs::read(golden("model.safetensors")).unwrap();
    for (case, bytes) in [
        ("empty", Vec::new()),
        ("4 bytes", good[..4].to_vec()),
        ("header cut", good[..100].to_vec()),
        ("data cut", good[..good.len() - 7].to_vec()),
        (
            "garbage",
            b"\x13\x37garbage garbage garbage garbage".to_vec(),
        ),
        (
            "huge header length",
            safetensors_bytes("{}", b"")
                .iter()
                .enumerate()
                .map(|(i, &b)| if i == 7 { 0x7f } else { b })
                .collect(),
        ),
        ("header not json", safetensors_bytes("{not json", b"")),
        ("trailing bytes", [good.clone(), vec![0u8; 16]].concat()),
    ] {
        let m = model_with_weights(&case.replace(' ', "-"), &bytes);
        expect_model_rejected(case, &m, &["model.safetensors"]);
    }
}

#[test]
fn lying_headers_and_tensors_rejected() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "offsets beyond the data",
            golden_with_header_edit(|h| {
                h[POS_W]["data_offsets"] = serde_json::json!([0, 1u64 << 40])
            }),
            "model.safetensors",
        ),
        (
            "shape lies about size",
            golden_with_header_edit(|h| {
                h[POS_W]["shape"] = serde_json::json!([1u64 << 40, 1u64 << 40])
            }),
            "model.safetensors",
        ),
        (
            "wrong shape, right size",
            golden_with_header_edit(|h| h[POS_W]["shape"] = serde_json::json!([11, 11])),
            POS_W,
        ),
        (
            "wrong dtype",
            golden_with_header_edit(|h| h[POS_W]["dtype"] = serde_json::json!("I32")),
            POS_W,
        ),
        (
            "missing tensor",
            golden_with_header_edit(|h| {
                // Rename keeps offsets valid: the expected name is then missing and an extra one present.
                let v = h.remove("_hstu._attention_layers.1._o.bias").unwrap();
                h.insert("_hstu._attention_layers.1._o.bias_renamed".into(), v);
            }),
            "_o.bias",
        ),
    ];
    for (case, bytes, needle) in cases {
        let m = model_with_weights(&case.replace(' ', "-"), &bytes);
        expect_model_rejected(case, &m, &[needle]);
    }
    let mut extra = golden_with_header_edit(|h| {
        let end = h
            .values()
            .filter_map(|v| v.get("data_offsets"))
            .map(|o| o[1].as_u64().unwrap())
            .max()
            .unwrap();
        h.insert(
            "extra.weight".into(),
            serde_json::json!({"dtype": "F32", "shape": [1], "data_offsets": [end, end + 4]}),
        );
    });
    extra.extend_from_slice(&1.0f32.to_le_bytes());
    let m = model_with_weights("extra-tensor", &extra);
    expect_model_rejected("extra tensor", &m, &["extra.weight", "unexpected"]);
    let with_prefix = golden_with_header_edit(|h| {
        let v = h.remove(POS_W).unwrap();
        h.insert(format!("module.{POS_W}"), v);
    });
    let m = model_with_weights("module-prefix", &with_prefix);
    let args = retrieve(&m, &golden("sequences.jsonl"));
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        run_hstu(&args).code,
        Some(0),
        "a leading `module.` is accepted"
    );
}

#[test]
fn non_finite_weights_reported() {
    let bytes = std::fs::read(golden("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header[POS_W]["data_offsets"][0].as_u64().unwrap() as usize;
    let mut bad = bytes.clone();
    bad[8 + n + start..8 + n + start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let m = model_with_weights("nan", &bad);
    expect_rejected(
        "NaN weight",
        &["info", "--model", &m.display().to_string()],
        &[POS_W, "NaN"],
    );
}

#[test]
fn config_files_rejected() {
    let good = std::fs::read_to_string(golden("config.json")).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown field",
            good.replacen('{', "{\"surprise\": 1,", 1),
            "surprise",
        ),
        (
            "missing field",
            good.replace("\"num_blocks\": 2,", ""),
            "num_blocks",
        ),
        (
            "zero heads",
            good.replace("\"num_heads\": 2", "\"num_heads\": 0"),
            "num_heads",
        ),
        (
            "negative dim",
            good.replace("\"embedding_dim\": 32", "\"embedding_dim\": -32"),
            "config.json",
        ),
        (
            "string dim",
            good.replace("\"embedding_dim\": 32", "\"embedding_dim\": \"32\""),
            "config.json",
        ),
        (
            "huge items",
            good.replace("\"num_items\": 300", "\"num_items\": 1000000000000"),
            "num_items",
        ),
        (
            "inconsistent with weights",
            good.replace("\"embedding_dim\": 32", "\"embedding_dim\": 16"),
            "_item_emb",
        ),
        (
            "malformed json",
            good[..good.len() / 2].to_string(),
            "config.json",
        ),
        (
            "binary garbage",
            "\u{0}\u{1}\u{2}garbage".to_string(),
            "config.json",
        ),
        (
            "negative eps",
            good.replace("\"layer_norm_eps\": 1e-06", "\"layer_norm_eps\": -1.0"),
            "layer_norm_eps",
        ),
    ];
    for (case, text, needle) in cases {
        let m = model_with_config(&case.replace(' ', "-"), &text);
        expect_model_rejected(case, &m, &[needle]);
    }
}

#[test]
fn sequences_files_rejected() {
    let ok = "{\"user_id\": 1, \"items\": [1, 2], \"timestamps\": [10, 20]}\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "item id too large",
            format!("{ok}{{\"user_id\": 2, \"items\": [301], \"timestamps\": [1]}}\n").into_bytes(),
            ":2:",
        ),
        (
            "item id zero",
            format!("{ok}{{\"user_id\": 2, \"items\": [0], \"timestamps\": [1]}}\n").into_bytes(),
            ":2:",
        ),
        (
            "unequal lengths",
            format!("{ok}{{\"user_id\": 2, \"items\": [1, 2], \"timestamps\": [1]}}\n")
                .into_bytes(),
            ":2:",
        ),
        (
            "decreasing timestamps",
            b"{\"user_id\": 2, \"items\": [1, 2], \"timestamps\": [9, 1]}\n".to_vec(),
            ":1:",
        ),
        (
            "empty history",
            format!("{ok}{ok}{{\"user_id\": 2, \"items\": [], \"timestamps\": []}}\n").into_bytes(),
            ":3:",
        ),
        (
            "malformed json",
            format!("{ok}{{\"user_id\": 2, \"items\": [1\n").into_bytes(),
            ":2:",
        ),
        ("binary garbage", b"\x00\xff\xfe\x13garbage".to_vec(), ":1:"),
        ("empty file", Vec::new(), "no sequences"),
        (
            "candidate out of range",
            b"{\"user_id\": 2, \"items\": [1], \"timestamps\": [1], \"candidates\": [999]}\n"
                .to_vec(),
            ":1:",
        ),
    ];
    for (case, text, needle) in cases {
        let p = sequences_file(&case.replace(' ', "-"), &text);
        let args = retrieve(Path::new(GOLDEN), &p.display().to_string());
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        expect_rejected(case, &args, &["seqs.jsonl", needle]);
    }
}

#[test]
fn missing_paths_and_bad_flags_rejected() {
    expect_rejected(
        "no model dir",
        &["info", "--model", "/nonexistent/model"],
        &["/nonexistent/model"],
    );
    let args = retrieve(Path::new(GOLDEN), &golden("sequences.jsonl"));
    let mut args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    args[6] = "0";
    expect_rejected("top-k 0", &args, &["top-k"]);
}
