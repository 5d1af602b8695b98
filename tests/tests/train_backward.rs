//! The CPU backward against the goldens (spec section 9) and finite differences (f64).

use hstu_runtime::checkpoint::{Weights, load_raw, load_weights};
use hstu_runtime::config::{ModelConfig, RankingConfig};
use hstu_runtime::data::UserHistory;
use hstu_runtime::data::ranking::example_at;
use hstu_runtime::real::Real;
use hstu_runtime::reference::attention::AttentionParams;
use hstu_runtime::reference::encoder::Tokens;
use hstu_runtime::reference::{forward_tokens, hstu_attention};
use hstu_runtime::rng::Rng;
use hstu_runtime::sequences::{SequenceFile, UserSequence};
use hstu_runtime::tensor::Mat;
use hstu_runtime::train::grads::{Grads, tensors_mut};
use hstu_runtime::train::hstu_attention_backward;
use hstu_runtime::train::loss::SampledSoftmax;
use hstu_runtime::train::ops::l2_normalize_backward;
use hstu_runtime::train::step::{ranking_example, retrieval_example};
use hstu_runtime::train::tape::{Dropout, RabIndex, backward, forward};
use hstu_tests::{golden_dir, max_abs_diff};

/// f32 backward vs the reference's f64 gradients, relative to the tensor's largest gradient
/// (measured: 2.1e-6 worst, on layer 0 `_uvqk`).
const F32_GRAD_RELATIVE: f64 = 1e-4;
/// f64 backward on the same f32 weights: only summation order differs (measured 1e-15).
const F64_GRAD_RELATIVE: f64 = 1e-10;
/// Central differences in f64 with h = 1e-6: truncation O(h^2) and rounding O(eps / h).
const FINITE_DIFFERENCE: f64 = 1e-6;

/// Gradients of `sum(sequence_embeddings * W)` over the golden users, dropout off.
type Golden = std::collections::BTreeMap<String, hstu_runtime::checkpoint::RawTensor>;

fn golden_grads<R: Real>() -> (Vec<(String, Vec<f64>)>, Golden) {
    let dir = golden_dir("retrieval_small");
    let cfg = ModelConfig::load(&dir.join("config.json")).unwrap();
    let (w, _) = load_weights::<R>(&dir.join("model.safetensors"), &cfg).unwrap();
    let seqs = SequenceFile::load(&dir.join("sequences.jsonl"), &cfg)
        .unwrap()
        .sequences;
    let expected = load_raw(&dir.join("expected.safetensors")).unwrap();
    let lw = &expected["loss_weights"].values;
    let mut g = Grads::zeros(&w);
    let d = cfg.embedding_dim;
    let mut row = 0;
    for s in &seqs {
        let tokens = Tokens::new(s, &[]);
        let index = RabIndex::new(&cfg, &tokens);
        let tape = forward(&cfg, &w, &tokens, &index, Dropout::OFF, None);
        let mut de = Mat::zeros(tape.e.rows, d);
        for t in 0..tape.e.rows {
            let wt: Vec<R> = lw[(row + t) * d..][..d]
                .iter()
                .map(|&x| R::from_f64c(x))
                .collect();
            de.row_mut(t).copy_from_slice(&l2_normalize_backward(
                tape.e.row(t),
                &wt,
                cfg.l2_norm_eps,
            ));
        }
        row += tape.e.rows;
        backward(&cfg, &w, &tokens, &index, &tape, de, &mut g.w);
    }
    assert_eq!(row * d, lw.len(), "loss_weights rows = sum L");
    let grads =
        g.w.named()
            .into_iter()
            .map(|(n, _, v)| (n, v.iter().map(|x| x.to_f64c()).collect()))
            .collect();
    (grads, expected)
}

fn check_golden_grads<R: Real>(tol: f64) {
    let (grads, expected) = golden_grads::<R>();
    for (name, got) in grads {
        let want = &expected[&format!("grad.{name}")].values;
        let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
        let (err, i) = max_abs_diff(&got, want);
        assert!(
            err / scale < tol,
            "grad.{name}: relative error {:.3e} at {i}: got {} want {} (tolerance {tol})",
            err / scale,
            got[i],
            want[i]
        );
    }
}

#[test]
fn retrieval_small_grads_f32() {
    check_golden_grads::<f32>(F32_GRAD_RELATIVE);
}

#[test]
fn retrieval_small_grads_f64() {
    check_golden_grads::<f64>(F64_GRAD_RELATIVE);
}

#[test]
fn training_forward_equals_reference_forward() {
    let dir = golden_dir("retrieval_small");
    let cfg = ModelConfig::load(&dir.join("config.json")).unwrap();
    let (w, _) = load_weights::<f64>(&dir.join("model.safetensors"), &cfg).unwrap();
    let seqs = SequenceFile::load(&dir.join("sequences.jsonl"), &cfg)
        .unwrap()
        .sequences;
    for s in &seqs {
        let tokens = Tokens::new(s, &[3, 7, 7]);
        let tape = forward(
            &cfg,
            &w,
            &tokens,
            &RabIndex::new(&cfg, &tokens),
            Dropout::OFF,
            None,
        );
        let want = forward_tokens(&cfg, &w, &tokens, None);
        let (err, i) = max_abs_diff(&tape.e.data, &want.data);
        assert!(err < 1e-12, "user {}: error {err} at {i}", s.user_id);
    }
}

/// dq, dk, dv of the production-style operator (alpha, n from the file, no rab).
fn check_attention_backward(case: &str) {
    let t = load_raw(&golden_dir(case).join("attention.safetensors")).unwrap();
    let shape = &t["q"].shape;
    let offsets: Vec<usize> = t["seq_offsets"]
        .values
        .iter()
        .map(|&x| x as usize)
        .collect();
    let targets: Option<Vec<usize>> = t
        .get("num_targets")
        .map(|x| x.values.iter().map(|&v| v as usize).collect());
    let p = AttentionParams {
        heads: shape[1],
        dqk: shape[2],
        dv: t["v"].shape[2],
        alpha: t["alpha"].values[0],
        n: t["max_seq_len"].values[0],
        max_attn_len: t["max_attn_len"].values[0] as usize,
    };
    let g = hstu_attention_backward(
        &t["q"].values,
        &t["k"].values,
        &t["v"].values,
        &offsets,
        targets.as_deref(),
        &p,
        None,
        &t["dout"].values,
        None,
    );
    for (name, got) in [("dq", &g.dq), ("dk", &g.dk), ("dv", &g.dv)] {
        let (err, i) = max_abs_diff(got, &t[name].values);
        assert!(err < 1e-10, "{case} {name}: error {err} at {i}");
    }
    let f = |x: &str| t[x].values.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    let g32 = hstu_attention_backward(
        &f("q"),
        &f("k"),
        &f("v"),
        &offsets,
        targets.as_deref(),
        &p,
        None,
        &f("dout"),
        None,
    );
    for (name, got) in [("dq", &g32.dq), ("dk", &g32.dk), ("dv", &g32.dv)] {
        let got: Vec<f64> = got.iter().map(|&x| x as f64).collect();
        let want = &t[name].values;
        let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let (err, i) = max_abs_diff(&got, want);
        assert!(
            err / scale < 1e-4,
            "{case} {name} f32: relative error {} at {i}",
            err / scale
        );
    }
}

#[test]
fn attention_causal_backward() {
    check_attention_backward("attention_causal");
}

#[test]
fn attention_targets_backward() {
    check_attention_backward("attention_targets");
}

#[test]
fn attention_rab_grads_match_finite_differences() {
    let p = AttentionParams {
        heads: 2,
        dqk: 3,
        dv: 2,
        alpha: 0.7,
        n: 9.0,
        max_attn_len: 0,
    };
    let offsets = [0, 4, 9];
    let targets = [0, 2];
    let mut rng = Rng::new(3);
    let mut draw = |n: usize| (0..n).map(|_| rng.normal()).collect::<Vec<f64>>();
    let (q, k, v, dout) = (draw(9 * 6), draw(9 * 6), draw(9 * 4), draw(9 * 4));
    // rab(b, i, j) = r[b][i * 5 + j]
    let rab0 = draw(2 * 25);
    let loss = |q: &[f64], k: &[f64], v: &[f64], rab: &[f64]| -> f64 {
        let f = |b: usize, i: usize, j: usize| rab[b * 25 + i * 5 + j];
        let out = hstu_attention(q, k, v, &offsets, Some(&targets), &p, Some(&f), None);
        out.iter().zip(&dout).map(|(a, b)| a * b).sum()
    };
    let f = |b: usize, i: usize, j: usize| rab0[b * 25 + i * 5 + j];
    let mut d_rab = vec![0.0; 50];
    let mut sink = |b: usize, i: usize, j: usize, ds: f64| d_rab[b * 25 + i * 5 + j] += ds;
    let g = hstu_attention_backward(
        &q,
        &k,
        &v,
        &offsets,
        Some(&targets),
        &p,
        Some(&f),
        &dout,
        Some(&mut sink),
    );
    let h = 1e-6;
    let fd = |which: usize, idx: usize| {
        let mut xs = [q.clone(), k.clone(), v.clone(), rab0.clone()];
        xs[which][idx] += h;
        let up = loss(&xs[0], &xs[1], &xs[2], &xs[3]);
        xs[which][idx] -= 2.0 * h;
        (up - loss(&xs[0], &xs[1], &xs[2], &xs[3])) / (2.0 * h)
    };
    for (which, grad) in [(0, &g.dq), (1, &g.dk), (2, &g.dv), (3, &d_rab)] {
        for (idx, &an) in grad.iter().enumerate() {
            let num = fd(which, idx);
            assert!(
                (num - an).abs() < FINITE_DIFFERENCE,
                "input {which} index {idx}: fd {num} vs {an}"
            );
        }
    }
}

fn tiny_ranking_config() -> ModelConfig {
    ModelConfig {
        ranking: Some(RankingConfig {
            num_actions: 6,
            mlp_hidden_dim: 5,
            task_thresholds: vec![4, 3],
        }),
        ..ModelConfig::tiny_for_tests()
    }
}

/// Check `grad` against central differences of `loss` on a sample of every tensor's entries.
fn check_fd(
    w: &Weights<f64>,
    grad: &Weights<f64>,
    loss: &dyn Fn(&Weights<f64>) -> f64,
    what: &str,
) {
    let h = 1e-6;
    let names: Vec<String> = w.named().into_iter().map(|(n, _, _)| n).collect();
    let grads: Vec<Vec<f64>> = grad
        .named()
        .into_iter()
        .map(|(_, _, v)| v.to_vec())
        .collect();
    let mut pick = Rng::new(9);
    for (ti, name) in names.iter().enumerate() {
        let len = grads[ti].len();
        // the largest-gradient entry plus a few random ones
        let top = (0..len)
            .max_by(|&a, &b| grads[ti][a].abs().total_cmp(&grads[ti][b].abs()))
            .unwrap_or(0);
        let mut idx = vec![top];
        idx.extend((0..6).map(|_| pick.below(len as u64) as usize));
        for i in idx {
            let mut wp = w.clone();
            tensors_mut(&mut wp)[ti][i] += h;
            let up = loss(&wp);
            tensors_mut(&mut wp)[ti][i] -= 2.0 * h;
            let fd = (up - loss(&wp)) / (2.0 * h);
            let an = grads[ti][i];
            assert!(
                (fd - an).abs() < FINITE_DIFFERENCE * (1.0 + an.abs()),
                "{what}: {name}[{i}]: fd {fd} vs backward {an}"
            );
        }
    }
}

fn history(n: usize, seed: u64) -> UserHistory {
    let mut rng = Rng::new(seed);
    let mut t = 1_000_000i64;
    UserHistory {
        user_id: seed as i64,
        items: (0..n).map(|_| 1 + rng.below(40) as u32).collect(),
        timestamps: (0..n)
            .map(|_| {
                t += rng.below(100_000) as i64;
                t
            })
            .collect(),
        ratings: (0..n).map(|_| 1.0 + rng.below(5) as f32).collect(),
    }
}

#[test]
fn sampled_softmax_grads_match_finite_differences_with_dropout() {
    let cfg = ModelConfig::tiny_for_tests();
    let w = Weights::<f64>::seeded(&cfg, 5);
    let mut seq = UserSequence::new(
        1,
        vec![4, 9, 1, 30, 22, 9],
        vec![100, 160, 5000, 5000, 90000, 90010],
    );
    seq.query_time = Some(200_000);
    seq.target = Some(17);
    let loss = SampledSoftmax {
        num_negatives: 16,
        temperature: 0.05,
        num_items: cfg.num_items,
    };
    let dropout = Dropout {
        input: 0.2,
        linear: 0.2,
    };
    let run = |w: &Weights<f64>, g: &mut Grads<f64>| {
        let items =
            hstu_runtime::reference::retrieval::normalized_items(&w.item_emb, cfg.l2_norm_eps);
        retrieval_example(&cfg, w, &items, &loss, dropout, &seq, &mut Rng::new(77), g)
            .0
            .sum
    };
    let mut g = Grads::zeros(&w);
    run(&w, &mut g);
    let grad = g.finish(&w, cfg.l2_norm_eps);
    check_fd(
        &w,
        &grad,
        &|w| run(w, &mut Grads::zeros(w)),
        "sampled softmax",
    );
}

#[test]
fn ranking_grads_match_finite_differences() {
    let cfg = tiny_ranking_config();
    let w = Weights::<f64>::seeded(&cfg, 6);
    let user = history(14, 3);
    let ex = example_at(&user, 8, 14, cfg.max_sequence_len).unwrap();
    assert_eq!(ex.sequence.candidates.len(), 6);
    let dropout = Dropout {
        input: 0.2,
        linear: 0.2,
    };
    let run = |w: &Weights<f64>, g: &mut Grads<f64>| {
        ranking_example(&cfg, w, dropout, &ex, &mut Rng::new(78), g)
            .0
            .sum
    };
    let mut g = Grads::zeros(&w);
    run(&w, &mut g);
    let grad = g.finish(&w, cfg.l2_norm_eps);
    assert!(
        grad.ranking
            .as_ref()
            .unwrap()
            .action_emb
            .data
            .iter()
            .any(|&x| x != 0.0)
    );
    check_fd(&w, &grad, &|w| run(w, &mut Grads::zeros(w)), "ranking BCE");
}
