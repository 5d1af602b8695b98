//! The MovieLens ranking protocol (spec section 5, end).
//!
//! For a user with chronological ratings and a split point `s`: history = items before `s` with
//! their rating as action, candidates = the next up to [`MAX_RANKING_CANDIDATES`] items, labelled per
//! task by their ratings ([`RANKING_TASK_THRESHOLDS`]), `query_time` = the first candidate's
//! timestamp. Evaluation puts each user's last 10 ratings after the full remaining history
//! ([`eval_split_point`]); training draws split points before that ([`train_example`]) and its
//! candidates never reach the evaluation ratings.

use super::UserHistory;
use super::split::rating_action;
use crate::rng::Rng;
use crate::sequences::UserSequence;

/// Candidates per example.
pub const MAX_RANKING_CANDIDATES: usize = 10;
/// MovieLens tasks: `rating >= 4` and `rating >= 3`.
pub const RANKING_TASK_THRESHOLDS: [f32; 2] = [4.0, 3.0];
pub const RANKING_TASK_NAMES: [&str; 2] = ["rating>=4", "rating>=3"];

/// One ranking example.
#[derive(Clone, Debug, PartialEq)]
pub struct RankingExample {
    /// History (with `ratings` as actions) and `candidates`.
    pub sequence: UserSequence,
    /// Raw rating of each candidate: `[m]`.
    pub candidate_ratings: Vec<f32>,
    /// Binary labels `[m, T]` row-major, `T = RANKING_TASK_THRESHOLDS.len()`.
    pub labels: Vec<f32>,
}

/// Labels `[T]` of one rating.
pub fn rating_labels(rating: f32) -> [f32; 2] {
    RANKING_TASK_THRESHOLDS.map(|t| if rating >= t { 1.0 } else { 0.0 })
}

/// The example with history `[..s]` (the most recent `max_sequence_len`) and candidates
/// `[s..min(s + 10, end)]`; `None` unless `1 <= s < end <= user.len()`.
pub fn example_at(
    user: &UserHistory,
    s: usize,
    end: usize,
    max_sequence_len: usize,
) -> Option<RankingExample> {
    if s == 0 || s >= end || end > user.len() || max_sequence_len == 0 {
        return None;
    }
    let stop = end.min(s + MAX_RANKING_CANDIDATES);
    let start = s.saturating_sub(max_sequence_len);
    let candidate_ratings = user.ratings[s..stop].to_vec();
    let labels = candidate_ratings
        .iter()
        .flat_map(|&r| rating_labels(r))
        .collect();
    Some(RankingExample {
        sequence: UserSequence {
            user_id: user.user_id,
            items: user.items[start..s].to_vec(),
            timestamps: user.timestamps[start..s].to_vec(),
            query_time: Some(user.timestamps[s]),
            candidates: user.items[s..stop].to_vec(),
            ratings: Some(
                user.ratings[start..s]
                    .iter()
                    .map(|&r| rating_action(r))
                    .collect(),
            ),
            target: None,
        },
        candidate_ratings,
        labels,
    })
}

/// Where evaluation splits a user of `n` ratings: `n - 10`, but at least 1 so the history is never
/// empty (users with fewer than 11 ratings get fewer candidates); `None` when `n < 2`.
pub fn eval_split_point(n: usize) -> Option<usize> {
    (n >= 2).then(|| n.saturating_sub(MAX_RANKING_CANDIDATES).max(1))
}

/// The evaluation example: the last 10 ratings as candidates after the remaining history.
pub fn eval_example(user: &UserHistory, max_sequence_len: usize) -> Option<RankingExample> {
    let s = eval_split_point(user.len())?;
    example_at(user, s, user.len(), max_sequence_len)
}

/// A training example at a split point drawn uniformly from `1..eval_split_point`, its candidates
/// stopping before the evaluation ratings; `None` when the user has no room for one.
pub fn train_example(
    user: &UserHistory,
    rng: &mut Rng,
    max_sequence_len: usize,
) -> Option<RankingExample> {
    let end = eval_split_point(user.len())?;
    if end < 2 {
        return None;
    }
    let s = 1 + rng.below(end as u64 - 1) as usize;
    example_at(user, s, end, max_sequence_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: usize) -> UserHistory {
        UserHistory {
            user_id: 3,
            items: (1..=n as u32).collect(),
            timestamps: (0..n as i64).map(|t| 1000 + 10 * t).collect(),
            ratings: (0..n).map(|i| [5.0, 2.0, 3.5, 4.0, 1.0][i % 5]).collect(),
        }
    }

    #[test]
    fn eval_example_uses_last_ten() {
        let u = user(25);
        let ex = eval_example(&u, 200).unwrap();
        assert_eq!(ex.sequence.items, (1..=15).collect::<Vec<u32>>());
        assert_eq!(ex.sequence.candidates, (16..=25).collect::<Vec<u32>>());
        assert_eq!(ex.sequence.query_time, Some(1000 + 150));
        assert_eq!(
            ex.sequence.ratings.as_ref().map(|r| r[..5].to_vec()),
            Some(vec![5, 2, 4, 4, 1])
        );
        // item 16 has rating index 15 -> 5.0, item 17 -> 2.0, item 18 -> 3.5
        assert_eq!(&ex.labels[..6], &[1.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(ex.labels.len(), 20);
        let short = eval_example(&user(4), 200).unwrap();
        assert_eq!(
            (short.sequence.items.len(), short.sequence.candidates.len()),
            (1, 3)
        );
        assert!(eval_example(&user(1), 200).is_none());
    }

    #[test]
    fn train_examples_never_touch_eval_candidates() {
        let u = user(30);
        let mut rng = Rng::new(5);
        for _ in 0..200 {
            let ex = train_example(&u, &mut rng, 8).unwrap();
            let s = ex.sequence.candidates[0] as usize - 1;
            assert!(s >= 1 && ex.sequence.items.len() == s.min(8));
            assert!(ex.sequence.candidates.iter().all(|&c| c <= 20));
            assert_eq!(ex.labels.len(), 2 * ex.sequence.candidates.len());
        }
        assert!(train_example(&user(3), &mut rng, 8).is_none());
    }
}
