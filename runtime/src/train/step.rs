//! One example's loss and gradients, and one batch's: examples in fixed chunks run in parallel,
//! each chunk accumulating into its own gradients, the chunks reduced in order (deterministic
//! for a seed whatever the number of threads).

use super::grads::Grads;
use super::loss::{LossSum, SampledSoftmax, ranking_head_bce};
use super::ops::l2_normalize_backward;
use super::tape::{Dropout, RabIndex, backward, forward};
use crate::checkpoint::Weights;
use crate::config::ModelConfig;
use crate::data::ranking::RankingExample;
use crate::real::Real;
use crate::reference::encoder::Tokens;
use crate::reference::ops::l2_normalize;
use crate::rng::Rng;
use crate::sequences::UserSequence;
use crate::tensor::Mat;
use rayon::prelude::*;

/// Examples per gradient buffer: fixed, so the summation order never depends on the thread count.
pub const CHUNK_EXAMPLES: usize = 4;

/// The next item of every history position: `x_{p+1}`, and the target (or 0 = unsupervised) last.
pub fn autoregressive_positives(seq: &UserSequence) -> Vec<u32> {
    let mut p: Vec<u32> = seq.items[1..].to_vec();
    p.push(seq.target.unwrap_or(0));
    p
}

/// Sampled-softmax loss sum of one user's sequence; gradients of that sum added into `g`.
/// Returns the loss and the number of tokens encoded.
#[allow(clippy::too_many_arguments)]
pub fn retrieval_example<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    items_normed: &Mat<R>,
    loss: &SampledSoftmax,
    dropout: Dropout,
    seq: &UserSequence,
    rng: &mut Rng,
    g: &mut Grads<R>,
) -> (LossSum, usize) {
    let tokens = Tokens::new(seq, &[]);
    let index = RabIndex::new(cfg, &tokens);
    let tape = forward(cfg, w, &tokens, &index, dropout, Some(rng));
    let (l, d) = (tape.e.rows, tape.e.cols);
    let mut o = Mat::zeros(l, d);
    for t in 0..l {
        o.row_mut(t)
            .copy_from_slice(&l2_normalize(tape.e.row(t), cfg.l2_norm_eps));
    }
    let positives = autoregressive_positives(seq);
    let mut d_o = Mat::zeros(l, d);
    let sum = loss.loss(
        &o,
        &positives,
        items_normed,
        rng,
        &mut d_o,
        &mut g.item_normed,
    );
    let mut de = Mat::zeros(l, d);
    for t in 0..l {
        de.row_mut(t).copy_from_slice(&l2_normalize_backward(
            tape.e.row(t),
            d_o.row(t),
            cfg.l2_norm_eps,
        ));
    }
    backward(cfg, w, &tokens, &index, &tape, de, &mut g.w);
    (sum, l)
}

/// Ranking BCE (summed over tasks and candidates) of one example; gradients added into `g`.
pub fn ranking_example<R: Real>(
    cfg: &ModelConfig,
    w: &Weights<R>,
    dropout: Dropout,
    ex: &RankingExample,
    rng: &mut Rng,
    g: &mut Grads<R>,
) -> (LossSum, usize) {
    let head = w
        .ranking
        .as_ref()
        .expect("a ranking model has a ranking head");
    let seq = &ex.sequence;
    let tokens = Tokens::new(seq, &seq.candidates);
    let index = RabIndex::new(cfg, &tokens);
    let tape = forward(cfg, w, &tokens, &index, dropout, Some(rng));
    let (u, d) = (seq.items.len(), cfg.embedding_dim);
    let tasks = head.mlp2_b.len();
    let mut de = Mat::zeros(tape.e.rows, d);
    let mut sum = LossSum::default();
    let gh =
        g.w.ranking
            .as_mut()
            .expect("gradients shaped like the weights");
    for c in 0..seq.candidates.len() {
        let labels = &ex.labels[c * tasks..][..tasks];
        let (l, d_e) = ranking_head_bce(head, tape.e.row(u + c), labels, gh);
        de.row_mut(u + c).copy_from_slice(&d_e);
        sum.add(LossSum { sum: l, count: 1 });
    }
    backward(cfg, w, &tokens, &index, &tape, de, &mut g.w);
    (sum, tokens.len())
}

/// One example's loss sum and tokens, its gradients added into the buffer.
pub type ExampleGrads<'a, R, E> =
    &'a (dyn Fn(&E, &mut Rng, &mut Grads<R>) -> (LossSum, usize) + Sync);

/// Gradients of a batch: `per_example(example, rng, grads)` for every example, where example `i`
/// draws from `rng.fork(i)`. Returns the summed gradients, the loss sum and the tokens encoded.
pub fn batch_grads<R: Real, E: Sync>(
    w: &Weights<R>,
    examples: &[E],
    rng: &Rng,
    per_example: ExampleGrads<R, E>,
) -> (Grads<R>, LossSum, usize) {
    let parts: Vec<(Grads<R>, LossSum, usize)> = examples
        .par_chunks(CHUNK_EXAMPLES)
        .enumerate()
        .map(|(ci, chunk)| {
            let mut g = Grads::zeros(w);
            let (mut sum, mut tokens) = (LossSum::default(), 0);
            for (k, ex) in chunk.iter().enumerate() {
                let mut r = rng.fork((ci * CHUNK_EXAMPLES + k) as u64);
                let (s, t) = per_example(ex, &mut r, &mut g);
                sum.add(s);
                tokens += t;
            }
            (g, sum, tokens)
        })
        .collect();
    let mut it = parts.into_iter();
    let (mut g, mut sum, mut tokens) = it
        .next()
        .unwrap_or_else(|| (Grads::zeros(w), LossSum::default(), 0));
    for (pg, ps, pt) in it {
        g.add(&pg);
        sum.add(ps);
        tokens += pt;
    }
    (g, sum, tokens)
}
