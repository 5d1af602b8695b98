//! Retrieval on the GPU: encode, L2, score the whole catalogue per item-table binding, keep each
//! workgroup's top K, merge; only `[B, K]` scores and ids come back. A K beyond what a
//! workgroup's sort holds ([`ops::max_top_k`]) takes the other path: the GPU scores every item
//! (`score_all`, same arithmetic) for a group of users at a time and the host selects.

use super::model::{GpuModel, TokenBatch};
use super::ops;
use super::record::{Recorder, to_f32, to_u32};
use crate::error::Result;
use crate::reference::TopK;
use crate::reference::retrieval::select_top_k;
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
            let b = chunk.len();
            let mut rec = self.recorder();
            let users = self.record_users(&mut rec, chunk)?;
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
    /// Records the forward, L2 and the gather of each user's last position: the L2-normalised
    /// user embeddings `[B, D]` of one chunk of sequences (see [`GpuModel::chunks`]).
    fn record_users(&self, rec: &mut Recorder, chunk: &[UserSequence]) -> Result<wgpu::Buffer> {
        let d = self.dims.d;
        let refs: Vec<&UserSequence> = chunk.iter().collect();
        let batch = TokenBatch::new(self, &refs, &[])?;
        let (b, t) = (batch.batch(), batch.total());
        let e = self.record_forward(rec, &batch, None, None)?;
        let o = rec.scratch((t * d * 4) as u64)?;
        rec.tag("l2_norm");
        ops::l2_norm(rec, &e, &o, t, d, self.cfg.l2_norm_eps)?;
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
        Ok(users)
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
            let mut rec = self.recorder();
            let users = self.record_users(&mut rec, chunk)?;
            let bytes = (chunk.len() * d * 4) as u64;
            let users = to_f32(&self.finish(rec, &[(&users, 0, bytes)])?[0]);
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
