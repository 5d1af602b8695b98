//! Retrieval on the GPU: encode, L2, score the whole catalogue per item-table binding, keep each
//! workgroup's top K, merge; only `[B, K]` scores and ids come back. A K beyond what a
//! workgroup's sort holds ([`ops::max_top_k`]) takes the other path: the GPU scores every item
//! (`score_all`, same arithmetic) for a group of users at a time and the host selects.

use super::model::{GpuModel, TokenBatch};
use super::ops;
use super::record::{to_f32, to_u32};
use crate::error::Result;
use crate::reference::TopK;
use crate::sequences::UserSequence;

impl GpuModel {
    /// Top-`k` items per user (history excluded, best first; ties by smaller id).
    pub fn retrieve(&self, seqs: &[UserSequence], k: usize) -> Result<Vec<TopK>> {
        let d = self.dims.d;
        let mut out = Vec::with_capacity(seqs.len());
        if k == 0 {
            return Ok(seqs
                .iter()
                .map(|_| TopK {
                    items: vec![],
                    scores: vec![],
                })
                .collect());
        }
        if k > ops::max_top_k(&self.ctx) {
            return self.retrieve_by_all_scores(seqs, k);
        }
        for chunk in self.chunks(seqs) {
            let refs: Vec<&UserSequence> = chunk.iter().collect();
            let batch = TokenBatch::new(self, &refs, &[])?;
            let (b, t) = (batch.batch(), batch.total());
            let mut rec = self.recorder();
            let e = self.record_forward(&mut rec, &batch, None, None)?;
            let o = rec.scratch((t * d * 4) as u64)?;
            rec.tag("l2_norm");
            ops::l2_norm(&mut rec, &e, &o, t, d, self.cfg.l2_norm_eps)?;
            let users = rec.scratch((b * d * 4) as u64)?;
            for (i, w) in batch.seq_offsets.windows(2).enumerate() {
                let last = w[1] as u64 - 1;
                rec.copy(
                    &o,
                    last * d as u64 * 4,
                    &users,
                    (i * d * 4) as u64,
                    d as u64 * 4,
                );
            }
            let history = rec.upload(&history_table(chunk))?;
            let (scores, ids) = ops::top_k(
                &mut rec,
                &users,
                b,
                d,
                &self.items,
                self.cfg.num_items,
                &history,
                k,
                self.cfg.l2_norm_eps,
            )?;
            let bytes = (b * k * 4) as u64;
            let data = self.finish(rec, &[(&scores, 0, bytes), (&ids, 0, bytes)])?;
            let (s, ids) = (to_f32(&data[0]), to_u32(&data[1]));
            for u in 0..b {
                let mut top = TopK {
                    items: Vec::with_capacity(k),
                    scores: Vec::with_capacity(k),
                };
                for r in 0..k {
                    let id = ids[u * k + r];
                    if id != u32::MAX {
                        top.items.push(id);
                        top.scores.push(s[u * k + r]);
                    }
                }
                out.push(top);
            }
        }
        Ok(out)
    }
}

impl GpuModel {
    /// L2-normalised user embeddings `[B, D]` of one chunk of sequences (see [`GpuModel::chunks`]).
    fn user_embeddings(&self, chunk: &[UserSequence]) -> Result<Vec<f32>> {
        let d = self.dims.d;
        let refs: Vec<&UserSequence> = chunk.iter().collect();
        let batch = TokenBatch::new(self, &refs, &[])?;
        let (b, t) = (batch.batch(), batch.total());
        let mut rec = self.recorder();
        let e = self.record_forward(&mut rec, &batch, None, None)?;
        let o = rec.scratch((t * d * 4) as u64)?;
        rec.tag("l2_norm");
        ops::l2_norm(&mut rec, &e, &o, t, d, self.cfg.l2_norm_eps)?;
        let users = rec.scratch((b * d * 4) as u64)?;
        for (i, w) in batch.seq_offsets.windows(2).enumerate() {
            let last = w[1] as u64 - 1;
            rec.copy(
                &o,
                last * d as u64 * 4,
                &users,
                (i * d * 4) as u64,
                d as u64 * 4,
            );
        }
        let data = self.finish(rec, &[(&users, 0, (b * d * 4) as u64)])?;
        Ok(to_f32(&data[0]))
    }

    /// Retrieval for a `k` above [`ops::max_top_k`]: every score of every item-table binding for
    /// a group of users per submission (as many as keep each binding's scores within one storage
    /// binding and a readback within 64 MiB), then a selection on the host with the GPU path's
    /// order (higher score, then smaller id).
    fn retrieve_by_all_scores(&self, seqs: &[UserSequence], k: usize) -> Result<Vec<TopK>> {
        const READBACK_BYTES: usize = 64 << 20;
        let d = self.dims.d;
        let rows: usize = self.items.iter().map(|c| (c.hi - c.lo) as usize).sum();
        let widest = self
            .items
            .iter()
            .map(|c| (c.hi - c.lo) as usize)
            .max()
            .unwrap_or(1)
            .max(1);
        let by_binding = (self.ctx.max_binding_bytes() as usize / (widest * 4)).max(1);
        let group = by_binding
            .min(READBACK_BYTES / (rows.max(1) * 4))
            .clamp(1, 65535);
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in self.chunks(seqs) {
            let users = self.user_embeddings(chunk)?;
            for (g, part) in chunk.chunks(group).enumerate() {
                let g0 = g * group;
                let mut rec = self.recorder();
                let user_buf = rec.upload(&users[g0 * d..(g0 + part.len()) * d])?;
                let history = rec.upload(&history_table(part))?;
                let mut scores = Vec::with_capacity(self.items.len());
                for item_chunk in &self.items {
                    scores.push(ops::score_all(
                        &mut rec,
                        &user_buf,
                        part.len(),
                        d,
                        item_chunk,
                        self.cfg.num_items,
                        &history,
                        self.cfg.l2_norm_eps,
                    )?);
                }
                let reads: Vec<(&wgpu::Buffer, u64, u64)> = scores
                    .iter()
                    .zip(&self.items)
                    .map(|(buf, c)| (buf, 0, (part.len() * (c.hi - c.lo) as usize * 4) as u64))
                    .collect();
                let data = self.finish(rec, &reads)?;
                let data: Vec<Vec<f32>> = data.iter().map(|b| to_f32(b)).collect();
                for u in 0..part.len() {
                    let mut scored: Vec<(f32, u32)> = Vec::new();
                    for (c, s) in self.items.iter().zip(&data) {
                        let n = (c.hi - c.lo) as usize;
                        for (r, &x) in s[u * n..(u + 1) * n].iter().enumerate() {
                            if x > ops::NONE_SCORE {
                                scored.push((x, c.lo + r as u32));
                            }
                        }
                    }
                    out.push(select_top_k(scored, k));
                }
            }
        }
        Ok(out)
    }
}

/// The best `k` of `scored` (all of them when fewer): higher score first, then smaller id.
fn select_top_k(mut scored: Vec<(f32, u32)>, k: usize) -> TopK {
    let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    let k = k.min(scored.len());
    if k > 0 && k < scored.len() {
        scored.select_nth_unstable_by(k - 1, order);
    }
    scored.truncate(k);
    scored.sort_by(order);
    TopK {
        items: scored.iter().map(|s| s.1).collect(),
        scores: scored.iter().map(|s| s.0).collect(),
    }
}

/// `[hist_offsets B+1 | sorted, deduplicated history ids]` for the exclusion search.
pub(crate) fn history_table(seqs: &[UserSequence]) -> Vec<u32> {
    let mut offsets = vec![0u32];
    let mut ids = Vec::new();
    for s in seqs {
        let mut h = s.items.clone();
        h.sort_unstable();
        h.dedup();
        ids.extend(h);
        offsets.push(ids.len() as u32);
    }
    offsets.extend(ids);
    offsets
}
