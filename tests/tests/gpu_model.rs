//! The whole model on every adapter: `--device gpu` reproduces golden/retrieval_small (embeddings
//! within 1e-4, top-10 ids equal), the item table split across bindings changes nothing, M-FALCON
//! equals the CPU reference and the one-pass form for any micro-batch size, and the attention
//! capture equals the reference's.

use hstu_runtime::checkpoint::{Model, load_raw};
use hstu_runtime::gpu::{GpuModel, UploadOptions};
use hstu_runtime::reference;
use hstu_runtime::sequences::SequenceFile;
use hstu_tests::golden_dir;
use hstu_tests::gpu::{Tolerance, assert_close, for_each_adapter};

fn load(case: &str) -> (Model, Vec<hstu_runtime::sequences::UserSequence>) {
    let dir = golden_dir(case);
    let model = Model::load(&dir).unwrap();
    let seqs = SequenceFile::load(&dir.join("sequences.jsonl"), &model.config)
        .unwrap()
        .sequences;
    (model, seqs)
}

#[test]
fn gpu_retrieval_small_golden() {
    let (model, seqs) = load("retrieval_small");
    let expected = load_raw(&golden_dir("retrieval_small").join("expected.safetensors")).unwrap();
    for_each_adapter("retrieval_small", |ctx| {
        let gpu = GpuModel::upload(ctx, &model).unwrap();
        let out = gpu.encode(&seqs).unwrap();
        assert_close(
            "user_embeddings",
            &out.user_embeddings,
            &expected["user_embeddings"].values,
            Tolerance::F32_GOLDEN,
        );
        assert_close(
            "sequence_embeddings",
            &out.sequence_embeddings,
            &expected["sequence_embeddings"].values,
            Tolerance::F32_GOLDEN,
        );
        let want_offsets: Vec<i64> = expected["seq_offsets"]
            .values
            .iter()
            .map(|&x| x as i64)
            .collect();
        assert_eq!(out.seq_offsets, want_offsets);
        let top = gpu.retrieve(&seqs, 10).unwrap();
        for (b, t) in top.iter().enumerate() {
            let want: Vec<u32> = expected["topk_items"].values[b * 10..(b + 1) * 10]
                .iter()
                .map(|&x| x as u32)
                .collect();
            assert_eq!(t.items, want, "user {b}: top-10 ids");
            assert_close(
                &format!("user {b} top-10 scores"),
                &t.scores,
                &expected["topk_scores"].values[b * 10..(b + 1) * 10],
                Tolerance::F32_GOLDEN,
            );
        }
    });
}

#[test]
fn gpu_item_table_split_across_bindings() {
    let (model, seqs) = load("retrieval_small");
    for_each_adapter("item table split", |ctx| {
        let whole = GpuModel::upload(ctx, &model).unwrap();
        let opts = UploadOptions {
            max_item_rows_per_binding: Some(7),
        };
        let split = GpuModel::upload_with(ctx, &model.config, &model.weights, opts).unwrap();
        println!("item table in {} bindings", split.item_bindings());
        assert!(split.item_bindings() > 1);
        let a = whole.encode(&seqs).unwrap();
        let b = split.encode(&seqs).unwrap();
        let a64: Vec<f64> = a.sequence_embeddings.iter().map(|&x| x as f64).collect();
        assert_close(
            "split encode",
            &b.sequence_embeddings,
            &a64,
            Tolerance::F32_KERNEL,
        );
        let k = 25.min(model.config.num_items);
        assert_eq!(
            whole.retrieve(&seqs, k).unwrap(),
            split.retrieve(&seqs, k).unwrap()
        );
    });
}

#[test]
fn gpu_mfalcon_equals_reference_for_any_microbatch() {
    let (model, seqs) = load("ranking_candidates_small");
    let expected =
        load_raw(&golden_dir("ranking_candidates_small").join("expected.safetensors")).unwrap();
    let want = &expected["candidate_embeddings"].values;
    let cfg = &model.config;
    for_each_adapter("m-falcon", |ctx| {
        let gpu = GpuModel::upload(ctx, &model).unwrap();
        for mb in [1, 3, 0] {
            let got: Vec<f32> = gpu.rank(&seqs, mb).unwrap().into_iter().flatten().collect();
            assert_close(
                &format!("m-falcon microbatch {mb}"),
                &got,
                want,
                Tolerance::F32_GOLDEN,
            );
        }
        for s in &seqs {
            let cache = gpu.prefill(s).unwrap();
            let mf = gpu.score_candidates(&cache, &s.candidates).unwrap();
            let one = gpu.candidates_one_pass(s, &s.candidates).unwrap();
            let one64: Vec<f64> = one.iter().map(|&x| x as f64).collect();
            assert_close(
                "gpu m-falcon vs gpu one pass",
                &mf,
                &one64,
                Tolerance::F32_KERNEL,
            );
            let cpu = reference::rank_candidates(cfg, &model.weights, s, 2);
            let cpu64: Vec<f64> = cpu.data.iter().map(|&x| x as f64).collect();
            assert_close(
                "gpu m-falcon vs cpu f32",
                &mf,
                &cpu64,
                Tolerance::F32_GOLDEN,
            );
        }
    });
}

#[test]
fn gpu_capture_attention_matches_reference() {
    let (model, seqs) = load("retrieval_small");
    for_each_adapter("capture_attention", |ctx| {
        let gpu = GpuModel::upload(ctx, &model).unwrap();
        let s = &seqs[0];
        let got = gpu.capture_attention(s).unwrap();
        let want = reference::encoder::capture_attention(&model.config, &model.weights, s);
        assert_eq!(got.len(), want.len());
        for (l, (g, w)) in got.iter().zip(&want).enumerate() {
            for (h, (gh, wh)) in g.iter().zip(&w.heads).enumerate() {
                let w64: Vec<f64> = wh.data.iter().map(|&x| x as f64).collect();
                assert_close(
                    &format!("layer {l} head {h} a_ij"),
                    gh,
                    &w64,
                    Tolerance::F32_KERNEL,
                );
            }
        }
    });
}
