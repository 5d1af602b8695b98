//! Retrieval on the GPU: encode, L2, score the whole catalogue per item-table binding, keep each
//! workgroup's top K, merge; only `[B, K]` scores and ids come back.

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
