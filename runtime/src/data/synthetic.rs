//! A streaming synthetic data set: Zipf item popularity, sessions, realistic inter-event gaps.
//!
//! Each user draws a length, a start time and then sessions: within a session events are seconds
//! to minutes apart (log-normal around [`SyntheticConfig::within_session_gap_secs`]), between
//! sessions hours to days (log-normal around [`SyntheticConfig::between_session_gap_secs`]). Items
//! follow a Zipf law over a seeded permutation of the catalogue; with probability
//! [`SyntheticConfig::locality`] the next item is a popularity neighbour of the previous one, which
//! gives the sequences a learnable order. Ratings lean higher for popular items.
//!
//! The generator is an iterator of batches that holds one batch at a time (memory O(batch), not
//! O(users) or O(items)). User `u` depends only on the seed and `u`, never on the batch size.

use crate::rng::Rng;
use crate::sequences::UserSequence;

/// What the generator produces.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    pub num_users: usize,
    /// Item ids are `1..=num_items`.
    pub num_items: u32,
    /// Interactions per user (history + target), uniform in `min_len..=max_len`; `min_len >= 2`.
    pub min_len: usize,
    pub max_len: usize,
    /// Zipf exponent of item popularity (1.0 is classic Zipf).
    pub zipf_exponent: f64,
    /// Mean events per session.
    pub mean_session_len: f64,
    pub within_session_gap_secs: f64,
    pub between_session_gap_secs: f64,
    /// Probability that the next item is a popularity neighbour of the previous one.
    pub locality: f64,
    /// First possible start time (unix seconds) and the span start times are drawn from.
    pub start_time_secs: i64,
    pub start_span_secs: i64,
    pub batch_size: usize,
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            num_users: 1000,
            num_items: 3952,
            min_len: 5,
            max_len: 200,
            zipf_exponent: 1.0,
            mean_session_len: 8.0,
            within_session_gap_secs: 90.0,
            between_session_gap_secs: 86_400.0,
            locality: 0.3,
            start_time_secs: 956_703_932,
            start_span_secs: 3 * 365 * 86_400,
            batch_size: 128,
            seed: 0,
        }
    }
}

/// Zipf sampling by rejection-inversion (Hörmann & Derflinger 1996): O(1) memory in `n`.
#[derive(Clone, Debug)]
struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    shortcut: f64,
}

fn helper_log(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

fn helper_exp(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

impl Zipf {
    fn new(n: u32, s: f64) -> Zipf {
        let mut z = Zipf {
            n: n as f64,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            shortcut: 0.0,
        };
        z.h_x1 = z.h_integral(1.5) - 1.0;
        z.h_n = z.h_integral(z.n + 0.5);
        z.shortcut = 2.0 - z.h_integral_inv(z.h_integral(2.5) - z.h(2.0));
        z
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let lx = x.ln();
        helper_exp((1.0 - self.s) * lx) * lx
    }

    fn h_integral_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper_log(t) * x).exp()
    }

    /// A rank in `1..=n`, rank 1 the most popular.
    fn sample(&self, rng: &mut Rng) -> u32 {
        loop {
            let u = self.h_n + rng.uniform() * (self.h_x1 - self.h_n);
            let x = self.h_integral_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.shortcut || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u32;
            }
        }
    }
}

/// The iterator of batches `Vec<UserSequence>` (at most `batch_size` users each). Every sequence
/// has `items` = history, `target` = the last interaction, `query_time` = its timestamp, and
/// `ratings` (1..=5) for the history.
#[derive(Clone, Debug)]
pub struct SyntheticBatches {
    cfg: SyntheticConfig,
    zipf: Zipf,
    /// `rank -> item` is `((rank - 1) * stride + offset) % n + 1`, a seeded bijection.
    stride: u64,
    offset: u64,
    next_user: usize,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl SyntheticBatches {
    /// Panics when the config is inconsistent (an invariant of the caller, not data).
    pub fn new(cfg: SyntheticConfig) -> SyntheticBatches {
        assert!(
            cfg.num_items >= 1 && cfg.batch_size >= 1,
            "synthetic: empty catalogue or batch"
        );
        assert!(
            2 <= cfg.min_len && cfg.min_len <= cfg.max_len,
            "synthetic: need 2 <= min_len <= max_len"
        );
        let n = cfg.num_items as u64;
        let mut rng = Rng::new(cfg.seed).fork(u64::MAX);
        let mut stride = 1 + rng.below(n);
        while gcd(stride, n) != 1 {
            stride = stride % n + 1;
        }
        let offset = rng.below(n);
        SyntheticBatches {
            zipf: Zipf::new(cfg.num_items, cfg.zipf_exponent),
            cfg,
            stride,
            offset,
            next_user: 0,
        }
    }

    fn item_of_rank(&self, rank: u32) -> u32 {
        let n = self.cfg.num_items as u64;
        (((rank as u64 - 1) * self.stride + self.offset) % n + 1) as u32
    }

    fn log_normal(rng: &mut Rng, median: f64, sigma: f64) -> f64 {
        (median.ln() + sigma * rng.normal()).exp()
    }

    /// User number `u` (0-based), independent of batching.
    pub fn user(&self, u: usize) -> UserSequence {
        let c = &self.cfg;
        let mut rng = Rng::new(c.seed).fork(u as u64);
        let len = c.min_len + rng.below((c.max_len - c.min_len + 1) as u64) as usize;
        let mut t = c.start_time_secs + rng.below(c.start_span_secs.max(1) as u64) as i64;
        let (mut items, mut timestamps, mut ratings) = (
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
        );
        let mut seen = std::collections::HashSet::with_capacity(len);
        let mut rank = self.zipf.sample(&mut rng);
        let n = c.num_items;
        for p in 0..len {
            if p > 0 {
                let new_session = rng.uniform() < 1.0 / c.mean_session_len.max(1.0);
                let gap = if new_session {
                    Self::log_normal(&mut rng, c.between_session_gap_secs, 1.0)
                } else {
                    Self::log_normal(&mut rng, c.within_session_gap_secs, 0.8)
                };
                t += gap.clamp(1.0, 1e8) as i64;
                for _ in 0..8 {
                    rank = if rng.uniform() < c.locality {
                        let step = 1 + rng.below(5) as u32;
                        if rng.below(2) == 0 {
                            rank.saturating_sub(step).max(1)
                        } else {
                            (rank + step).min(n)
                        }
                    } else {
                        self.zipf.sample(&mut rng)
                    };
                    if !seen.contains(&rank) || seen.len() as u32 >= n {
                        break;
                    }
                }
            }
            seen.insert(rank);
            items.push(self.item_of_rank(rank));
            timestamps.push(t);
            let popular = (rank as f64) <= (n as f64 * 0.05).max(1.0);
            let r = 1 + rng.below(5) as u8 + u8::from(popular && rng.uniform() < 0.5);
            ratings.push(r.min(5));
        }
        let (target, query_time) = (items.pop(), timestamps.pop());
        ratings.pop();
        UserSequence {
            user_id: u as i64 + 1,
            items,
            timestamps,
            query_time,
            candidates: Vec::new(),
            ratings: Some(ratings),
            target,
        }
    }
}

impl Iterator for SyntheticBatches {
    type Item = Vec<UserSequence>;

    fn next(&mut self) -> Option<Vec<UserSequence>> {
        if self.next_user >= self.cfg.num_users {
            return None;
        }
        let end = (self.next_user + self.cfg.batch_size).min(self.cfg.num_users);
        let batch = (self.next_user..end).map(|u| self.user(u)).collect();
        self.next_user = end;
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(batch_size: usize) -> SyntheticConfig {
        SyntheticConfig {
            num_users: 50,
            num_items: 300,
            min_len: 3,
            max_len: 40,
            batch_size,
            seed: 11,
            ..SyntheticConfig::default()
        }
    }

    #[test]
    fn deterministic_and_independent_of_batch_size() {
        let a: Vec<UserSequence> = SyntheticBatches::new(cfg(7)).flatten().collect();
        let b: Vec<UserSequence> = SyntheticBatches::new(cfg(50)).flatten().collect();
        assert_eq!(a, b);
        let c: Vec<UserSequence> = SyntheticBatches::new(SyntheticConfig { seed: 12, ..cfg(7) })
            .flatten()
            .collect();
        assert_ne!(a, c);
        assert_eq!(
            SyntheticBatches::new(cfg(7)).map(|b| b.len()).max(),
            Some(7)
        );
    }

    #[test]
    fn sequences_respect_bounds_and_have_realistic_gaps() {
        let c = cfg(16);
        let mut gaps = Vec::new();
        for s in SyntheticBatches::new(c.clone()).flatten() {
            let total = s.items.len() + 1;
            assert!((c.min_len..=c.max_len).contains(&total), "{total}");
            let target = s.target.unwrap();
            assert!(
                s.items
                    .iter()
                    .chain([&target])
                    .all(|&i| (1..=c.num_items).contains(&i))
            );
            assert_eq!(s.timestamps.len(), s.items.len());
            assert!(
                s.ratings
                    .as_ref()
                    .unwrap()
                    .iter()
                    .all(|&r| (1..=5).contains(&r))
            );
            let mut ts = s.timestamps.clone();
            ts.push(s.query_time.unwrap());
            assert!(ts.windows(2).all(|w| w[1] > w[0]));
            gaps.extend(ts.windows(2).map(|w| w[1] - w[0]));
        }
        gaps.sort_unstable();
        let median = gaps[gaps.len() / 2];
        let p99 = gaps[gaps.len() * 99 / 100];
        assert!(median < 3600, "median gap {median}s");
        assert!(p99 > 3600 * 6, "p99 gap {p99}s");
    }

    #[test]
    fn zipf_is_heavy_headed_and_in_range() {
        let z = Zipf::new(1000, 1.0);
        let mut rng = Rng::new(1);
        let draws: Vec<u32> = (0..20000).map(|_| z.sample(&mut rng)).collect();
        assert!(draws.iter().all(|&k| (1..=1000).contains(&k)));
        let ones = draws.iter().filter(|&&k| k == 1).count() as f64 / 20000.0;
        // P(1) = 1 / H_1000 = 0.1336
        assert!((ones - 0.1336).abs() < 0.015, "{ones}");
    }
}
