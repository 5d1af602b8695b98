//! M-FALCON on the GPU (spec section 5): the history's uvqk rows of every layer stay in GPU buffers
//! ([`GpuKvCache`]); each candidate micro-batch appends its rows after them and runs the fused
//! attention over query rows `[U, U + m)` only, with the candidate mask (num_targets = m).

use super::cache::STORAGE;
use super::model::{GpuModel, NO_ACTION, TokenBatch};
use super::ops::{self, AttentionBuffers};
use super::record::{Recorder, to_f32};
use crate::error::{Error, Result};
use crate::sequences::UserSequence;
use hstu_shaders::Variant;

/// History state of one user on the GPU: per layer the `[U, w4]` uvqk rows (K and V among them).
pub struct GpuKvCache {
    layers: Vec<wgpu::Buffer>,
    num_history: usize,
    /// t_next and t_key of the history, relative to its first timestamp.
    t_next: Vec<i32>,
    t_key: Vec<i32>,
    /// t_q relative to the same origin.
    query_time: i32,
}

impl GpuKvCache {
    pub fn num_history(&self) -> usize {
        self.num_history
    }
}

impl GpuModel {
    /// Run the history once and keep every layer's uvqk rows on the GPU.
    pub fn prefill(&self, seq: &UserSequence) -> Result<GpuKvCache> {
        let batch = TokenBatch::new(self, &[seq], &[])?;
        let u = batch.total();
        let bytes = (u * self.dims.w4 * 4) as u64;
        let layers = (0..self.layers.len())
            .map(|_| self.ctx.take_buffer(bytes, STORAGE))
            .collect::<Result<Vec<_>>>()?;
        let mut rec = self.recorder();
        self.record_forward(&mut rec, &batch, Some(&layers), None)?;
        self.finish(rec, &[])?;
        // t_next of the last history token is t_q by construction.
        let query_time = batch.times[u - 1];
        Ok(GpuKvCache {
            layers,
            num_history: u,
            t_next: batch.times[..u].to_vec(),
            t_key: batch.times[u..2 * u].to_vec(),
            query_time,
        })
    }

    /// Final `e_c` (before L2) of each candidate: `[m * D]`, any micro-batch size.
    pub fn score_candidates(&self, cache: &GpuKvCache, candidates: &[u32]) -> Result<Vec<f32>> {
        let d = self.dims;
        let (u, m) = (cache.num_history, candidates.len());
        if m == 0 {
            return Ok(Vec::new());
        }
        if cache.layers.len() != self.layers.len() {
            return Err(Error::Input("kv cache belongs to another model".into()));
        }
        if let Some(&bad) = candidates
            .iter()
            .find(|&&c| c as usize > self.cfg.num_items)
        {
            return Err(Error::Input(format!(
                "candidate id {bad} > num_items {}",
                self.cfg.num_items
            )));
        }
        let total = u + m;
        let mut tokens: Vec<u32> = candidates.to_vec();
        tokens.extend(std::iter::repeat_n(u as u32, m));
        tokens.extend(std::iter::repeat_n(NO_ACTION, m));
        let mut times = cache.t_next.clone();
        times.extend(std::iter::repeat_n(cache.query_time, m));
        times.extend(&cache.t_key);
        times.extend(std::iter::repeat_n(cache.query_time, m));
        let mut meta = vec![0u32, total as u32, m as u32];
        meta.extend(&self.thresholds);

        let mut rec = self.recorder();
        let tokens = rec.upload(&tokens)?;
        let times = rec.upload(&times)?;
        let meta = rec.upload(&meta)?;
        let e = rec.scratch((m * d.d4 * 4) as u64)?;
        let n = rec.scratch((m * d.d4 * 4) as u64)?;
        let uvqk = rec.scratch((total * d.w4 * 4) as u64)?;
        let attn = rec.scratch((m * d.hdv * 4) as u64)?;
        let y = rec.scratch((m * d.y4 * 4) as u64)?;
        ops::embedding(
            &mut rec,
            &tokens,
            m,
            &self.items,
            &self.pos_emb,
            &self.action_emb,
            d.d,
            &e,
        )?;
        let mut ap = self.attention_params(1, total);
        ap.q_begin = u as u32;
        for (l, layer) in self.layers.iter().enumerate() {
            ops::layer_norm(&mut rec, &e, &n, m, d.d, self.cfg.layer_norm_eps)?;
            rec.copy(&cache.layers[l], 0, &uvqk, 0, (u * d.w4 * 4) as u64);
            let p = self.uvqk_params(m, u);
            ops::matmul(
                &mut rec,
                Variant::F32,
                &p,
                &n,
                &layer.uvqk_w,
                &layer.o_b,
                &uvqk,
            )?;
            let bufs = AttentionBuffers {
                meta: &meta,
                q: &uvqk,
                k: &uvqk,
                v: &uvqk,
                rab_w: &layer.rab_w,
                times: &times,
                out: &attn,
                capture: None,
            };
            ops::attention(&mut rec, Variant::F32, &ap, &bufs, m)?;
            ops::gating(
                &mut rec,
                &attn,
                &uvqk,
                &y,
                m,
                d.hdv,
                d.w4,
                u,
                self.cfg.layer_norm_eps,
            )?;
            ops::matmul(
                &mut rec,
                Variant::F32,
                &self.out_params(m),
                &y,
                &layer.o_wt,
                &layer.o_b,
                &e,
            )?;
        }
        let data = self.finish(rec, &[(&e, 0, (m * d.d4 * 4) as u64)])?;
        let padded = to_f32(&data[0]);
        Ok(padded
            .chunks(d.d4)
            .flat_map(|row| row[..d.d].iter().copied())
            .collect())
    }

    /// One forward over history + all candidates with the candidate mask (no cache): the
    /// one-pass form M-FALCON must equal, and the "one pass per candidate" baseline.
    pub fn candidates_one_pass(&self, seq: &UserSequence, candidates: &[u32]) -> Result<Vec<f32>> {
        let d = self.dims;
        let batch = TokenBatch::new(self, &[seq], &[candidates])?;
        let t = batch.total();
        let u = t - candidates.len();
        let mut rec = self.recorder();
        let e = self.record_forward(&mut rec, &batch, None, None)?;
        let bytes = (candidates.len() * d.d4 * 4) as u64;
        let data = self.finish(rec, &[(&e, (u * d.d4 * 4) as u64, bytes)])?;
        Ok(to_f32(&data[0])
            .chunks(d.d4)
            .flat_map(|row| row[..d.d].iter().copied())
            .collect())
    }

    /// `e_c` of every user's candidates, `microbatch` candidates per pass over one prefill (0 = all).
    pub fn rank(&self, seqs: &[UserSequence], microbatch: usize) -> Result<Vec<Vec<f32>>> {
        seqs.iter()
            .map(|s| {
                let cache = self.prefill(s)?;
                let mb = if microbatch == 0 {
                    s.candidates.len().max(1)
                } else {
                    microbatch
                };
                let mut out = Vec::with_capacity(s.candidates.len() * self.dims.d);
                for chunk in s.candidates.chunks(mb) {
                    out.extend(self.score_candidates(&cache, chunk)?);
                }
                self.ctx.give_buffers(cache.layers);
                Ok(out)
            })
            .collect()
    }

    /// `a_ij` of every layer and head for one user's history: `[layer][head][L * L]`.
    pub fn capture_attention(&self, seq: &UserSequence) -> Result<Vec<Vec<Vec<f32>>>> {
        let batch = TokenBatch::new(self, &[seq], &[])?;
        let (l, h) = (batch.total(), self.dims.h);
        let bytes = (h * l * l * 4) as u64;
        let mut rec = Recorder::new(&self.ctx);
        let mut bufs = Vec::new();
        for _ in 0..self.layers.len() {
            let b = rec.scratch(bytes)?;
            rec.clear(&b, b.size());
            bufs.push(b);
        }
        self.record_forward(&mut rec, &batch, None, Some(&bufs))?;
        let reads: Vec<(&wgpu::Buffer, u64, u64)> = bufs.iter().map(|b| (b, 0, bytes)).collect();
        let data = rec.finish(&reads)?;
        Ok(data
            .iter()
            .map(|layer| to_f32(layer).chunks(l * l).map(<[f32]>::to_vec).collect())
            .collect())
    }
}
