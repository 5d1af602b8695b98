//! Leave-one-out retrieval splits (spec sections 7 and 8).
//!
//! For a user with chronological items `x_0..x_{n-1}`:
//!
//! | split | history (`items`) | `target` | skipped when |
//! |---|---|---|---|
//! | `Test` | `x_0..x_{n-2}` | `x_{n-1}` | `n < 2` |
//! | `Valid` | `x_0..x_{n-3}` | `x_{n-2}` | `n < 3` |
//! | `Train` | `x_0..x_{n-3}` | `x_{n-2}` | `n < 3` (the sequence without its last item) |
//! | `Train` with validation | `x_0..x_{n-4}` | `x_{n-3}` | `n < 4` (without the last two) |
//!
//! A training sequence is stored as its history plus its last item as `target`, so that every
//! history position predicts the next item and the last position predicts `target` (section 7).
//! Histories keep the most recent `max_sequence_len` items; `query_time` is the target's timestamp;
//! `ratings` carries the history's rating actions ([`rating_action`]).

use super::{Dataset, UserHistory};
use crate::sequences::UserSequence;

/// Which part of each user's timeline a sequence holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Target = the last item.
    Test,
    /// Target = the second-to-last item.
    Valid,
    /// The sequence without its last item (target = its last item).
    Train,
    /// The sequence without its last two items (when a validation split is held out).
    TrainWithValid,
}

impl Split {
    /// How many of the user's last items are held out after the target.
    fn held_out(self) -> usize {
        match self {
            Split::Test => 0,
            Split::Valid | Split::Train => 1,
            Split::TrainWithValid => 2,
        }
    }
}

/// The history action of a rating: rounded half up to an integer star (3.5 -> 4), clamped to
/// `0..=5`; 0 means unknown.
pub fn rating_action(rating: f32) -> u8 {
    (rating + 0.5).floor().clamp(0.0, 5.0) as u8
}

/// The sequence whose target is item `target_pos` of `user` and whose history is every item before
/// it (the most recent `max_sequence_len`); `None` when `target_pos` is 0 or out of range.
pub fn sequence_at(
    user: &UserHistory,
    target_pos: usize,
    max_sequence_len: usize,
) -> Option<UserSequence> {
    if target_pos == 0 || target_pos >= user.len() || max_sequence_len == 0 {
        return None;
    }
    let start = target_pos.saturating_sub(max_sequence_len);
    Some(UserSequence {
        user_id: user.user_id,
        items: user.items[start..target_pos].to_vec(),
        timestamps: user.timestamps[start..target_pos].to_vec(),
        query_time: Some(user.timestamps[target_pos]),
        candidates: Vec::new(),
        ratings: Some(
            user.ratings[start..target_pos]
                .iter()
                .map(|&r| rating_action(r))
                .collect(),
        ),
        target: Some(user.items[target_pos]),
    })
}

/// One user's sequence of `split`, `None` when the user is too short (see the module table).
pub fn user_sequence(
    user: &UserHistory,
    split: Split,
    max_sequence_len: usize,
) -> Option<UserSequence> {
    let n = user.len();
    let target_pos = n.checked_sub(1 + split.held_out())?;
    sequence_at(user, target_pos, max_sequence_len)
}

/// Every user's sequence of `split`, in user order; users too short for it are skipped.
pub fn sequences(ds: &Dataset, split: Split, max_sequence_len: usize) -> Vec<UserSequence> {
    ds.users
        .iter()
        .filter_map(|u| user_sequence(u, split, max_sequence_len))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: usize) -> UserHistory {
        UserHistory {
            user_id: 7,
            items: (1..=n as u32).map(|i| i * 10).collect(),
            timestamps: (0..n as i64).map(|t| 100 + t).collect(),
            ratings: (0..n).map(|i| 1.0 + (i % 5) as f32).collect(),
        }
    }

    #[test]
    fn leave_one_out_targets_and_histories() {
        let u = user(5); // items 10 20 30 40 50
        let t = user_sequence(&u, Split::Test, 200).unwrap();
        assert_eq!(
            (t.items.clone(), t.target, t.query_time),
            (vec![10, 20, 30, 40], Some(50), Some(104))
        );
        assert_eq!(t.ratings, Some(vec![1, 2, 3, 4]));
        let v = user_sequence(&u, Split::Valid, 200).unwrap();
        assert_eq!((v.items, v.target), (vec![10, 20, 30], Some(40)));
        let tr = user_sequence(&u, Split::Train, 200).unwrap();
        assert_eq!((tr.items, tr.target), (vec![10, 20, 30], Some(40)));
        let tv = user_sequence(&u, Split::TrainWithValid, 200).unwrap();
        assert_eq!(
            (tv.items, tv.target, tv.query_time),
            (vec![10, 20], Some(30), Some(102))
        );
    }

    #[test]
    fn short_users_are_skipped_and_histories_truncated() {
        assert!(user_sequence(&user(1), Split::Test, 200).is_none());
        assert!(user_sequence(&user(2), Split::Valid, 200).is_none());
        assert!(user_sequence(&user(3), Split::TrainWithValid, 200).is_none());
        assert!(user_sequence(&user(2), Split::Test, 200).is_some());
        let t = user_sequence(&user(10), Split::Test, 3).unwrap();
        assert_eq!(
            (t.items, t.timestamps, t.target),
            (vec![70, 80, 90], vec![106, 107, 108], Some(100))
        );
    }

    #[test]
    fn rating_actions_round_half_up() {
        let got: Vec<u8> = [0.0, 0.5, 1.0, 3.49, 3.5, 5.0, 7.0]
            .iter()
            .map(|&r| rating_action(r))
            .collect();
        assert_eq!(got, vec![0, 1, 1, 3, 4, 5, 5]);
    }
}
