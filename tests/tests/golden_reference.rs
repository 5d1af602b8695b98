//! The CPU reference against `golden/` (spec section 9).

use hstu_runtime::checkpoint::{Model, load_raw, load_weights};
use hstu_runtime::config::ModelConfig;
use hstu_runtime::real::Real;
use hstu_runtime::reference::{self, AttentionParams, encode_user, hstu_attention};
use hstu_runtime::sequences::SequenceFile;
use hstu_tests::{golden_dir, max_abs_diff};

/// f64 reference on f32 weights vs the reference's f64 run: only summation order differs.
const F64_REFERENCE: f64 = 1e-10;
/// f32 reference vs f64 golden (spec section 9: "about 1e-5 absolute").
const F32_REFERENCE: f64 = 1e-5;

fn check_retrieval<R: Real>(tol: f64) {
    let dir = golden_dir("retrieval_small");
    let cfg = ModelConfig::load(&dir.join("config.json")).unwrap();
    let (w, _) = load_weights::<R>(&dir.join("model.safetensors"), &cfg).unwrap();
    let seqs = SequenceFile::load(&dir.join("sequences.jsonl"), &cfg)
        .unwrap()
        .sequences;
    let expected = load_raw(&dir.join("expected.safetensors")).unwrap();
    let (mut users, mut all) = (Vec::new(), Vec::new());
    let items = reference::retrieval::normalized_items(&w.item_emb, cfg.l2_norm_eps);
    for (b, s) in seqs.iter().enumerate() {
        let out = encode_user(&cfg, &w, s);
        users.extend(out.user_embedding.iter().map(|x| x.to_f64c()));
        all.extend(out.sequence_embeddings.data.iter().map(|x| x.to_f64c()));
        let top = reference::retrieve_top_k(&out.user_embedding, &items, &s.items, 10);
        let want: Vec<u32> = expected["topk_items"].values[b * 10..(b + 1) * 10]
            .iter()
            .map(|&x| x as u32)
            .collect();
        assert_eq!(top.items, want, "user {b}: top-10 ids");
        let (err, i) = max_abs_diff(
            &top.scores.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            &expected["topk_scores"].values[b * 10..(b + 1) * 10],
        );
        assert!(
            err < tol.max(1e-6),
            "user {b}: top-10 score error {err} at {i}"
        );
    }
    let (err, i) = max_abs_diff(&users, &expected["user_embeddings"].values);
    assert!(
        err < tol,
        "user_embeddings: max error {err} at {i} (tolerance {tol})"
    );
    let (err, i) = max_abs_diff(&all, &expected["sequence_embeddings"].values);
    assert!(
        err < tol,
        "sequence_embeddings: max error {err} at {i} (tolerance {tol})"
    );
}

#[test]
fn retrieval_small_f64() {
    check_retrieval::<f64>(F64_REFERENCE);
}

#[test]
fn retrieval_small_f32() {
    check_retrieval::<f32>(F32_REFERENCE);
}

#[test]
fn ranking_candidates_small_one_pass_and_microbatched() {
    let dir = golden_dir("ranking_candidates_small");
    let model = Model::load(&dir).unwrap();
    let cfg = &model.config;
    let (w, _) = load_weights::<f64>(&dir.join("model.safetensors"), cfg).unwrap();
    let seqs = SequenceFile::load(&dir.join("sequences.jsonl"), cfg)
        .unwrap()
        .sequences;
    let expected = load_raw(&dir.join("expected.safetensors")).unwrap();
    let offsets: Vec<usize> = expected["candidate_offsets"]
        .values
        .iter()
        .map(|&x| x as usize)
        .collect();
    for mb in [1, 7, usize::MAX] {
        let mut got = Vec::new();
        for s in &seqs {
            let m = s.candidates.len().max(1);
            got.extend(reference::rank_candidates(cfg, &w, s, mb.min(m)).data);
        }
        assert_eq!(got.len(), offsets.last().unwrap() * cfg.embedding_dim);
        let (err, i) = max_abs_diff(&got, &expected["candidate_embeddings"].values);
        assert!(err < F64_REFERENCE, "microbatch {mb}: error {err} at {i}");
    }
    for s in &seqs {
        let one = reference::ranking::candidates_one_pass(cfg, &w, s);
        let mf = reference::rank_candidates(cfg, &w, s, 3);
        let (err, _) = max_abs_diff(&one.data, &mf.data);
        assert!(err < 1e-12, "one pass vs M-FALCON: {err}");
    }
}

/// The production-style operator of spec section 6 (no rab) against `attention_*`.
fn check_attention(case: &str) {
    let t = load_raw(&golden_dir(case).join("attention.safetensors")).unwrap();
    let shape = &t["q"].shape;
    let (heads, dqk, dv) = (shape[1], shape[2], t["v"].shape[2]);
    let offsets: Vec<usize> = t["seq_offsets"]
        .values
        .iter()
        .map(|&x| x as usize)
        .collect();
    let targets: Option<Vec<usize>> = t
        .get("num_targets")
        .map(|x| x.values.iter().map(|&v| v as usize).collect());
    let p = AttentionParams {
        heads,
        dqk,
        dv,
        alpha: t["alpha"].values[0],
        n: t["max_seq_len"].values[0],
        max_attn_len: t["max_attn_len"].values[0] as usize,
    };
    let out = hstu_attention(
        &t["q"].values,
        &t["k"].values,
        &t["v"].values,
        &offsets,
        targets.as_deref(),
        &p,
        None,
        None,
    );
    let (err, i) = max_abs_diff(&out, &t["out"].values);
    assert!(err < F64_REFERENCE, "{case}: out error {err} at {i}");
    let q32: Vec<f32> = t["q"].values.iter().map(|&x| x as f32).collect();
    let k32: Vec<f32> = t["k"].values.iter().map(|&x| x as f32).collect();
    let v32: Vec<f32> = t["v"].values.iter().map(|&x| x as f32).collect();
    let out32 = hstu_attention(
        &q32,
        &k32,
        &v32,
        &offsets,
        targets.as_deref(),
        &p,
        None,
        None,
    );
    let out32: Vec<f64> = out32.iter().map(|&x| x as f64).collect();
    let (err, i) = max_abs_diff(&out32, &t["out"].values);
    assert!(err < F32_REFERENCE, "{case}: f32 out error {err} at {i}");
}

#[test]
fn attention_causal_forward() {
    check_attention("attention_causal");
}

#[test]
fn attention_targets_forward() {
    check_attention("attention_targets");
}
