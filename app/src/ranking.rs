//! The M-FALCON ranking stepper: prefill a user's history once, then score candidates micro-batch
//! by micro-batch against the cached K/V (spec section 5), one step per request.

use crate::backend::InferenceBackend;
use hstu_runtime::checkpoint::Model;
use hstu_runtime::reference::KvCache;
use hstu_runtime::reference::ops::l2_normalize;
use hstu_runtime::reference::ranking::ranking_logits;
use hstu_runtime::rng::Rng;
use hstu_runtime::sequences::UserSequence;
use hstu_runtime::tensor::dot;
use std::collections::HashSet;
use std::time::Instant;

/// Where the candidates come from.
#[derive(Clone, Debug, PartialEq)]
pub enum CandidateSource {
    /// The retrieval model's top-`count` for this user.
    RetrievalTopK,
    /// `count` distinct items outside the history, drawn with this seed.
    Random { seed: u64 },
    /// Ids typed by the user (commas or spaces between).
    Typed(String),
}

/// Parse typed ids; each must be in `1..=num_items`.
pub fn parse_candidates(text: &str, num_items: usize) -> Result<Vec<u32>, String> {
    let ids: Vec<u32> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .map_err(|_| format!("`{s}` is not an item id"))
        })
        .collect::<Result<_, _>>()?;
    if let Some(bad) = ids.iter().find(|&&i| i == 0 || i as usize > num_items) {
        return Err(format!("item {bad} is outside 1..={num_items}"));
    }
    if ids.is_empty() {
        return Err("type at least one item id".into());
    }
    Ok(ids)
}

/// `count` distinct random items in `1..=num_items` outside `history`.
pub fn random_candidates(num_items: usize, history: &[u32], count: usize, seed: u64) -> Vec<u32> {
    let excluded: HashSet<u32> = history.iter().copied().collect();
    let available = (1..=num_items as u32)
        .filter(|c| !excluded.contains(c))
        .count();
    let mut rng = Rng::new(seed);
    let mut picked = Vec::new();
    let mut seen = HashSet::new();
    while picked.len() < count.min(available) {
        let c = 1 + rng.below(num_items as u64) as u32;
        if !excluded.contains(&c) && seen.insert(c) {
            picked.push(c);
        }
    }
    picked
}

/// What the prefill did.
#[derive(Clone, Debug, PartialEq)]
pub struct PrefillReport {
    pub history_len: usize,
    pub layers: usize,
    /// K and V of every layer, f32.
    pub cache_bytes: usize,
    pub elapsed_ms: f64,
    /// How scores are made: the ranking head, or the retrieval score when the model has none.
    pub scoring: String,
}

/// One micro-batch.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    pub step: usize,
    /// Index of this batch's first candidate in the candidate list.
    pub first: usize,
    /// One score per candidate of the batch.
    pub scores: Vec<f32>,
    /// History rows read from the cache (instead of recomputed) by this step.
    pub cache_rows_reused: usize,
    pub elapsed_ms: f64,
}

/// A ranking run in progress, kept on the worker.
pub struct RankSession {
    pub seq: UserSequence,
    pub candidates: Vec<u32>,
    pub microbatch: usize,
    cache: KvCache<f32>,
    /// The user embedding for retrieval scoring when the model has no ranking head.
    user_embedding: Option<Vec<f32>>,
    next: usize,
    steps: usize,
}

impl RankSession {
    /// Prefill `seq` (already truncated) on `model`.
    pub fn start(
        backend: &dyn InferenceBackend,
        model: &Model,
        seq: UserSequence,
        candidates: Vec<u32>,
        microbatch: usize,
    ) -> (RankSession, PrefillReport) {
        let start = Instant::now();
        let (cfg, w) = (&model.config, &model.weights);
        let cache = backend.prefill(cfg, w, &seq);
        let user_embedding = w
            .ranking
            .is_none()
            .then(|| backend.encode_user(cfg, w, &seq));
        let cache_bytes = cache
            .keys
            .iter()
            .chain(&cache.values)
            .map(|m| m.data.len() * 4)
            .sum();
        let scoring = if w.ranking.is_some() {
            "ranking head: P(rating >= 4) = sigmoid(logit of task 0)".to_string()
        } else {
            "no ranking head: retrieval score o_user . normalize(item)".to_string()
        };
        let report = PrefillReport {
            history_len: cache.num_history(),
            layers: cache.keys.len(),
            cache_bytes,
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
            scoring,
        };
        let session = RankSession {
            seq,
            candidates,
            microbatch: microbatch.max(1),
            cache,
            user_embedding,
            next: 0,
            steps: 0,
        };
        (session, report)
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.candidates.len()
    }

    /// Score the next micro-batch; `None` when every candidate has been scored.
    pub fn step(&mut self, backend: &dyn InferenceBackend, model: &Model) -> Option<StepReport> {
        if self.is_done() {
            return None;
        }
        let start = Instant::now();
        let (cfg, w) = (&model.config, &model.weights);
        let end = (self.next + self.microbatch).min(self.candidates.len());
        let batch = &self.candidates[self.next..end];
        let e = backend.score_candidates(cfg, w, &self.cache, batch);
        let scores = (0..batch.len())
            .map(
                |c| match (&self.user_embedding, ranking_logits(w, e.row(c))) {
                    (_, Some(logits)) => 1.0 / (1.0 + (-logits[0]).exp()),
                    (Some(user), None) => {
                        let item = l2_normalize(w.item_emb.row(batch[c] as usize), cfg.l2_norm_eps);
                        dot(user, &item)
                    }
                    (None, None) => f32::NAN,
                },
            )
            .collect();
        let report = StepReport {
            step: self.steps,
            first: self.next,
            scores,
            cache_rows_reused: self.cache.num_history(),
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        };
        self.next = end;
        self.steps += 1;
        Some(report)
    }
}

/// Candidate indices ordered by score, best first (ties: list order); unscored last.
pub fn ranked_order(scores: &[Option<f32>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let key = |i: usize| scores[i].unwrap_or(f32::NEG_INFINITY);
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;
    use crate::model_info::load_or_seed;
    use hstu_runtime::reference::rank_candidates;
    use std::path::Path;

    #[test]
    fn typed_and_random_candidates() {
        assert_eq!(parse_candidates("3, 5 9", 10), Ok(vec![3, 5, 9]));
        assert!(parse_candidates("3 x", 10).is_err());
        assert!(parse_candidates("11", 10).is_err());
        let r = random_candidates(20, &[1, 2, 3], 10, 5);
        assert_eq!(r.len(), 10);
        assert!(r.iter().all(|c| *c > 3 && *c <= 20));
        assert_eq!(r, random_candidates(20, &[1, 2, 3], 10, 5));
        assert_eq!(random_candidates(4, &[1, 2, 3], 10, 5), vec![4]);
    }

    #[test]
    fn stepping_matches_one_call_and_orders() {
        let (model, _) = load_or_seed(Path::new("/nonexistent"), true);
        let mut seq =
            UserSequence::new(1, vec![4, 9, 1, 30, 22], vec![100, 160, 5000, 5000, 90000]);
        seq.ratings = Some(vec![5, 3, 4, 1, 2]);
        seq.candidates = vec![7, 8, 9, 33, 2, 40, 12];
        let (mut s, rep) =
            RankSession::start(&CpuBackend, &model, seq.clone(), seq.candidates.clone(), 3);
        assert_eq!(rep.history_len, 5);
        let mut scores = Vec::new();
        while let Some(step) = s.step(&CpuBackend, &model) {
            assert!(step.scores.len() <= 3);
            scores.extend(step.scores);
        }
        let e = rank_candidates(&model.config, &model.weights, &seq, 7);
        for (c, got) in scores.iter().enumerate() {
            let l = ranking_logits(&model.weights, e.row(c)).unwrap()[0];
            let want = 1.0 / (1.0 + (-l).exp());
            assert!((got - want).abs() < 1e-6, "candidate {c}: {got} vs {want}");
        }
        assert_eq!(ranked_order(&[Some(0.1), None, Some(0.9)]), vec![2, 0, 1]);
    }
}
