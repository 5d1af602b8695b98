//! A model on the GPU: padded weights, the item table split across bindings, and the encoder
//! forward of spec section 1 (embedding -> per layer LN, uvqk GEMM + silu, fused attention,
//! gating, output GEMM + bias + residual -> L2).

use super::context::GpuContext;
use super::ops::{self, AttentionBuffers, AttentionParams, ItemChunk, MatmulParams, pad4};
use super::record::{PassTime, Recorder};
use crate::checkpoint::{Model, Weights};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::reference::ops::time_bucket;
use crate::sequences::UserSequence;
use hstu_shaders::Variant;

/// Marks a token without an action embedding.
pub const NO_ACTION: u32 = u32::MAX;

/// Options of [`GpuModel::upload_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct UploadOptions {
    /// Item-table rows per storage binding; `None` = as many as `max_storage_buffer_binding_size` allows.
    pub max_item_rows_per_binding: Option<usize>,
}

/// Dimensions derived from the config, with the padded strides of the GPU buffers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub d: usize,
    pub d4: usize,
    pub h: usize,
    pub dqk: usize,
    pub dv: usize,
    pub hdv: usize,
    pub hdqk: usize,
    /// uvqk row stride: pad4(2 H dv + 2 H dqk)
    pub w4: usize,
    /// y row stride: pad4(H dv)
    pub y4: usize,
    pub n: usize,
}

pub(crate) struct GpuLayer {
    /// W_uvqk padded: [d4, w4]
    pub uvqk_w: wgpu::Buffer,
    /// W_o^T padded: [y4, d4]
    pub o_wt: wgpu::Buffer,
    /// b_o padded: [d4]
    pub o_b: wgpu::Buffer,
    /// pos_w [2N - 1] | ts_w [buckets + 1]
    pub rab_w: wgpu::Buffer,
}

/// HSTU weights resident on one GPU.
pub struct GpuModel {
    pub(crate) ctx: GpuContext,
    pub(crate) cfg: ModelConfig,
    pub(crate) dims: Dims,
    pub(crate) items: Vec<ItemChunk>,
    pub(crate) pos_emb: wgpu::Buffer,
    pub(crate) action_emb: wgpu::Buffer,
    pub(crate) has_actions: bool,
    pub(crate) layers: Vec<GpuLayer>,
    /// Smallest |dt| with bucket >= k, k = 0..=num_time_buckets (u32::MAX when out of u32 range).
    pub(crate) thresholds: Vec<u32>,
    /// When set, every call records timestamps and adds its GPU time to `gpu_ns`.
    profiling: std::sync::atomic::AtomicBool,
    gpu_ns: std::sync::Mutex<f64>,
    /// Every profiled dispatch since the last [`GpuModel::take_pass_times`].
    passes: std::sync::Mutex<Vec<PassTime>>,
}

/// Encoder outputs (spec section 4 `encode`).
#[derive(Clone, Debug)]
pub struct GpuEncodeOutput {
    /// [B, D], L2-normalised
    pub user_embeddings: Vec<f32>,
    /// [sum L, D], L2-normalised
    pub sequence_embeddings: Vec<f32>,
    /// [B + 1]
    pub seq_offsets: Vec<i64>,
}

/// `thresholds[k]` = smallest `|dt|` with `bucket(dt) >= k`, computed with the reference's own
/// `time_bucket` so the kernel's f32 estimate, corrected by them, agrees exactly (u32::MAX when out of range).
pub fn time_bucket_thresholds(divisor: f64, num_buckets: usize) -> Vec<u32> {
    let tb = |dt: i64| time_bucket(dt, divisor, num_buckets);
    (0..=num_buckets)
        .map(|k| {
            if k == 0 {
                return 0;
            }
            if tb(u32::MAX as i64) < k {
                return u32::MAX;
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

pub(crate) fn bucket_thresholds(cfg: &ModelConfig) -> Vec<u32> {
    time_bucket_thresholds(cfg.time_bucket_divisor, cfg.num_time_buckets)
}

fn storage_with(ctx: &GpuContext, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
    let size = (data.len() as u64).max(16).div_ceil(4) * 4;
    if size > ctx.max_binding_bytes() {
        return Err(Error::Limit(format!(
            "{label}: {size} bytes exceed the largest storage binding ({}) of {}",
            ctx.max_binding_bytes(),
            ctx.info.name
        )));
    }
    ctx.scoped(label, || {
        let b = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        if !data.is_empty() {
            ctx.queue.write_buffer(&b, 0, data);
        }
        Ok(b)
    })
}

/// `src: [rows, cols]` into a zero-padded `[prows, pcols]`.
fn padded(src: &[f32], rows: usize, cols: usize, prows: usize, pcols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; prows * pcols];
    for r in 0..rows {
        out[r * pcols..r * pcols + cols].copy_from_slice(&src[r * cols..(r + 1) * cols]);
    }
    out
}

impl GpuModel {
    /// Upload a loaded model directory.
    pub fn upload(ctx: &GpuContext, model: &Model) -> Result<GpuModel> {
        GpuModel::upload_with(ctx, &model.config, &model.weights, UploadOptions::default())
    }

    /// Upload weights; the item table goes into as many bindings as the device limits need.
    pub fn upload_with(
        ctx: &GpuContext,
        cfg: &ModelConfig,
        w: &Weights<f32>,
        opts: UploadOptions,
    ) -> Result<GpuModel> {
        let (d, h, dqk, dv) = (
            cfg.embedding_dim,
            cfg.num_heads,
            cfg.attention_dim,
            cfg.linear_dim,
        );
        let dims = Dims {
            d,
            d4: pad4(d),
            h,
            dqk,
            dv,
            hdv: h * dv,
            hdqk: h * dqk,
            w4: pad4(cfg.uvqk_dim()),
            y4: pad4(h * dv),
            n: cfg.n(),
        };
        let rows = w.item_emb.rows;
        let row_bytes = (d * 4) as u64;
        let fit = (ctx.max_binding_bytes() / row_bytes).max(1) as usize;
        let per = opts.max_item_rows_per_binding.unwrap_or(fit).clamp(1, fit);
        let mut items = Vec::new();
        for lo in (0..rows).step_by(per) {
            let hi = (lo + per).min(rows);
            let bytes: &[u8] = bytemuck::cast_slice(&w.item_emb.data[lo * d..hi * d]);
            items.push(ItemChunk {
                buffer: storage_with(ctx, "item_emb", bytes)?,
                lo: lo as u32,
                hi: hi as u32,
            });
        }
        let pos_emb = storage_with(ctx, "pos_emb", bytemuck::cast_slice(&w.pos_emb.data))?;
        let (action_emb, has_actions) = match &w.ranking {
            Some(r) => (
                storage_with(ctx, "action_emb", bytemuck::cast_slice(&r.action_emb.data))?,
                true,
            ),
            None => (storage_with(ctx, "action_emb", &[0u8; 16])?, false),
        };
        let mut layers = Vec::new();
        for l in &w.layers {
            let uvqk = padded(&l.uvqk.data, d, cfg.uvqk_dim(), dims.d4, dims.w4);
            // W_o: [D, H dv] -> W_o^T: [H dv, D], padded to [y4, d4].
            let mut o_t = vec![0.0f32; dims.y4 * dims.d4];
            for r in 0..d {
                for c in 0..dims.hdv {
                    o_t[c * dims.d4 + r] = l.o_w.data[r * dims.hdv + c];
                }
            }
            let o_b = padded(&l.o_b, 1, d, 1, dims.d4);
            let mut rab = l.pos_w.clone();
            rab.extend_from_slice(&l.ts_w);
            layers.push(GpuLayer {
                uvqk_w: storage_with(ctx, "uvqk", bytemuck::cast_slice(&uvqk))?,
                o_wt: storage_with(ctx, "o_w", bytemuck::cast_slice(&o_t))?,
                o_b: storage_with(ctx, "o_b", bytemuck::cast_slice(&o_b))?,
                rab_w: storage_with(ctx, "rab_w", bytemuck::cast_slice(&rab))?,
            });
        }
        ctx.wait()?;
        Ok(GpuModel {
            ctx: ctx.clone(),
            cfg: cfg.clone(),
            dims,
            items,
            pos_emb,
            action_emb,
            has_actions,
            layers,
            thresholds: bucket_thresholds(cfg),
            profiling: false.into(),
            gpu_ns: std::sync::Mutex::new(0.0),
            passes: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Profile every later call with timestamp queries (no cost when off).
    pub fn set_profiling(&self, on: bool) {
        self.profiling
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// GPU nanoseconds accumulated by profiled calls since the last take.
    pub fn take_gpu_ns(&self) -> f64 {
        self.gpu_ns
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or(0.0)
    }

    /// GPU time of every profiled dispatch since the last take, labelled by op (see [`Recorder::tag`]).
    pub fn take_pass_times(&self) -> Vec<PassTime> {
        self.passes
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default()
    }

    /// A recorder, timestamped when profiling.
    pub(crate) fn recorder(&self) -> Recorder<'_> {
        let rec = Recorder::new(&self.ctx);
        if self.profiling.load(std::sync::atomic::Ordering::Relaxed) {
            rec.with_profiling(2048)
        } else {
            rec
        }
    }

    /// Finish `rec`, adding its GPU time when profiling.
    pub(crate) fn finish(
        &self,
        rec: Recorder,
        reads: &[(&wgpu::Buffer, u64, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        let (data, times) = rec.finish_profiled(reads)?;
        if !times.is_empty()
            && let Ok(mut g) = self.gpu_ns.lock()
        {
            *g += times.iter().map(|t| t.ns).sum::<f64>();
        }
        if !times.is_empty()
            && let Ok(mut g) = self.passes.lock()
        {
            g.extend(times);
        }
        Ok(data)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// How many bindings hold the item table.
    pub fn item_bindings(&self) -> usize {
        self.items.len()
    }

    /// Tokens per forward so that every activation fits one binding.
    pub(crate) fn max_tokens(&self) -> usize {
        let widest = self.dims.w4.max(self.dims.d4).max(self.dims.y4) as u64 * 4;
        ((self.ctx.max_binding_bytes() / widest) as usize).clamp(1, 1 << 17)
    }
}

/// Host-side layout of one forward: tokens, jagged offsets, the candidate counts and times.
pub(crate) struct TokenBatch {
    /// ids [T] | positions [T] | actions [T]
    pub tokens: Vec<u32>,
    pub seq_offsets: Vec<u32>,
    pub num_targets: Vec<u32>,
    /// t_next [T] | t_key [T], seconds relative to each sequence's first timestamp
    pub times: Vec<i32>,
    pub max_len: usize,
}

const TIME_RANGE: i64 = 1 << 30;

impl TokenBatch {
    pub fn total(&self) -> usize {
        *self.seq_offsets.last().unwrap_or(&0) as usize
    }

    pub fn batch(&self) -> usize {
        self.seq_offsets.len() - 1
    }

    /// History of every sequence (most recent `max_sequence_len`), with `candidates[b]` appended.
    pub fn new(
        model: &GpuModel,
        seqs: &[&UserSequence],
        candidates: &[&[u32]],
    ) -> Result<TokenBatch> {
        let cfg = &model.cfg;
        let (mut ids, mut pos, mut act) = (Vec::new(), Vec::new(), Vec::new());
        let (mut t_next, mut t_key) = (Vec::new(), Vec::new());
        let mut seq_offsets = vec![0u32];
        let mut num_targets = Vec::new();
        let mut max_len = 0;
        for (b, s) in seqs.iter().enumerate() {
            let s = s.truncated(cfg.max_sequence_len);
            let cands: &[u32] = candidates.get(b).copied().unwrap_or(&[]);
            let u = s.items.len();
            if u == 0 || s.timestamps.len() != u {
                return Err(Error::Input(format!(
                    "user {}: {} items and {} timestamps",
                    s.user_id,
                    u,
                    s.timestamps.len()
                )));
            }
            for &id in s.items.iter().chain(cands) {
                if id as usize > cfg.num_items {
                    return Err(Error::Input(format!(
                        "user {}: item id {id} > num_items {}",
                        s.user_id, cfg.num_items
                    )));
                }
            }
            let tq = s.query_time_secs();
            let base = s.timestamps[0];
            let rel = |t: i64| -> Result<i32> {
                let r = t - base;
                if r.abs() >= TIME_RANGE {
                    return Err(Error::Input(format!(
                        "user {}: timestamps span more than 2^30 s",
                        s.user_id
                    )));
                }
                Ok(r as i32)
            };
            let ratings = s.ratings.as_deref().filter(|_| model.has_actions);
            for i in 0..u {
                ids.push(s.items[i]);
                pos.push(i as u32);
                act.push(ratings.map_or(NO_ACTION, |r| r[i] as u32));
                t_next.push(rel(if i + 1 < u { s.timestamps[i + 1] } else { tq })?);
                t_key.push(rel(s.timestamps[i])?);
            }
            for &c in cands {
                ids.push(c);
                pos.push(u as u32);
                act.push(NO_ACTION);
                t_next.push(rel(tq)?);
                t_key.push(rel(tq)?);
            }
            let len = u + cands.len();
            max_len = max_len.max(len);
            seq_offsets.push(seq_offsets[b] + len as u32);
            num_targets.push(cands.len() as u32);
        }
        if let Some(r) = model.cfg.ranking.as_ref()
            && act
                .iter()
                .any(|&a| a != NO_ACTION && a as usize >= r.num_actions)
        {
            return Err(Error::Input(format!(
                "an action id exceeds num_actions {}",
                r.num_actions
            )));
        }
        let mut tokens = ids;
        tokens.extend(pos);
        tokens.extend(act);
        let mut times = t_next;
        times.extend(t_key);
        Ok(TokenBatch {
            tokens,
            seq_offsets,
            num_targets,
            times,
            max_len,
        })
    }

    /// `[seq_offsets | num_targets | thresholds]`
    pub fn meta(&self, thresholds: &[u32]) -> Vec<u32> {
        let mut m = self.seq_offsets.clone();
        m.extend(&self.num_targets);
        m.extend(thresholds);
        m
    }
}

impl GpuModel {
    /// Attention parameters of the research HSTU over a uvqk buffer.
    pub(crate) fn attention_params(&self, batch: usize, total: usize) -> AttentionParams {
        let d = &self.dims;
        AttentionParams {
            batch: batch as u32,
            heads: d.h as u32,
            dqk: d.dqk as u32,
            dv: d.dv as u32,
            q_offset: (2 * d.hdv) as u32,
            k_offset: (2 * d.hdv + d.hdqk) as u32,
            v_offset: d.hdv as u32,
            q_stride: d.w4 as u32,
            k_stride: d.w4 as u32,
            v_stride: d.w4 as u32,
            out_stride: d.hdv as u32,
            q_begin: 0,
            alpha: 1.0,
            inv_n: 1.0 / d.n as f32,
            max_attn_len: 0,
            has_rab: 1,
            rab_n: d.n as u32,
            num_buckets: self.cfg.num_time_buckets as u32,
            bucket_divisor: self.cfg.time_bucket_divisor as f32,
            num_targets_base: (batch + 1) as u32,
            thresholds_base: (2 * batch + 1) as u32,
            times_key_base: total as u32,
            _pad: [0; 2],
        }
    }

    pub(crate) fn uvqk_params(&self, rows: usize, c_row_offset: usize) -> MatmulParams {
        let d = &self.dims;
        MatmulParams {
            m: rows as u32,
            n: d.w4 as u32,
            k: d.d4 as u32,
            lda: d.d4 as u32,
            ldb: d.w4 as u32,
            ldc: d.w4 as u32,
            c_row_offset: c_row_offset as u32,
            silu: 1,
            ..MatmulParams::default()
        }
    }

    pub(crate) fn out_params(&self, rows: usize) -> MatmulParams {
        let d = &self.dims;
        MatmulParams {
            m: rows as u32,
            n: d.d4 as u32,
            k: d.y4 as u32,
            lda: d.y4 as u32,
            ldb: d.d4 as u32,
            ldc: d.d4 as u32,
            has_bias: 1,
            residual: 1,
            ..MatmulParams::default()
        }
    }

    /// Record the forward of `batch`; returns the final `e: [T, d4]` (before L2).
    /// `keep_uvqk[l]` receives a copy of layer l's uvqk rows (prefill); `capture[l]` the a_ij.
    pub(crate) fn record_forward(
        &self,
        rec: &mut Recorder,
        batch: &TokenBatch,
        keep_uvqk: Option<&[wgpu::Buffer]>,
        capture: Option<&[wgpu::Buffer]>,
    ) -> Result<wgpu::Buffer> {
        let d = self.dims;
        let t = batch.total();
        let b = batch.batch();
        let tokens = rec.upload(&batch.tokens)?;
        let meta = rec.upload(&batch.meta(&self.thresholds))?;
        let times = rec.upload(&batch.times)?;
        let e = rec.scratch((t * d.d4 * 4) as u64)?;
        let n = rec.scratch((t * d.d4 * 4) as u64)?;
        let uvqk = rec.scratch((t * d.w4 * 4) as u64)?;
        let attn = rec.scratch((t * d.hdv * 4) as u64)?;
        let y = rec.scratch((t * d.y4 * 4) as u64)?;
        rec.tag("embedding");
        ops::embedding(
            rec,
            &tokens,
            t,
            &self.items,
            &self.pos_emb,
            &self.action_emb,
            d.d,
            &e,
        )?;
        let ap = self.attention_params(b, t);
        for (l, layer) in self.layers.iter().enumerate() {
            rec.tag("layer_norm");
            ops::layer_norm(rec, &e, &n, t, d.d, self.cfg.layer_norm_eps)?;
            rec.tag("uvqk_gemm");
            ops::matmul(
                rec,
                Variant::F32,
                &self.uvqk_params(t, 0),
                &n,
                &layer.uvqk_w,
                &layer.o_b,
                &uvqk,
            )?;
            if let Some(keep) = keep_uvqk {
                rec.copy(&uvqk, 0, &keep[l], 0, (t * d.w4 * 4) as u64);
            }
            let (variant, cap) = match capture {
                Some(c) => (Variant::Capture, Some(&c[l])),
                None => (Variant::F32, None),
            };
            let bufs = AttentionBuffers {
                meta: &meta,
                q: &uvqk,
                k: &uvqk,
                v: &uvqk,
                rab_w: &layer.rab_w,
                times: &times,
                out: &attn,
                capture: cap,
            };
            rec.tag("attention");
            ops::attention(rec, variant, &ap, &bufs, batch.max_len)?;
            rec.tag("gating");
            ops::gating(
                rec,
                &attn,
                &uvqk,
                &y,
                t,
                d.hdv,
                d.w4,
                0,
                self.cfg.layer_norm_eps,
            )?;
            rec.tag("out_gemm");
            ops::matmul(
                rec,
                Variant::F32,
                &self.out_params(t),
                &y,
                &layer.o_wt,
                &layer.o_b,
                &e,
            )?;
        }
        Ok(e)
    }

    /// Batches of sequences whose tokens fit one forward.
    pub(crate) fn chunks<'s>(&self, seqs: &'s [UserSequence]) -> Vec<&'s [UserSequence]> {
        let max = self.max_tokens();
        let mut out = Vec::new();
        let (mut start, mut tokens) = (0, 0);
        for (i, s) in seqs.iter().enumerate() {
            let l = s.items.len().min(self.cfg.max_sequence_len);
            if i > start && (tokens + l > max || i - start >= 65535) {
                out.push(&seqs[start..i]);
                start = i;
                tokens = 0;
            }
            tokens += l;
        }
        if start < seqs.len() {
            out.push(&seqs[start..]);
        }
        out
    }

    /// L2-normalised embeddings of every position of every user (spec section 4 `encode`).
    pub fn encode(&self, seqs: &[UserSequence]) -> Result<GpuEncodeOutput> {
        let d = self.dims.d;
        let mut out = GpuEncodeOutput {
            user_embeddings: Vec::with_capacity(seqs.len() * d),
            sequence_embeddings: Vec::new(),
            seq_offsets: vec![0],
        };
        for chunk in self.chunks(seqs) {
            let refs: Vec<&UserSequence> = chunk.iter().collect();
            let batch = TokenBatch::new(self, &refs, &[])?;
            let t = batch.total();
            let mut rec = self.recorder();
            let e = self.record_forward(&mut rec, &batch, None, None)?;
            let o = rec.scratch((t * d * 4) as u64)?;
            rec.tag("l2_norm");
            ops::l2_norm(&mut rec, &e, &o, t, d, self.cfg.l2_norm_eps)?;
            let data = self.finish(rec, &[(&o, 0, (t * d * 4) as u64)])?;
            let emb: Vec<f32> = super::record::to_f32(&data[0]);
            let base = out.sequence_embeddings.len() / d;
            for w in batch.seq_offsets.windows(2) {
                let last = w[1] as usize - 1;
                out.user_embeddings
                    .extend_from_slice(&emb[last * d..(last + 1) * d]);
                out.seq_offsets.push((base + w[1] as usize) as i64);
            }
            out.sequence_embeddings.extend_from_slice(&emb);
        }
        Ok(out)
    }
}
