//! The GPU model path on shapes the goldens do not cover, on every adapter, against the CPU
//! reference in f64 on the same f32 weights: odd embedding dims, one to eight heads, head dims that
//! are not multiples of 4 or exceed `main_small`'s 32 (so attention takes other forms), with and
//! without action embeddings. Per shape: encode (user and sequence embeddings), retrieval top-10
//! (ids equal up to score ties, scores close), M-FALCON candidates for two micro-batch sizes and
//! the attention capture. `gpu_hstu_large_shapes_equal_reference` runs the same checks on the
//! spec's HSTU-large shapes with their catalogues and 200-item histories (ML-1M: D = 50, 8 blocks x
//! 2 heads x 25; ML-20M: D = 256, 16 x 8 x 32 over 131,262 items, whose item table is larger than
//! some adapters' storage binding limit).

use hstu_runtime::checkpoint::Weights;
use hstu_runtime::config::{ModelConfig, RankingConfig};
use hstu_runtime::gpu::{GpuContext, GpuModel, UploadOptions};
use hstu_runtime::reference::{self, retrieval::normalized_items};
use hstu_runtime::rng::Rng;
use hstu_runtime::sequences::UserSequence;
use hstu_runtime::tensor::{Mat, dot};
use hstu_shaders::Variant;
use hstu_tests::gpu::{Tolerance, assert_close, for_each_adapter, supports};
use hstu_tests::max_abs_diff;
use std::collections::HashSet;

/// One model shape: embedding dim, blocks, heads, dqk, dv, and whether it has a ranking head
/// (history tokens then add action embeddings); the catalogue and sequence sizes.
#[derive(Clone, Copy, Debug)]
struct Shape {
    d: usize,
    blocks: usize,
    heads: usize,
    dqk: usize,
    dv: usize,
    ranking: bool,
    num_items: usize,
    max_sequence_len: usize,
    max_output_len: usize,
    /// How many of the users of `lengths` (at least 4: user 1 is ranked, user 3 captured).
    users: usize,
    /// M-FALCON for every size of `MICROBATCHES` and against the GPU's one pass; else for the
    /// first size only (a 16-layer D = 256 pass takes lavapipe over ten seconds).
    full_mfalcon: bool,
}

const fn shape(
    d: usize,
    blocks: usize,
    heads: usize,
    dqk: usize,
    dv: usize,
    ranking: bool,
) -> Shape {
    Shape {
        d,
        blocks,
        heads,
        dqk,
        dv,
        ranking,
        num_items: 400,
        max_sequence_len: 64,
        max_output_len: 5,
        users: 9,
        full_mfalcon: true,
    }
}

/// With `Auto` as written today, dqk, dv <= 32 run `main_small`; 40/40 runs the register-tiled
/// `main` (`main_big` needs hundreds of workgroups and head dims that are multiples of 4, which
/// 25 is not).
const SHAPES: [Shape; 5] = [
    shape(48, 3, 3, 16, 24, false),
    shape(64, 2, 8, 8, 8, true),
    shape(40, 1, 5, 40, 40, false),
    shape(96, 4, 2, 32, 16, true),
    shape(50, 2, 8, 25, 25, false),
];

/// The spec's HSTU-large configurations (section 7) with their catalogues (MovieLens-1M: 3,952
/// items; MovieLens-20M: 131,262) and N = 200 + 11.
const HSTU_LARGE: [Shape; 2] = [
    Shape {
        num_items: 3952,
        max_sequence_len: 200,
        max_output_len: 11,
        users: 5,
        ..shape(50, 8, 2, 25, 25, false)
    },
    Shape {
        num_items: 131_262,
        max_sequence_len: 200,
        max_output_len: 11,
        users: 5,
        full_mfalcon: false,
        ..shape(256, 16, 8, 32, 32, false)
    },
];

/// History lengths of the users, 1 and the longest (`max`) among them; user 1 (full length) is
/// the ranked one, user 3 the captured one.
fn lengths(max: usize) -> [usize; 9] {
    [1, max, 2, 17, 33, 5, max, 48.min(max), 9]
}
const TOP_K: usize = 10;
const NUM_CANDIDATES: usize = 20;
/// Two micro-batch sizes that do not divide `NUM_CANDIDATES` (a partial last batch each).
const MICROBATCHES: [usize; 2] = [3, 7];
/// CPU scores closer than this are a tie that f32 rounding on the GPU may order either way: GPU
/// user embeddings are within 4.2e-7 of the reference per component (measured, llvmpipe Vulkan
/// and GL), so a score moves by at most sqrt(96) * 4.2e-7 = 4e-6.
const SCORE_TIE: f64 = 1e-5;

fn config(s: Shape) -> ModelConfig {
    ModelConfig {
        num_items: s.num_items,
        embedding_dim: s.d,
        num_blocks: s.blocks,
        num_heads: s.heads,
        attention_dim: s.dqk,
        linear_dim: s.dv,
        max_sequence_len: s.max_sequence_len,
        max_output_len: s.max_output_len,
        ranking: s.ranking.then(|| RankingConfig {
            num_actions: 6,
            mlp_hidden_dim: 16,
            task_thresholds: vec![4, 3],
        }),
        ..ModelConfig::tiny_for_tests()
    }
}

/// Users of `lengths` with random items, time gaps from 0 s to about two weeks (so the time bias
/// spans many buckets), a query time after the last item, ratings when the model has actions, and
/// `NUM_CANDIDATES` candidates for the second (longest) user.
fn users(cfg: &ModelConfig, count: usize, seed: u64) -> Vec<UserSequence> {
    let mut rng = Rng::new(seed);
    lengths(cfg.max_sequence_len)[..count]
        .iter()
        .enumerate()
        .map(|(u, &len)| {
            let items = (0..len)
                .map(|_| 1 + rng.below(cfg.num_items as u64) as u32)
                .collect();
            let mut t = 1_000_000_000;
            let timestamps = (0..len)
                .map(|_| {
                    t += gap(&mut rng);
                    t
                })
                .collect();
            let mut s = UserSequence::new(u as i64, items, timestamps);
            s.query_time = Some(t + gap(&mut rng));
            if let Some(r) = &cfg.ranking {
                s.ratings = Some(
                    (0..len)
                        .map(|_| rng.below(r.num_actions as u64) as u8)
                        .collect(),
                );
            }
            if u == 1 {
                s.candidates = (0..NUM_CANDIDATES)
                    .map(|_| 1 + rng.below(cfg.num_items as u64) as u32)
                    .collect();
            }
            s
        })
        .collect()
}

/// 0 s to about two weeks, log-uniform.
fn gap(rng: &mut Rng) -> i64 {
    (rng.uniform() * 14.0).exp() as i64 - 1
}

/// The CPU reference of one shape, computed once for every adapter.
struct Expected {
    /// [B, D]
    user_embeddings: Vec<f64>,
    /// [sum L, D]
    sequence_embeddings: Vec<f64>,
    /// L2-normalised item table [num_items + 1, D]
    items: Mat<f64>,
    /// Final `e_c` of the ranked user's candidates [m, D].
    candidates: Vec<f64>,
}

fn expected(cfg: &ModelConfig, w: &Weights<f64>, seqs: &[UserSequence]) -> Expected {
    let out = reference::encode_batch(cfg, w, seqs);
    Expected {
        user_embeddings: out.iter().flat_map(|o| o.user_embedding.clone()).collect(),
        sequence_embeddings: out
            .iter()
            .flat_map(|o| o.sequence_embeddings.data.clone())
            .collect(),
        items: normalized_items(&w.item_emb, cfg.l2_norm_eps),
        candidates: reference::rank_candidates(cfg, w, &seqs[1], NUM_CANDIDATES).data,
    }
}

/// Max |error| of each output, for the per-shape summary line.
#[derive(Default)]
struct Errors {
    user: f64,
    sequence: f64,
    scores: f64,
    ties: usize,
    candidates: f64,
    capture: Option<f64>,
}

/// `assert_close`, returning the max |error|.
fn check(what: &str, actual: &[f32], expected: &[f64], tol: Tolerance) -> f64 {
    assert_close(what, actual, expected, tol);
    let actual: Vec<f64> = actual.iter().map(|&x| x as f64).collect();
    max_abs_diff(&actual, expected).0
}

/// One shape with its weights, users and CPU reference outputs.
struct Case {
    name: String,
    full_mfalcon: bool,
    cfg: ModelConfig,
    w: Weights<f32>,
    w64: Weights<f64>,
    seqs: Vec<UserSequence>,
    want: Expected,
}

fn case(s: Shape) -> Case {
    let cfg = config(s);
    cfg.validate().unwrap();
    let w = Weights::<f32>::seeded(&cfg, 17 + s.d as u64);
    let w64 = w.cast::<f64>();
    let seqs = users(&cfg, s.users, 3 + s.heads as u64);
    let want = expected(&cfg, &w64, &seqs);
    let name = format!(
        "D={} blocks={} heads={} dqk={} dv={} items={} L<={}{}",
        s.d,
        s.blocks,
        s.heads,
        s.dqk,
        s.dv,
        s.num_items,
        s.max_sequence_len,
        if s.ranking { " +actions" } else { "" }
    );
    Case {
        name,
        full_mfalcon: s.full_mfalcon,
        cfg,
        w,
        w64,
        seqs,
        want,
    }
}

#[test]
fn gpu_model_shapes_equal_reference() {
    run_shapes("gpu shapes", &SHAPES);
}

#[test]
fn gpu_hstu_large_shapes_equal_reference() {
    run_shapes("gpu hstu-large shapes", &HSTU_LARGE);
}

/// The CPU reference of every shape, then every check of every shape on every adapter.
fn run_shapes(what: &str, shapes: &[Shape]) {
    let start = std::time::Instant::now();
    let cases: Vec<Case> = shapes.iter().copied().map(case).collect();
    println!(
        "{what}: cpu reference: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    for_each_adapter(what, |ctx| {
        let adapter = format!("{} ({:?})", ctx.info.name, ctx.info.backend);
        for c in &cases {
            let name = &c.name;
            if !supports(ctx, name, Variant::F32) {
                continue;
            }
            let e = run_shape(ctx, c);
            println!(
                "[{name}] on {adapter}: max |error| user {:.2e}, sequence {:.2e}, \
                 top-{TOP_K} scores {:.2e} ({} tied ranks), m-falcon e_c {:.2e}, capture {}",
                e.user,
                e.sequence,
                e.scores,
                e.ties,
                e.candidates,
                e.capture.map_or("skipped".into(), |x| format!("{x:.2e}")),
            );
        }
    });
    println!("{what}: {:.1} s", start.elapsed().as_secs_f64());
}

/// Every check of one shape on one adapter.
fn run_shape(ctx: &GpuContext, c: &Case) -> Errors {
    let (name, seqs, want) = (c.name.as_str(), c.seqs.as_slice(), &c.want);
    let t = std::time::Instant::now();
    let lap = |phase: &str| {
        eprintln!(
            "[{name}] {phase} done at {:.1} s",
            t.elapsed().as_secs_f64()
        )
    };
    let gpu = GpuModel::upload_with(ctx, &c.cfg, &c.w, UploadOptions::default()).unwrap();
    let (rows, row_bytes) = (c.cfg.num_items + 1, c.cfg.embedding_dim * 4);
    let table = rows * row_bytes;
    let limit = ctx.limits().max_storage_buffer_binding_size;
    let rows_per_binding = limit.min(ctx.limits().max_buffer_size) as usize / row_bytes;
    assert_eq!(
        gpu.item_bindings(),
        rows.div_ceil(rows_per_binding),
        "[{name}] item table of {table} bytes, storage binding limit {limit}"
    );
    lap(&format!(
        "upload (item table {:.1} MiB in {} binding(s), limit {} MiB)",
        table as f64 / (1 << 20) as f64,
        gpu.item_bindings(),
        limit >> 20
    ));
    let out = gpu.encode(seqs).unwrap();
    lap("encode");
    let lengths: Vec<i64> = out.seq_offsets.windows(2).map(|w| w[1] - w[0]).collect();
    let want_lengths: Vec<i64> = seqs.iter().map(|s| s.items.len() as i64).collect();
    assert_eq!(lengths, want_lengths, "[{name}] seq_offsets");
    let mut e = Errors {
        user: check(
            &format!("[{name}] user_embeddings"),
            &out.user_embeddings,
            &want.user_embeddings,
            Tolerance::F32_GOLDEN,
        ),
        sequence: check(
            &format!("[{name}] sequence_embeddings"),
            &out.sequence_embeddings,
            &want.sequence_embeddings,
            Tolerance::F32_GOLDEN,
        ),
        candidates: check_mfalcon(&gpu, c),
        ..Errors::default()
    };
    lap("m-falcon");
    let top = gpu.retrieve(seqs, TOP_K).unwrap();
    lap("retrieve");
    let d = c.cfg.embedding_dim;
    for (u, s) in seqs.iter().enumerate() {
        let user = &want.user_embeddings[u * d..(u + 1) * d];
        let what = format!("[{name}] user {u} (length {})", s.items.len());
        let (err, ties) = check_top_k(&what, user, &want.items, s, &top[u]);
        e.scores = e.scores.max(err);
        e.ties += ties;
    }
    if supports(ctx, name, Variant::Capture) {
        e.capture = Some(check_capture(&gpu, c, &seqs[3]));
    }
    e
}

/// M-FALCON `e_c` of the ranked user for each of `MICROBATCHES` against the CPU, and the GPU's
/// cached form against its one-pass form (`full_mfalcon`; else the first size only); returns the
/// max |error| against the CPU.
fn check_mfalcon(gpu: &GpuModel, c: &Case) -> f64 {
    let (name, ranked) = (&c.name, &c.seqs[1]);
    let sizes = if c.full_mfalcon {
        &MICROBATCHES[..]
    } else {
        &MICROBATCHES[..1]
    };
    let mut worst = 0.0f64;
    for &mb in sizes {
        let got = gpu.rank(std::slice::from_ref(ranked), mb).unwrap().concat();
        let err = check(
            &format!("[{name}] m-falcon microbatch {mb} vs cpu"),
            &got,
            &c.want.candidates,
            Tolerance::F32_GOLDEN,
        );
        worst = worst.max(err);
    }
    if !c.full_mfalcon {
        return worst;
    }
    let cache = gpu.prefill(ranked).unwrap();
    let cached = gpu.score_candidates(&cache, &ranked.candidates).unwrap();
    let one: Vec<f64> = gpu
        .candidates_one_pass(ranked, &ranked.candidates)
        .unwrap()
        .iter()
        .map(|&x| x as f64)
        .collect();
    check(
        &format!("[{name}] gpu m-falcon vs gpu one pass"),
        &cached,
        &one,
        Tolerance::F32_KERNEL,
    );
    worst
}

/// GPU top-K of one user against the CPU scores of every item: the same ids except where the CPU
/// scores at the K-th rank tie within `SCORE_TIE`, no history item, best first, and every GPU
/// score within `F32_GOLDEN` of the CPU score of that item. Returns (max score error, tied ranks).
fn check_top_k(
    what: &str,
    user: &[f64],
    items: &Mat<f64>,
    seq: &UserSequence,
    got: &reference::TopK,
) -> (f64, usize) {
    let history: HashSet<u32> = seq.items.iter().copied().collect();
    let score = |c: u32| dot(user, items.row(c as usize));
    let want = reference::retrieve_top_k(user, items, &seq.items, TOP_K + 1);
    let kth = score(want.items[TOP_K - 1]);
    let next = score(want.items[TOP_K]);
    assert_eq!(got.items.len(), TOP_K, "{what}: number of ids");
    let got_set: HashSet<u32> = got.items.iter().copied().collect();
    for (r, &c) in got.items.iter().enumerate() {
        assert!(
            !history.contains(&c),
            "{what}: rank {r}: item {c} is in the history"
        );
        assert!(
            score(c) >= kth - SCORE_TIE,
            "{what}: rank {r}: gpu item {c} (cpu score {}) is below the cpu top-{TOP_K} ({kth}); cpu ids {:?}, gpu ids {:?}",
            score(c),
            want.items,
            got.items
        );
    }
    for &c in &want.items[..TOP_K] {
        assert!(
            got_set.contains(&c) || score(c) - next <= SCORE_TIE,
            "{what}: cpu item {c} (score {}, next {next}) missing; cpu ids {:?}, gpu ids {:?}",
            score(c),
            want.items,
            got.items
        );
    }
    let mut ties = 0;
    for (r, (&g, &c)) in got.items.iter().zip(&want.items).enumerate() {
        if g != c {
            assert!(
                (score(g) - score(c)).abs() <= SCORE_TIE,
                "{what}: rank {r}: gpu item {g} (cpu score {}) != cpu item {c} ({})",
                score(g),
                score(c)
            );
            ties += 1;
        }
    }
    for (r, pair) in got.scores.windows(2).enumerate() {
        assert!(
            pair[0] >= pair[1],
            "{what}: gpu scores not best first at rank {r}: {pair:?}"
        );
    }
    let exact: Vec<f64> = got.items.iter().map(|&c| score(c)).collect();
    let err = check(
        &format!("{what} top-{TOP_K} scores"),
        &got.scores,
        &exact,
        Tolerance::F32_GOLDEN,
    );
    (err, ties)
}

/// `a_ij` of every layer and head for one user against the reference; returns the max |error|.
fn check_capture(gpu: &GpuModel, c: &Case, seq: &UserSequence) -> f64 {
    let name = &c.name;
    let got = gpu.capture_attention(seq).unwrap();
    let want = reference::encoder::capture_attention(&c.cfg, &c.w64, seq);
    assert_eq!(got.len(), want.len(), "[{name}] capture layers");
    let mut worst = 0.0f64;
    for (l, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.len(),
            w.heads.len(),
            "[{name}] capture heads of layer {l}"
        );
        for (h, (gh, wh)) in g.iter().zip(&w.heads).enumerate() {
            let err = check(
                &format!("[{name}] capture layer {l} head {h} a_ij"),
                gh,
                &wh.data,
                Tolerance::F32_KERNEL,
            );
            worst = worst.max(err);
        }
    }
    worst
}
