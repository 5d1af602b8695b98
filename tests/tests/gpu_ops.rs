//! Kernels on every adapter against the CPU reference: fused attention (f32, f16, coop-matrix,
//! capture; jagged, causal + candidate masks, relative bias, max_attn_len), the attention goldens,
//! and the GEMM variants.

use hstu_runtime::checkpoint::load_raw;
use hstu_runtime::gpu::GpuContext;
use hstu_runtime::gpu::ops::{
    self, AttentionBuffers, AttentionKernel, AttentionParams, MatmulKernel, MatmulParams,
};
use hstu_runtime::gpu::record::{Recorder, to_f32};
use hstu_runtime::reference::{self, ops::time_bucket};
use hstu_runtime::rng::Rng;
use hstu_runtime::tensor::Mat;
use hstu_shaders::Variant;
use hstu_tests::golden_dir;
use hstu_tests::gpu::{Tolerance, assert_close, for_each_adapter, supports};

/// One jagged attention problem with everything the kernel and the reference need.
struct Problem {
    heads: usize,
    dqk: usize,
    dv: usize,
    offsets: Vec<usize>,
    targets: Option<Vec<usize>>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    alpha: f64,
    n: f64,
    max_attn_len: usize,
    /// (N, pos_w, ts_w, t_next, t_key) when the relative bias is on.
    rab: Option<RabInputs>,
}

/// (N, pos_w, ts_w, t_next, t_key) of the relative bias.
type RabInputs = (usize, Vec<f32>, Vec<f32>, Vec<i32>, Vec<i32>);

const BUCKETS: usize = 128;
const DIVISOR: f64 = 0.301;

fn random(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

fn round_f16(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
}

impl Problem {
    fn new(
        seed: u64,
        lens: &[usize],
        targets: Option<Vec<usize>>,
        heads: usize,
        d: usize,
        rab: bool,
    ) -> Problem {
        let mut rng = Rng::new(seed);
        let mut offsets = vec![0];
        for &l in lens {
            offsets.push(offsets.last().unwrap() + l);
        }
        let t = *offsets.last().unwrap();
        let n_rab = lens.iter().copied().max().unwrap_or(1) + 3;
        let rab = rab.then(|| {
            let mut t_next = vec![0; t];
            let mut t_key = vec![0; t];
            for b in 0..lens.len() {
                let mut now = 0i64;
                for key in &mut t_key[offsets[b]..offsets[b + 1]] {
                    now += rng.below(100_000) as i64;
                    *key = now as i32;
                }
                for i in offsets[b]..offsets[b + 1] {
                    t_next[i] = if i + 1 < offsets[b + 1] {
                        t_key[i + 1]
                    } else {
                        t_key[i] + 3600
                    };
                }
            }
            (
                n_rab,
                random(&mut rng, 2 * n_rab - 1, 0.5),
                random(&mut rng, BUCKETS + 1, 0.5),
                t_next,
                t_key,
            )
        });
        Problem {
            heads,
            dqk: d,
            dv: d,
            offsets,
            targets,
            q: random(&mut rng, t * heads * d, 0.3),
            k: random(&mut rng, t * heads * d, 0.3),
            v: random(&mut rng, t * heads * d, 1.0),
            alpha: 1.0 / (d as f64).sqrt(),
            n: 64.0,
            max_attn_len: 0,
            rab,
        }
    }

    fn total(&self) -> usize {
        *self.offsets.last().unwrap()
    }

    /// The CPU reference in f64 on (possibly f16-rounded) inputs; optionally the capture.
    fn reference(&self, f16: bool, capture: Option<&mut Vec<Mat<f64>>>) -> Vec<f64> {
        let cast = |x: &[f32]| -> Vec<f64> {
            let x = if f16 { round_f16(x) } else { x.to_vec() };
            x.iter().map(|&v| v as f64).collect()
        };
        let p = reference::AttentionParams {
            heads: self.heads,
            dqk: self.dqk,
            dv: self.dv,
            alpha: self.alpha,
            n: self.n,
            max_attn_len: self.max_attn_len,
        };
        let rab_fn = |b: usize, i: usize, j: usize| -> f64 {
            let (n, pos_w, ts_w, t_next, t_key) = self.rab.as_ref().unwrap();
            let len = self.offsets[b + 1] - self.offsets[b];
            let u = len - self.targets.as_ref().map_or(0, |t| t[b].min(len));
            let (id_i, id_j) = (i.min(u), j.min(u));
            let s = self.offsets[b];
            let dt = t_next[s + i] as i64 - t_key[s + j] as i64;
            pos_w[n - 1 + id_j - id_i] as f64 + ts_w[time_bucket(dt, DIVISOR, BUCKETS)] as f64
        };
        let rab: Option<&(dyn Fn(usize, usize, usize) -> f64 + Sync)> = self
            .rab
            .as_ref()
            .map(|_| &rab_fn as &(dyn Fn(usize, usize, usize) -> f64 + Sync));
        reference::hstu_attention(
            &cast(&self.q),
            &cast(&self.k),
            &cast(&self.v),
            &self.offsets,
            self.targets.as_deref(),
            &p,
            rab,
            capture,
        )
    }

    /// Run the kernel; returns (out, capture).
    fn run(&self, ctx: &GpuContext, variant: Variant) -> (Vec<f32>, Vec<f32>) {
        self.run_forms(ctx, variant, &[AttentionKernel::Auto])
    }

    /// Every form of `forms` in turn into the same output buffer (one recording): the result is
    /// the last form's.
    fn run_forms(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        forms: &[AttentionKernel],
    ) -> (Vec<f32>, Vec<f32>) {
        let (t, h, b) = (self.total(), self.heads, self.offsets.len() - 1);
        let mut rec = Recorder::new(ctx);
        let f16 = variant.requirements().shader_f16;
        // Coop tiles load whole 16/32-row blocks: pad the rows past the end.
        let pad_rows = 64;
        let upload = |rec: &mut Recorder, x: &[f32], d: usize| {
            let mut x = x.to_vec();
            x.extend(std::iter::repeat_n(0.0, pad_rows * h * d));
            if f16 {
                let mut hx: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
                if hx.len() % 2 == 1 {
                    hx.push(half::f16::ZERO);
                }
                rec.upload(&hx).unwrap()
            } else {
                rec.upload(&x).unwrap()
            }
        };
        let q = upload(&mut rec, &self.q, self.dqk);
        let k = upload(&mut rec, &self.k, self.dqk);
        let v = upload(&mut rec, &self.v, self.dv);
        let thresholds = bucket_thresholds();
        let mut meta: Vec<u32> = self.offsets.iter().map(|&o| o as u32).collect();
        let targets: Vec<u32> = match &self.targets {
            Some(tg) => tg.iter().map(|&x| x as u32).collect(),
            None => vec![0; b],
        };
        meta.extend(&targets);
        meta.extend(&thresholds);
        let meta = rec.upload(&meta).unwrap();
        let (rab_w, times, n_rab) = match &self.rab {
            Some((n, pos_w, ts_w, t_next, t_key)) => {
                let mut w = pos_w.clone();
                w.extend(ts_w);
                let mut tm = t_next.clone();
                tm.extend(t_key);
                (rec.upload(&w).unwrap(), rec.upload(&tm).unwrap(), *n)
            }
            None => (
                rec.upload(&[0.0f32; 4]).unwrap(),
                rec.upload(&[0i32; 4]).unwrap(),
                1,
            ),
        };
        let out = rec.scratch((t * h * self.dv * 4) as u64).unwrap();
        let max_len = self.offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        let cap_bytes = (h * max_len * max_len * 4) as u64;
        let capture = (variant == Variant::Capture).then(|| {
            let c = rec.scratch(cap_bytes).unwrap();
            rec.clear(&c, c.size());
            c
        });
        let p = AttentionParams {
            batch: b as u32,
            heads: h as u32,
            dqk: self.dqk as u32,
            dv: self.dv as u32,
            q_stride: (h * self.dqk) as u32,
            k_stride: (h * self.dqk) as u32,
            v_stride: (h * self.dv) as u32,
            out_stride: (h * self.dv) as u32,
            alpha: self.alpha as f32,
            inv_n: (1.0 / self.n) as f32,
            max_attn_len: self.max_attn_len as u32,
            has_rab: self.rab.is_some() as u32,
            rab_n: n_rab as u32,
            num_buckets: BUCKETS as u32,
            bucket_divisor: DIVISOR as f32,
            num_targets_base: (b + 1) as u32,
            thresholds_base: (2 * b + 1) as u32,
            times_key_base: t as u32,
            ..AttentionParams::default()
        };
        let bufs = AttentionBuffers {
            meta: &meta,
            q: &q,
            k: &k,
            v: &v,
            rab_w: &rab_w,
            times: &times,
            out: &out,
            capture: capture.as_ref(),
        };
        for &form in forms {
            ops::attention_with(&mut rec, variant, form, &p, &bufs, max_len).unwrap();
        }
        let mut reads = vec![(&out, 0, (t * h * self.dv * 4) as u64)];
        if let Some(c) = capture.as_ref() {
            reads.push((c, 0, cap_bytes));
        }
        let data = rec.finish(&reads).unwrap();
        let cap = data.get(1).map(|c| to_f32(c)).unwrap_or_default();
        (to_f32(&data[0]), cap)
    }
}

#[test]
fn gpu_attention_forms_share_buffers() {
    // Two forms of one entry point (main_big with other override constants) over the very same
    // buffers: each needs its own bind group (an auto-derived layout fits one pipeline only).
    // Every named register-tiled form on every problem, since `Auto` picks `main_big` only for
    // large grids and these problems are small (targets, max_attn_len, rab, jagged).
    let mut cases = problems();
    cases.push(("d64 rab", Problem::new(4, &[100, 33], None, 2, 64, true)));
    let forms = [
        AttentionKernel::Tiled { qc: 32, vc: 32 },
        AttentionKernel::Big {
            ty: 8,
            bk: 64,
            qc: 16,
            vc: 16,
            pf: false,
        },
        AttentionKernel::AUTO_TILED,
    ];
    for_each_adapter("attention forms", |ctx| {
        let forms: Vec<AttentionKernel> = forms
            .into_iter()
            .filter(|f| {
                let fits = f.fits(ctx);
                if !fits {
                    println!(
                        "skip attention form {} on {}: its tiles exceed the adapter's {} bytes of workgroup memory",
                        f.name(),
                        ctx.info.name,
                        ctx.limits().max_compute_workgroup_storage_size
                    );
                }
                fits
            })
            .collect();
        for (name, p) in &cases {
            let want = p.reference(false, None);
            for n in 1..=forms.len() {
                let (got, _) = p.run_forms(ctx, Variant::F32, &forms[..n]);
                assert_close(
                    &format!("attention f32 {name}, last form {}", forms[n - 1].name()),
                    &got,
                    &want,
                    Tolerance::F32_KERNEL,
                );
            }
        }
    });
}

#[test]
fn gpu_coop_attention_forms_match_reference() {
    // Every cooperative-matrix form (`Auto` runs only one of them) on every problem, head dims
    // 16 to 128 (1 to 8 unrolled column chunks), against the f16-rounded reference. Only adapters
    // with cooperative matrices run it (the H200's Vulkan driver; not lavapipe).
    let mut cases = problems();
    cases.push(("d64 rab", Problem::new(4, &[100, 33], None, 2, 64, true)));
    cases.push((
        "d128 targets rab",
        Problem::new(5, &[150, 41], Some(vec![10, 3]), 2, 128, true),
    ));
    let mut forms = vec![AttentionKernel::Coop];
    for lk in [32, 64] {
        for rs in [16, 32] {
            for qreg in 0..=2 {
                for vpre in [false, true] {
                    if vpre && lk != 32 {
                        continue;
                    }
                    forms.push(AttentionKernel::CoopLong {
                        lk,
                        silu: if rs == 16 { 2 } else { 0 },
                        rs,
                        qreg,
                        vpre,
                    });
                }
            }
        }
    }
    for_each_adapter("coop attention forms", |ctx| {
        if !supports(ctx, "coop attention forms", Variant::CoopMatrix) {
            return;
        }
        for (name, p) in &cases {
            let want = p.reference(true, None);
            for form in &forms {
                let (got, _) = p.run_forms(ctx, Variant::CoopMatrix, &[*form]);
                assert_close(
                    &format!("attention coop {name}, form {}", form.name()),
                    &got,
                    &want,
                    Tolerance::COOP_F16,
                );
            }
        }
    });
}

#[test]
fn gpu_bind_groups_are_per_pipeline() {
    // Pipelines that differ only in override constants share a label; each must get its own
    // bind group (made against its own auto-derived layout), and a repeat must hit the cache.
    use hstu_runtime::gpu::cache::{BindRange, PipelineKey, STORAGE, UNIFORM};
    for_each_adapter("bind group cache", |ctx| {
        let key = |wg: f64| PipelineKey::new("hstu_l2_norm", Variant::F32, "main").with("WG", wg);
        let a = ctx.pipeline(&key(64.0)).unwrap();
        let b = ctx.pipeline(&key(128.0)).unwrap();
        assert_eq!(a.label, b.label);
        assert_ne!(a.id, b.id);
        assert_eq!(
            ctx.pipeline(&key(64.0)).unwrap().id,
            a.id,
            "pipeline cache hit"
        );
        let params = ctx.take_buffer(256, UNIFORM).unwrap();
        let (x, out) = (
            ctx.take_buffer(4096, STORAGE).unwrap(),
            ctx.take_buffer(4096, STORAGE).unwrap(),
        );
        let entries = vec![
            (0, BindRange::whole(&params)),
            (1, BindRange::whole(&x)),
            (2, BindRange::whole(&out)),
        ];
        let ga = ctx.bind_group(&a, entries.clone()).unwrap();
        let gb = ctx.bind_group(&b, entries.clone()).unwrap();
        assert_ne!(ga, gb, "one bind group served two pipelines");
        assert_eq!(
            ga,
            ctx.bind_group(&a, entries).unwrap(),
            "bind group cache hit"
        );
        ctx.give_buffers([params, x, out]);
    });
}

fn bucket_thresholds() -> Vec<u32> {
    let tb = |dt: i64| time_bucket(dt, DIVISOR, BUCKETS);
    (0..=BUCKETS)
        .map(|k| {
            if k == 0 || tb(u32::MAX as i64) < k {
                return if k == 0 { 0 } else { u32::MAX };
            }
            let (mut lo, mut hi) = (0i64, u32::MAX as i64);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if tb(mid) >= k { hi = mid } else { lo = mid + 1 }
            }
            lo as u32
        })
        .collect()
}

fn problems() -> Vec<(&'static str, Problem)> {
    let mut windowed = Problem::new(3, &[70, 5], None, 2, 16, false);
    windowed.max_attn_len = 9;
    vec![
        (
            "causal jagged",
            Problem::new(1, &[1, 37, 130, 64], None, 2, 32, false),
        ),
        (
            "targets + rab",
            Problem::new(2, &[90, 17, 66], Some(vec![20, 0, 70]), 2, 16, true),
        ),
        ("max_attn_len", windowed),
    ]
}

#[test]
fn gpu_attention_matches_reference() {
    for_each_adapter("attention", |ctx| {
        for (name, p) in problems() {
            let want = p.reference(false, None);
            let (got, _) = p.run(ctx, Variant::F32);
            assert_close(
                &format!("attention f32 {name}"),
                &got,
                &want,
                Tolerance::F32_KERNEL,
            );
            if supports(ctx, "attention", Variant::F16) {
                let want16 = p.reference(true, None);
                let (got, _) = p.run(ctx, Variant::F16);
                assert_close(
                    &format!("attention f16 {name}"),
                    &got,
                    &want16,
                    Tolerance::F16_STORAGE,
                );
            }
            if supports(ctx, "attention", Variant::CoopMatrix) {
                let want16 = p.reference(true, None);
                let (got, _) = p.run(ctx, Variant::CoopMatrix);
                assert_close(
                    &format!("attention coop {name}"),
                    &got,
                    &want16,
                    Tolerance::COOP_F16,
                );
            }
        }
    });
}

#[test]
fn gpu_attention_capture_matches_reference() {
    for_each_adapter("attention capture", |ctx| {
        let p = Problem::new(4, &[45], Some(vec![5]), 2, 16, true);
        let mut mats = Vec::new();
        let want = p.reference(false, Some(&mut mats));
        let (got, cap) = p.run(ctx, Variant::Capture);
        assert_close("capture out", &got, &want, Tolerance::F32_KERNEL);
        let want_cap: Vec<f64> = mats.iter().flat_map(|m| m.data.iter().copied()).collect();
        assert_close("capture a_ij", &cap, &want_cap, Tolerance::F32_KERNEL);
    });
}

/// The production-style operator (alpha, n from the file, no rab; q, k, v f64 -> f32).
fn golden_attention(ctx: &GpuContext, case: &str) {
    let t = load_raw(&golden_dir(case).join("attention.safetensors")).unwrap();
    let f = |n: &str| -> Vec<f32> { t[n].values.iter().map(|&x| x as f32).collect() };
    let shape = &t["q"].shape;
    let p = Problem {
        heads: shape[1],
        dqk: shape[2],
        dv: t["v"].shape[2],
        offsets: t["seq_offsets"]
            .values
            .iter()
            .map(|&x| x as usize)
            .collect(),
        targets: t
            .get("num_targets")
            .map(|x| x.values.iter().map(|&v| v as usize).collect()),
        q: f("q"),
        k: f("k"),
        v: f("v"),
        alpha: t["alpha"].values[0],
        n: t["max_seq_len"].values[0],
        max_attn_len: t["max_attn_len"].values[0] as usize,
        rab: None,
    };
    let (got, _) = p.run(ctx, Variant::F32);
    assert_close(
        &format!("{case} out"),
        &got,
        &t["out"].values,
        Tolerance::F32_KERNEL,
    );
}

#[test]
fn gpu_attention_goldens() {
    for_each_adapter("attention goldens", |ctx| {
        golden_attention(ctx, "attention_causal");
        golden_attention(ctx, "attention_targets");
    });
}

/// `c = silu(a @ b + bias) + c0` on the CPU in f64.
fn matmul_reference(
    a: &[f32],
    b: &[f32],
    bias: &[f32],
    c0: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|x| a[i * k + x] as f64 * b[x * n + j] as f64)
                .sum::<f64>()
                + bias[j] as f64;
            out[i * n + j] = s / (1.0 + (-s).exp()) + c0[i * n + j] as f64;
        }
    }
    out
}

#[test]
fn gpu_matmul_variants_match_reference() {
    for_each_adapter("matmul", |ctx| {
        let (m, k, n) = (200, 96, 144);
        let mut rng = Rng::new(9);
        let a = random(&mut rng, m * k, 0.5);
        let b = random(&mut rng, k * n, 0.5);
        let bias = random(&mut rng, n, 0.5);
        let c0 = random(&mut rng, m * n, 0.5);
        for variant in [Variant::F32, Variant::F16, Variant::CoopMatrix] {
            if !supports(ctx, "matmul", variant) {
                continue;
            }
            let f16 = variant.requirements().shader_f16;
            let (a_in, b_in) = if f16 {
                (round_f16(&a), round_f16(&b))
            } else {
                (a.clone(), b.clone())
            };
            let want = matmul_reference(&a_in, &b_in, &bias, &c0, m, k, n);
            let kernels: &[MatmulKernel] = if variant == Variant::CoopMatrix {
                &[MatmulKernel::Auto]
            } else {
                &[MatmulKernel::Tiled, MatmulKernel::Skinny]
            };
            for &kernel in kernels {
                let mut rec = Recorder::new(ctx);
                // Rows padded to a multiple of 64 for the cooperative tiles.
                let rows = m.div_ceil(64) * 64 + 64;
                let up = |rec: &mut Recorder, x: &[f32], extra: usize| {
                    let mut x = x.to_vec();
                    x.extend(std::iter::repeat_n(0.0, extra));
                    if f16 {
                        let h: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
                        rec.upload(&h).unwrap()
                    } else {
                        rec.upload(&x).unwrap()
                    }
                };
                let a_buf = up(&mut rec, &a, (rows - m) * k);
                let b_buf = up(&mut rec, &b, 64 * n);
                let bias_buf = rec.upload(&bias).unwrap();
                let c_buf = rec.upload(&c0).unwrap();
                let p = MatmulParams {
                    m: m as u32,
                    n: n as u32,
                    k: k as u32,
                    lda: k as u32,
                    ldb: n as u32,
                    ldc: n as u32,
                    has_bias: 1,
                    silu: 1,
                    residual: 1,
                    ..MatmulParams::default()
                };
                ops::matmul_with(
                    &mut rec, variant, kernel, &p, &a_buf, &b_buf, &bias_buf, &c_buf,
                )
                .unwrap();
                let data = rec.finish(&[(&c_buf, 0, (m * n * 4) as u64)]).unwrap();
                let tol = if variant == Variant::CoopMatrix {
                    Tolerance::COOP_F16
                } else {
                    Tolerance::F32_KERNEL
                };
                assert_close(
                    &format!("matmul {} {kernel:?}", variant.name()),
                    &to_f32(&data[0]),
                    &want,
                    tol,
                );
            }
        }
    });
}

/// score_topk over many rounds per workgroup (one user tile and one or two item chunks), where a
/// sort runs only when a user's candidate slots may overflow: equal to the CPU reference.
#[test]
fn gpu_topk_many_rounds_matches_reference() {
    use hstu_runtime::gpu::ops::ItemChunk;
    use hstu_runtime::reference::retrieval::{normalized_items, retrieve_top_k};
    let (b, d, rows) = (11, 12, 5_001);
    let mut rng = Rng::new(21);
    let item_data = random(&mut rng, rows * d, 1.0);
    let items64 = Mat {
        rows,
        cols: d,
        data: item_data.iter().map(|&x| x as f64).collect(),
    };
    let normed = normalized_items(&items64, 1e-6);
    let mut users = Vec::new();
    for _ in 0..b {
        let u = random(&mut rng, d, 1.0);
        let n = u.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        users.extend(u.iter().map(|&x| (x as f64 / n) as f32));
    }
    let histories: Vec<Vec<u32>> = (0..b)
        .map(|u| {
            (0..3 * u)
                .map(|_| 1 + rng.below(rows as u64 - 1) as u32)
                .collect()
        })
        .collect();
    let mut table = vec![0u32];
    let mut ids = Vec::new();
    for h in &histories {
        let mut h = h.clone();
        h.sort_unstable();
        h.dedup();
        ids.extend(h);
        table.push(ids.len() as u32);
    }
    table.extend(ids);
    for_each_adapter("top-k many rounds", |ctx| {
        for (k, groups) in [(10, 1), (10, 3), (300, 2)] {
            let mut rec = Recorder::new(ctx);
            let users_buf = rec.upload(&users).unwrap();
            let hist_buf = rec.upload(&table).unwrap();
            let split = 2_600;
            let chunks = vec![
                ItemChunk {
                    buffer: rec.upload(&item_data[..split * d]).unwrap(),
                    lo: 0,
                    hi: split as u32,
                },
                ItemChunk {
                    buffer: rec.upload(&item_data[split * d..]).unwrap(),
                    lo: split as u32,
                    hi: rows as u32,
                },
            ];
            let (scores, top) = ops::top_k_with_groups(
                &mut rec,
                &users_buf,
                b,
                d,
                &chunks,
                rows - 1,
                &hist_buf,
                k,
                1e-6,
                groups,
            )
            .unwrap();
            let bytes = (b * k * 4) as u64;
            let data = rec
                .finish(&[(&scores, 0, bytes), (&top, 0, bytes)])
                .unwrap();
            let (got_s, got_ids) = (
                to_f32(&data[0]),
                hstu_runtime::gpu::record::to_u32(&data[1]),
            );
            for u in 0..b {
                let user: Vec<f64> = users[u * d..(u + 1) * d]
                    .iter()
                    .map(|&x| x as f64)
                    .collect();
                let want = retrieve_top_k(&user, &normed, &histories[u], k);
                assert_eq!(
                    &got_ids[u * k..(u + 1) * k],
                    &want.items[..],
                    "user {u}, k = {k}, {groups} groups"
                );
                let want64: Vec<f64> = want.scores.iter().map(|&x| x as f64).collect();
                assert_close(
                    &format!("top-k scores user {u}, k = {k}, {groups} groups"),
                    &got_s[u * k..(u + 1) * k],
                    &want64,
                    Tolerance::F32_KERNEL,
                );
            }
        }
    });
}
