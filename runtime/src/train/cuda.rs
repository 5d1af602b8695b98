//! The retrieval training step of spec section 7 on a CUDA GPU (hstu-cuda): weights, gradients
//! and AdamW moments stay on the device; the host builds each batch's index tensors and reads
//! back one number (the loss) per step. The trainer loop ([`super::trainer`]) is shared with the
//! CPU path: it downloads the weights once per epoch to validate and checkpoint them.
//!
//! Precision (mixed): f32 master weights, activations and AdamW; q/k/v and the attention output
//! in bf16 through the fused tensor-core attention (fp32 accumulation); the dense products on
//! cuBLAS with TF32 tensor cores (f32 accumulation). `CudaTrainer::gradients` with `tf32 = false`
//! is what the tests compare with the f64 CPU backward.
//!
//! Per layer, for the `T` tokens of a batch (jagged by `seq_offsets`):
//!
//! ```text
//! n, rstd_n = LN(e)                         layer_norm_fwd
//! pre       = n @ W_uvqk                    cuBLAS
//! u, q,k,v  = silu(pre)                     uvqk_split_fwd   (q, k, v: padded bf16 heads)
//! attn      = hstu_attention(q, k, v; rab)  hstu_attention_fwd
//! a, y      = LN(attn), dropout(u * a)      attn_ln_gate_fwd
//! e        += y @ W_o^T + b_o               cuBLAS (beta = 1) + add_bias_rows
//! ```
//!
//! The loss is the fused sampled softmax (negatives drawn on the device), and the backward runs
//! the same calls in reverse. Random streams differ from the CPU trainer (counter-based masks and
//! negatives on the device), so the two trainers agree in distribution, not bit for bit; the
//! float atomics of the scatter-adds make GPU runs not bit-reproducible.

use super::adamw::{AdamW, AdamWConfig};
use super::loss::LossSum;
use super::step::autoregressive_positives;
use super::tape::Dropout;
use crate::checkpoint::Weights;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::reference::encoder::Tokens;
use crate::sequences::UserSequence;
use crate::train::grads::{tensors_mut, zeros_like};
use half::bf16;
use hstu_cuda::attention::{
    AttentionGradsDevice, AttentionInputs, AttentionOptions, AttentionShape, RabGrads, RabTensors,
};
use hstu_cuda::cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};
use hstu_cuda::elementwise::{AdamW as DeviceAdamW, MAX_SAMPLED_NEGATIVES, SampledSoftmax};
use hstu_cuda::gemm::Blas;
use hstu_cuda::host::kernel_head_dim;
use hstu_cuda::train_ops::HeadDims;
use hstu_cuda::{CudaDevice, CudaError};
use std::cell::{Cell, RefCell};
use std::time::Instant;

fn cuda(e: CudaError) -> Error {
    Error::Gpu(format!("cuda: {e}"))
}

/// Indices of one layer's tensors in [`Weights::named`] order.
#[derive(Clone, Copy)]
struct LayerIx {
    uvqk: usize,
    pos_w: usize,
    ts_w: usize,
    o_w: usize,
    o_b: usize,
}

fn layer_ix(l: usize) -> LayerIx {
    let b = 2 + 5 * l;
    LayerIx {
        uvqk: b,
        pos_w: b + 1,
        ts_w: b + 2,
        o_w: b + 3,
        o_b: b + 4,
    }
}
const ITEM: usize = 0;
const POS: usize = 1;

/// One batch's host-side index tensors, uploaded once per step.
struct Batch {
    tokens: usize,
    seqs: usize,
    max_len: usize,
    /// Positions with a positive (the loss mean divides by this).
    count: usize,
    ids: CudaSlice<i64>,
    pos: CudaSlice<i64>,
    timestamps: CudaSlice<i64>,
    t_next: CudaSlice<i64>,
    offsets: CudaSlice<i64>,
    positives: CudaSlice<i64>,
}

/// What one layer's backward reads, recorded by the forward.
struct LayerActs {
    n: CudaSlice<f32>,
    rstd_n: CudaSlice<f32>,
    pre: CudaSlice<f32>,
    u: CudaSlice<f32>,
    q: CudaSlice<bf16>,
    k: CudaSlice<bf16>,
    v: CudaSlice<bf16>,
    a_ln: CudaSlice<f32>,
    rstd_a: CudaSlice<f32>,
    y: CudaSlice<f32>,
}

/// Settings of the device step.
#[derive(Clone, Copy, Debug)]
pub struct CudaStepOptions {
    pub num_negatives: usize,
    pub temperature: f32,
    pub dropout: Dropout,
    /// TF32 tensor cores for the dense products (the mixed-precision default).
    pub tf32: bool,
    /// The sampled softmax with the item gradient summed per item after a counting sort instead
    /// of one float atomic per (row, candidate, column). Off in `hstu train`: on the H200 it
    /// measured 4.8 ms against 4.2 ms per 25,600-token step (the per-row kernel bounds both).
    pub sorted_softmax: bool,
}

/// A retrieval model, its gradients and AdamW state resident on one CUDA device.
pub struct CudaTrainer {
    dev: CudaDevice,
    blas: Blas,
    cfg: ModelConfig,
    hd: HeadDims,
    opts: CudaStepOptions,
    adamw: AdamWConfig,
    step: u64,
    params: Vec<CudaSlice<f32>>,
    grads: Vec<CudaSlice<f32>>,
    m: Vec<CudaSlice<f32>>,
    v: Vec<CudaSlice<f32>>,
    /// Zeros shaped like the weights (gradient downloads).
    template: Weights<f32>,
    phases: Phases,
}

/// Optional wall time per phase of the device step: each mark synchronises the stream, so this
/// is for benchmarks (`bench_train_cuda --profile`), off in training.
#[derive(Default)]
struct Phases {
    on: bool,
    last: Cell<Option<Instant>>,
    acc: RefCell<Vec<(&'static str, f64)>>,
}

impl Phases {
    fn start(&self, dev: &CudaDevice) -> Result<()> {
        if self.on {
            dev.synchronize().map_err(cuda)?;
            self.last.set(Some(Instant::now()));
        }
        Ok(())
    }

    fn mark(&self, dev: &CudaDevice, name: &'static str) -> Result<()> {
        if !self.on {
            return Ok(());
        }
        dev.synchronize().map_err(cuda)?;
        let now = Instant::now();
        if let Some(t0) = self.last.replace(Some(now)) {
            let secs = (now - t0).as_secs_f64();
            let mut acc = self.acc.borrow_mut();
            match acc.iter_mut().find(|(n, _)| *n == name) {
                Some((_, x)) => *x += secs,
                None => acc.push((name, secs)),
            }
        }
        Ok(())
    }
}

/// The counter-based random streams of one step: the forward and the backward must draw the
/// same dropout masks, so both take them from here.
#[derive(Clone, Copy)]
struct StepSeeds {
    input: u64,
    negatives: u64,
    seed: u64,
    step: u64,
}

impl StepSeeds {
    /// The dropout mask of `y` in layer `l`.
    fn layer(&self, l: usize) -> u64 {
        mix(self.seed, self.step, 1 + l as u64)
    }
}

/// A seed for one (step, stream) pair of the run.
fn mix(seed: u64, step: u64, stream: u64) -> u64 {
    let mut z = seed
        ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    z ^ (z >> 33)
}

impl CudaTrainer {
    /// Opens CUDA device `ordinal` and uploads `w` and the optimizer state `opt`.
    pub fn new(
        ordinal: usize,
        cfg: &ModelConfig,
        w: &Weights<f32>,
        opt: &AdamW<f32>,
        opts: CudaStepOptions,
    ) -> Result<Self> {
        if cfg.ranking.is_some() {
            return Err(Error::Input(
                "--device cuda trains retrieval models; train a ranking config with --device cpu"
                    .into(),
            ));
        }
        let dk = kernel_head_dim(cfg.attention_dim, cfg.linear_dim).ok_or_else(|| {
            Error::Input(format!(
                "--device cuda: head dims {}/{} exceed the largest attention kernel (256)",
                cfg.attention_dim, cfg.linear_dim
            ))
        })?;
        if cfg.embedding_dim > 1024 {
            return Err(Error::Input(format!(
                "--device cuda: embedding_dim {} exceeds the sampled-softmax kernel's 1024",
                cfg.embedding_dim
            )));
        }
        if opts.num_negatives == 0 || opts.num_negatives > MAX_SAMPLED_NEGATIVES {
            return Err(Error::Input(format!(
                "--device cuda: negatives must be in 1..={MAX_SAMPLED_NEGATIVES}, got {}",
                opts.num_negatives
            )));
        }
        let dev = CudaDevice::new(ordinal).map_err(|e| match e {
            CudaError::NoDriver(_) => Error::Gpu(
                "--device cuda: no CUDA driver (libcuda.so) on this machine; train with --device cpu"
                    .into(),
            ),
            e => Error::Gpu(format!("--device cuda: CUDA device {ordinal}: {e}")),
        })?;
        let blas = dev.blas().map_err(cuda)?;
        blas.set_tf32(opts.tf32).map_err(cuda)?;
        let up = |t: &Weights<f32>| -> Result<Vec<CudaSlice<f32>>> {
            t.named()
                .into_iter()
                .map(|(_, _, x)| dev.upload(x).map_err(cuda))
                .collect()
        };
        let params = up(w)?;
        let grads = up(&zeros_like(w))?;
        let m = up(&opt.m)?;
        let v = up(&opt.v)?;
        Ok(CudaTrainer {
            hd: HeadDims {
                heads: cfg.num_heads,
                dv: cfg.linear_dim,
                dqk: cfg.attention_dim,
                dk,
            },
            dev,
            blas,
            cfg: cfg.clone(),
            opts,
            adamw: opt.config,
            step: opt.step,
            params,
            grads,
            m,
            v,
            template: zeros_like(w),
            phases: Phases::default(),
        })
    }

    fn seeds(&self, seed: u64) -> StepSeeds {
        StepSeeds {
            input: mix(seed, self.step, 0),
            negatives: mix(seed, self.step, 1 << 32),
            seed,
            step: self.step,
        }
    }

    /// Times every phase of later steps (synchronising after each): see [`Self::take_profile`].
    pub fn set_profile(&mut self, on: bool) {
        self.phases.on = on;
    }

    /// Seconds per phase summed since the last call, in first-seen order.
    pub fn take_profile(&self) -> Vec<(&'static str, f64)> {
        std::mem::take(&mut *self.phases.acc.borrow_mut())
    }

    /// The device, e.g. `"NVIDIA H200 (sm_90)"`.
    pub fn describe(&self) -> String {
        self.dev.describe().unwrap_or_else(|e| e.to_string())
    }

    fn batch(&self, seqs: &[&UserSequence]) -> Result<Option<Batch>> {
        let (mut ids, mut pos, mut ts, mut tn, mut positives) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut offsets = vec![0i64];
        let (mut max_len, mut count) = (0, 0);
        for seq in seqs {
            let tokens = Tokens::new(seq, &[]);
            let l = tokens.len();
            if l == 0 {
                continue;
            }
            if l > self.cfg.max_sequence_len {
                return Err(Error::Input(format!(
                    "user {}: {l} items exceed max_sequence_len {}",
                    seq.user_id, self.cfg.max_sequence_len
                )));
            }
            for t in 0..l {
                ids.push(tokens.items[t] as i64);
                pos.push(tokens.positions[t] as i64);
                ts.push(tokens.timestamps[t]);
                tn.push(tokens.t_next(t));
            }
            for p in autoregressive_positives(seq) {
                count += usize::from(p != 0);
                positives.push(p as i64);
            }
            max_len = max_len.max(l);
            offsets.push(ids.len() as i64);
        }
        if ids.is_empty() {
            return Ok(None);
        }
        if let Some(&bad) = ids
            .iter()
            .find(|&&i| i < 0 || i as usize > self.cfg.num_items)
        {
            return Err(Error::Input(format!(
                "item id {bad} outside 1..={}",
                self.cfg.num_items
            )));
        }
        let d = &self.dev;
        Ok(Some(Batch {
            tokens: ids.len(),
            seqs: offsets.len() - 1,
            max_len,
            count,
            ids: d.upload(&ids).map_err(cuda)?,
            pos: d.upload(&pos).map_err(cuda)?,
            timestamps: d.upload(&ts).map_err(cuda)?,
            t_next: d.upload(&tn).map_err(cuda)?,
            offsets: d.upload(&offsets).map_err(cuda)?,
            positives: d.upload(&positives).map_err(cuda)?,
        }))
    }

    /// The training forward of a batch (dropout as given): final `e [tokens, D]` before L2 and,
    /// when `record`, what each layer's backward reads (else each layer's buffers are freed as
    /// soon as the next layer starts: inference keeps one layer alive, not all).
    fn forward(
        &self,
        b: &Batch,
        seed: u64,
        dropout: Dropout,
        record: bool,
    ) -> Result<(CudaSlice<f32>, Vec<LayerActs>)> {
        let (t, d, hd) = (b.tokens, self.cfg.embedding_dim, self.hd);
        let (uw, hdv) = (hd.uvqk(), hd.hdv());
        let dev = &self.dev;
        let eps = self.cfg.layer_norm_eps as f32;
        let seeds = self.seeds(seed);
        let z32 = |n: usize| zeros::<f32>(dev, n);
        let z16 = |n: usize| zeros::<bf16>(dev, n);

        // input features
        self.phases.start(dev)?;
        let mut e = z32(t * d)?;
        dev.embedding_fwd(
            &self.params[ITEM],
            &self.params[POS],
            &b.ids,
            &b.pos,
            &mut e,
            d,
            (d as f32).sqrt(),
        )
        .map_err(cuda)?;
        dev.dropout_inplace(&mut e, dropout.input as f32, seeds.input)
            .map_err(cuda)?;
        self.phases.mark(dev, "embedding fwd")?;

        let mut acts = Vec::with_capacity(self.cfg.num_blocks);
        let mut attn = z16(hd.padded(t))?;
        for l in 0..self.cfg.num_blocks {
            let ix = layer_ix(l);
            let (mut n, mut rstd_n) = (z32(t * d)?, z32(t)?);
            dev.layer_norm_fwd(&e, &mut n, &mut rstd_n, t, d, eps)
                .map_err(cuda)?;
            let mut pre = z32(t * uw)?;
            self.blas
                .matmul_f32(
                    (t, uw, d),
                    &n,
                    false,
                    &self.params[ix.uvqk],
                    false,
                    &mut pre,
                    1.0,
                    0.0,
                )
                .map_err(cuda)?;
            self.phases.mark(dev, "ln + uvqk gemm fwd")?;
            let mut u = z32(t * hdv)?;
            let (mut q, mut k, mut v) =
                (z16(hd.padded(t))?, z16(hd.padded(t))?, z16(hd.padded(t))?);
            dev.uvqk_split_fwd(hd, t, &pre, &mut u, &mut q, &mut k, &mut v)
                .map_err(cuda)?;
            self.phases.mark(dev, "silu + split fwd")?;
            dev.hstu_attention_fwd(
                &attention(&self.cfg, hd, &self.params, b, l, (&q, &k, &v)),
                &mut attn,
            )
            .map_err(cuda)?;
            self.phases.mark(dev, "attention fwd")?;
            let (mut a_ln, mut rstd_a, mut y) = (z32(t * hdv)?, z32(t)?, z32(t * hdv)?);
            dev.attn_ln_gate_fwd(
                hd,
                t,
                &attn,
                &u,
                &mut a_ln,
                &mut rstd_a,
                &mut y,
                eps,
                (dropout.linear as f32, seeds.layer(l)),
            )
            .map_err(cuda)?;
            self.phases.mark(dev, "ln + gate fwd")?;
            self.blas
                .matmul_f32(
                    (t, d, hdv),
                    &y,
                    false,
                    &self.params[ix.o_w],
                    true,
                    &mut e,
                    1.0,
                    1.0,
                )
                .map_err(cuda)?;
            dev.add_bias_rows(&mut e, &self.params[ix.o_b])
                .map_err(cuda)?;
            self.phases.mark(dev, "o gemm fwd")?;
            if !record {
                continue;
            }
            acts.push(LayerActs {
                n,
                rstd_n,
                pre,
                u,
                q,
                k,
                v,
                a_ln,
                rstd_a,
                y,
            });
        }
        drop(attn);
        Ok((e, acts))
    }

    /// Forward, loss and backward of one batch into `self.grads` (mean loss over positions).
    /// `negatives` (`[tokens * num_negatives]`) replaces the device draw (tests).
    fn forward_backward(&mut self, b: &Batch, seed: u64, negatives: Option<&[i64]>) -> Result<f64> {
        let (t, d, hd) = (b.tokens, self.cfg.embedding_dim, self.hd);
        let (uw, hdv) = (hd.uvqk(), hd.hdv());
        let dev = &self.dev;
        let dropout = self.opts.dropout;
        let seeds = self.seeds(seed);
        let z32 = |n: usize| zeros::<f32>(dev, n);
        let z16 = |n: usize| zeros::<bf16>(dev, n);

        let (e, acts) = self.forward(b, seed, dropout, true)?;

        // loss
        let kneg = self.opts.num_negatives;
        let neg = match negatives {
            Some(h) => dev.upload(h).map_err(cuda)?,
            None => {
                let mut x = dev.zeros::<i64>(t * kneg).map_err(cuda)?;
                dev.sample_negatives(&mut x, self.cfg.num_items, seeds.negatives)
                    .map_err(cuda)?;
                x
            }
        };
        for g in &mut self.grads {
            dev.zero(g).map_err(cuda)?;
        }
        let (mut loss, mut de) = (z32(t)?, z32(t * d)?);
        let softmax = if self.opts.sorted_softmax {
            CudaDevice::sampled_softmax_sorted
        } else {
            CudaDevice::sampled_softmax
        };
        softmax(
            dev,
            &SampledSoftmax {
                o: &e,
                item_emb: &self.params[ITEM],
                pos_ids: &b.positives,
                neg_ids: &neg,
                num_neg: kneg,
                temperature: self.opts.temperature,
                eps: self.cfg.l2_norm_eps as f32,
                weight: 1.0 / b.count as f32,
            },
            &mut loss,
            &mut de,
            &mut self.grads[ITEM],
        )
        .map_err(cuda)?;
        let mut loss_sum = z32(1)?;
        dev.sum_acc(&loss, &mut loss_sum).map_err(cuda)?;
        self.phases.mark(dev, "sampled softmax")?;

        // backward
        let mut d_attn = z16(hd.padded(t))?;
        for l in (0..self.cfg.num_blocks).rev() {
            let ix = layer_ix(l);
            let a = &acts[l];
            dev.col_sum_acc(&de, &mut self.grads[ix.o_b])
                .map_err(cuda)?;
            self.blas
                .matmul_f32(
                    (d, hdv, t),
                    &de,
                    true,
                    &a.y,
                    false,
                    &mut self.grads[ix.o_w],
                    1.0,
                    0.0,
                )
                .map_err(cuda)?;
            let mut dy = z32(t * hdv)?;
            self.blas
                .matmul_f32(
                    (t, hdv, d),
                    &de,
                    false,
                    &self.params[ix.o_w],
                    false,
                    &mut dy,
                    1.0,
                    0.0,
                )
                .map_err(cuda)?;
            self.phases.mark(dev, "o gemms bwd")?;
            let mut d_pre = z32(t * uw)?;
            dev.attn_ln_gate_bwd(
                hd,
                t,
                &dy,
                &a.u,
                &a.a_ln,
                &a.rstd_a,
                &a.pre,
                &mut d_pre,
                &mut d_attn,
                (dropout.linear as f32, seeds.layer(l)),
            )
            .map_err(cuda)?;
            self.phases.mark(dev, "ln + gate bwd")?;
            drop(dy);
            let (mut dq, mut dk, mut dv) =
                (z16(hd.padded(t))?, z16(hd.padded(t))?, z16(hd.padded(t))?);
            {
                let (gp, gt) = two_mut(&mut self.grads, ix.pos_w, ix.ts_w);
                let inputs = attention(&self.cfg, hd, &self.params, b, l, (&a.q, &a.k, &a.v));
                dev.hstu_attention_bwd(
                    &inputs,
                    &d_attn,
                    AttentionGradsDevice {
                        dq: &mut dq,
                        dk: &mut dk,
                        dv: &mut dv,
                    },
                    Some(RabGrads {
                        dpos_w: gp,
                        dts_w: gt,
                        deterministic: false,
                    }),
                )
                .map_err(cuda)?;
            }
            self.phases.mark(dev, "attention bwd")?;
            dev.qkv_grad_to_pre(hd, t, &dq, &dk, &dv, &a.pre, &mut d_pre)
                .map_err(cuda)?;
            self.phases.mark(dev, "silu + split bwd")?;
            self.blas
                .matmul_f32(
                    (d, uw, t),
                    &a.n,
                    true,
                    &d_pre,
                    false,
                    &mut self.grads[ix.uvqk],
                    1.0,
                    0.0,
                )
                .map_err(cuda)?;
            let mut dn = z32(t * d)?;
            self.blas
                .matmul_f32(
                    (t, d, uw),
                    &d_pre,
                    false,
                    &self.params[ix.uvqk],
                    true,
                    &mut dn,
                    1.0,
                    0.0,
                )
                .map_err(cuda)?;
            self.phases.mark(dev, "uvqk gemms bwd")?;
            dev.layer_norm_bwd_acc(&dn, &a.n, &a.rstd_n, &mut de, (t, d))
                .map_err(cuda)?;
            self.phases.mark(dev, "ln bwd")?;
        }
        dev.dropout_inplace(&mut de, dropout.input as f32, seeds.input)
            .map_err(cuda)?;
        let (gi, gp) = two_mut(&mut self.grads, ITEM, POS);
        dev.embedding_bwd(&de, &b.ids, &b.pos, gi, gp, d, (d as f32).sqrt())
            .map_err(cuda)?;
        self.phases.mark(dev, "embedding bwd")?;
        let mean = dev.download(&loss_sum).map_err(cuda)?[0] as f64;
        Ok(mean)
    }

    /// One AdamW step on a batch of users; returns the loss sum over supervised positions and
    /// the tokens encoded (zero loss count: nothing to learn, no update).
    pub fn step(&mut self, seqs: &[&UserSequence], seed: u64) -> Result<(LossSum, usize)> {
        let Some(b) = self.batch(seqs)?.filter(|b| b.count > 0) else {
            return Ok((LossSum::default(), 0));
        };
        let mean = self.forward_backward(&b, seed, None)?;
        self.step += 1;
        let opt = DeviceAdamW {
            lr: self.adamw.lr as f32,
            beta1: self.adamw.beta1 as f32,
            beta2: self.adamw.beta2 as f32,
            eps: self.adamw.eps as f32,
            weight_decay: self.adamw.weight_decay as f32,
        };
        for i in 0..self.params.len() {
            self.dev
                .adamw_step(
                    &opt,
                    self.step as u32,
                    &mut self.params[i],
                    &self.grads[i],
                    &mut self.m[i],
                    &mut self.v[i],
                )
                .map_err(cuda)?;
        }
        self.phases.mark(&self.dev, "adamw")?;
        Ok((
            LossSum {
                sum: mean * b.count as f64,
                count: b.count,
            },
            b.tokens,
        ))
    }

    /// Gradients of the mean loss of a batch with the given negatives
    /// (`[tokens][num_negatives]`, in batch token order), no update: for checking against the CPU.
    pub fn gradients(
        &mut self,
        seqs: &[&UserSequence],
        negatives: &[i64],
        seed: u64,
    ) -> Result<(f64, Weights<f32>)> {
        let Some(b) = self.batch(seqs)?.filter(|b| b.count > 0) else {
            return Err(Error::Input("batch has no supervised position".into()));
        };
        let mean = self.forward_backward(&b, seed, Some(negatives))?;
        let mut g = self.host_template();
        download_into(&self.dev, &self.grads, &mut g)?;
        Ok((mean, g))
    }

    /// The L2-normalised embedding of each user's last position (dropout off), `[seqs, D]`,
    /// `chunk` users per forward: the device half of validation (bf16 attention, so rankings
    /// can differ from the CPU encoder's on near ties).
    pub fn encode_users(&self, seqs: &[UserSequence], chunk: usize) -> Result<Vec<f32>> {
        let d = self.cfg.embedding_dim;
        let mut out = Vec::with_capacity(seqs.len() * d);
        for part in seqs.chunks(chunk.max(1)) {
            if let Some(s) = part.iter().find(|s| s.items.is_empty()) {
                return Err(Error::Input(format!(
                    "user {} has an empty history",
                    s.user_id
                )));
            }
            let cut: Vec<UserSequence> = part
                .iter()
                .map(|s| s.truncated(self.cfg.max_sequence_len))
                .collect();
            let refs: Vec<&UserSequence> = cut.iter().collect();
            let Some(b) = self.batch(&refs)? else {
                continue;
            };
            let (e, _) = self.forward(&b, 0, Dropout::OFF, false)?;
            let host = self.dev.download(&e).map_err(cuda)?;
            let mut end = 0;
            for s in &cut {
                end += s.items.len();
                let row = &host[(end - 1) * d..end * d];
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                let inv = 1.0 / norm.max(self.cfg.l2_norm_eps as f32);
                out.extend(row.iter().map(|x| x * inv));
            }
        }
        Ok(out)
    }

    fn host_template(&self) -> Weights<f32> {
        self.template.clone()
    }

    /// Copies the device weights and AdamW state into `w` and `opt` (epoch end, checkpoints).
    pub fn download(&self, w: &mut Weights<f32>, opt: &mut AdamW<f32>) -> Result<()> {
        download_into(&self.dev, &self.params, w)?;
        download_into(&self.dev, &self.m, &mut opt.m)?;
        download_into(&self.dev, &self.v, &mut opt.v)?;
        opt.step = self.step;
        Ok(())
    }
}

fn attention<'a>(
    cfg: &'a ModelConfig,
    hd: HeadDims,
    params: &'a [CudaSlice<f32>],
    b: &'a Batch,
    l: usize,
    acts: (
        &'a CudaSlice<bf16>,
        &'a CudaSlice<bf16>,
        &'a CudaSlice<bf16>,
    ),
) -> AttentionInputs<'a> {
    let ix = layer_ix(l);
    AttentionInputs {
        shape: AttentionShape {
            batch: b.seqs,
            heads: hd.heads,
            head_dim: hd.dk,
            total_tokens: b.tokens,
            max_len: b.max_len,
        },
        options: AttentionOptions {
            alpha: 1.0,
            norm_n: cfg.n() as f32,
            max_attn_len: 0,
        },
        seq_offsets: &b.offsets,
        num_targets: None,
        rab: Some(RabTensors {
            n: cfg.n(),
            num_buckets: cfg.num_time_buckets,
            bucket_divisor: cfg.time_bucket_divisor as f32,
            pos_w: &params[ix.pos_w],
            ts_w: &params[ix.ts_w],
            timestamps: &b.timestamps,
            t_next: &b.t_next,
        }),
        q: acts.0,
        k: acts.1,
        v: acts.2,
    }
}

/// A zero-filled device buffer of `n` elements.
fn zeros<T: DeviceRepr + ValidAsZeroBits>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    dev.zeros::<T>(n).map_err(cuda)
}

fn download_into(dev: &CudaDevice, src: &[CudaSlice<f32>], w: &mut Weights<f32>) -> Result<()> {
    for (dst, s) in tensors_mut(w).into_iter().zip(src) {
        let h = dev.download(s).map_err(cuda)?;
        dst.copy_from_slice(&h);
    }
    Ok(())
}

fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert!(a < b, "two_mut wants a < b");
    let (x, y) = v.split_at_mut(b);
    (&mut x[a], &mut y[0])
}
