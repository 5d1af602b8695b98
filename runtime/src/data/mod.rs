//! MovieLens / RecBole readers, splits and the synthetic generator (spec sections 5 and 8).
//!
//! * [`readers`]: ratings files (`u.data`, `ratings.dat`, `ratings.csv`, RecBole `.inter`),
//!   auto-detected; raw ids kept; every malformed line an error naming `file:line`.
//! * [`titles`]: item titles from the file beside the ratings, when present.
//! * [`split`]: leave-one-out retrieval splits producing [`UserSequence`](crate::sequences::UserSequence)s.
//! * [`ranking`]: the ranking protocol of spec section 5 (split points, candidates, labels).
//! * [`synthetic`]: a streaming, seeded generator of realistic sequences.
//! * [`fetch`]: MovieLens-100K from the RecBole wheel on the Python package index.
//!
//! ```
//! use hstu_runtime::data::{readers::{parse_ratings, RatingsFormat}, split, Limits};
//! let text = "1\t10\t5\t100\n1\t11\t4\t200\n1\t12\t3\t300\n";
//! let ds = parse_ratings(text.as_bytes(), "u.data".as_ref(), RatingsFormat::MovieLens100k, &Limits::default()).unwrap();
//! let test = split::sequences(&ds, split::Split::Test, 200);
//! assert_eq!((test[0].items.clone(), test[0].target), (vec![10, 11], Some(12)));
//! ```

pub mod fetch;
mod lines;
pub mod ranking;
pub mod readers;
pub mod split;
pub mod synthetic;
pub mod titles;

pub use lines::MAX_LINE_BYTES;

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Bounds checked while reading, before anything grows past them.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest ratings/titles file accepted (ML-20M's `ratings.csv` is 533 MB).
    pub max_file_bytes: u64,
    /// Most distinct users (ML-20M: 138,493).
    pub max_users: usize,
    /// Largest item id: the item table has `max_item_id + 1` rows (ML-20M: 131,262).
    pub max_item_id: u32,
    /// Most interactions (ML-20M: 20,000,263).
    pub max_interactions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 8 << 30,
            max_users: 50_000_000,
            max_item_id: 100_000_000,
            max_interactions: 500_000_000,
        }
    }
}

/// One user's interactions, oldest first (stable by file order on equal timestamps).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserHistory {
    pub user_id: i64,
    /// Raw item ids.
    pub items: Vec<u32>,
    /// Unix seconds, non-decreasing.
    pub timestamps: Vec<i64>,
    /// The raw ratings (0 where the file has none).
    pub ratings: Vec<f32>,
}

impl UserHistory {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A ratings data set: users ordered by id, each history sorted by time.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub users: Vec<UserHistory>,
    /// The largest item id (ids are raw, so some ids below it may be unused).
    pub num_items: usize,
    pub titles: Option<titles::Titles>,
}

impl Dataset {
    pub fn interactions(&self) -> usize {
        self.users.iter().map(UserHistory::len).sum()
    }

    /// Number of distinct item ids that occur.
    pub fn distinct_items(&self) -> usize {
        let mut seen = vec![false; self.num_items + 1];
        for u in &self.users {
            for &i in &u.items {
                seen[i as usize] = true;
            }
        }
        seen.iter().filter(|&&s| s).count()
    }

    /// Counts and history-length percentiles (`hstu data stats`).
    pub fn stats(&self) -> DatasetStats {
        let mut lens: Vec<usize> = self.users.iter().map(UserHistory::len).collect();
        lens.sort_unstable();
        let pct = |p: f64| -> usize {
            if lens.is_empty() {
                return 0;
            }
            let rank = ((p / 100.0) * (lens.len() - 1) as f64).round() as usize;
            lens[rank.min(lens.len() - 1)]
        };
        let interactions = self.interactions();
        DatasetStats {
            users: self.users.len(),
            items: self.distinct_items(),
            num_items: self.num_items,
            interactions,
            mean_length: interactions as f64 / self.users.len().max(1) as f64,
            length_percentiles: LengthPercentiles {
                min: pct(0.0),
                p25: pct(25.0),
                p50: pct(50.0),
                p75: pct(75.0),
                p90: pct(90.0),
                p99: pct(99.0),
                max: pct(100.0),
            },
            titles: self.titles.as_ref().map(|t| t.len()),
        }
    }
}

/// What `hstu data stats` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetStats {
    pub users: usize,
    /// Distinct item ids that occur.
    pub items: usize,
    /// Largest item id.
    pub num_items: usize,
    pub interactions: usize,
    pub mean_length: f64,
    pub length_percentiles: LengthPercentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub titles: Option<usize>,
}

/// Nearest-rank percentiles of the per-user history length.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LengthPercentiles {
    pub min: usize,
    pub p25: usize,
    pub p50: usize,
    pub p75: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
}

/// The ratings file of `path`: the file itself, or inside a directory the first of `u.data`,
/// `ratings.dat`, `ratings.csv`, or a single `*.inter`.
pub fn resolve_ratings_path(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    for name in ["u.data", "ratings.dat", "ratings.csv"] {
        let p = path.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    let mut inter: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let p = entry.map_err(|e| Error::io(path, e))?.path();
        if p.extension().is_some_and(|e| e == "inter") {
            inter.push(p);
        }
    }
    match inter.len() {
        1 => Ok(inter.remove(0)),
        0 => Err(Error::Data {
            path: path.into(),
            message: "no u.data, ratings.dat, ratings.csv or *.inter in this directory".into(),
        }),
        n => Err(Error::Data {
            path: path.into(),
            message: format!("{n} *.inter files: name one"),
        }),
    }
}

/// Load a ratings file (or a directory holding one) and the titles beside it.
pub fn load_dataset(path: &Path, limits: &Limits) -> Result<Dataset> {
    let ratings = resolve_ratings_path(path)?;
    let (mut ds, _format) = readers::read_ratings_file(&ratings, limits)?;
    ds.titles = titles::read_titles_beside(&ratings, limits.max_file_bytes)?;
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &[u8]) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn load_directory_with_titles_and_stats() {
        let dir = std::env::temp_dir().join(format!("hstu-data-mod-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "u.data", b"1\t1\t5\t10\n1\t2\t4\t20\n2\t3\t3\t5\n");
        write(&dir, "u.item", b"1|A|x\n2|B|x\n3|C|x\n");
        let ds = load_dataset(&dir, &Limits::default()).unwrap();
        assert_eq!(ds.titles.as_ref().map(|t| t[&3].clone()), Some("C".into()));
        let s = ds.stats();
        assert_eq!(
            (s.users, s.items, s.interactions, s.num_items),
            (2, 3, 3, 3)
        );
        assert_eq!((s.length_percentiles.min, s.length_percentiles.max), (1, 2));
        let small = Limits {
            max_file_bytes: 4,
            ..Limits::default()
        };
        assert!(matches!(load_dataset(&dir, &small), Err(Error::Limit(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
