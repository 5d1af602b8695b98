//! The users the explorer shows: from a sequences JSONL, a MovieLens ratings file, or (when the
//! data file is missing) a small seeded synthetic set.

use anyhow::{Context, Result};
use hstu_runtime::config::ModelConfig;
use hstu_runtime::data::synthetic::{SyntheticBatches, SyntheticConfig};
use hstu_runtime::data::titles::Titles;
use hstu_runtime::data::{Limits, load_dataset, split};
use hstu_runtime::sequences::{SequenceFile, UserSequence};
use std::path::{Path, PathBuf};

/// Where the users came from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataOrigin {
    /// A sequences JSONL (spec section 3).
    Sequences,
    /// A ratings file, leave-one-out test split: the last rating is the held-out target.
    Ratings,
    /// Generated because the data file could not be read.
    Synthetic { reason: String },
}

/// The loaded users (full histories; the model sees the most recent `max_sequence_len`).
#[derive(Clone, Debug)]
pub struct DataSet {
    pub path: PathBuf,
    pub origin: DataOrigin,
    pub users: Vec<UserSequence>,
    pub titles: Option<Titles>,
    /// Users dropped because they do not fit the model (ids out of range, too short).
    pub skipped_users: usize,
    pub interactions: usize,
}

/// Users of the synthetic fallback.
pub const SYNTHETIC_USERS: usize = 48;

impl DataSet {
    /// Load `path` (`*.jsonl` = sequences, otherwise ratings) for the model `cfg`.
    pub fn load(path: &Path, cfg: &ModelConfig) -> Result<DataSet> {
        let is_jsonl = path.extension().is_some_and(|e| e == "jsonl");
        let (origin, users, titles, skipped) = if is_jsonl {
            let file = SequenceFile::load(path, cfg)
                .with_context(|| format!("reading sequences {}", path.display()))?;
            (DataOrigin::Sequences, file.sequences, None, 0)
        } else {
            let ds = load_dataset(path, &Limits::default())
                .with_context(|| format!("reading ratings {}", path.display()))?;
            let total = ds.users.len();
            let users: Vec<UserSequence> = ds
                .users
                .iter()
                .filter_map(|u| split::user_sequence(u, split::Split::Test, usize::MAX))
                .filter(|s| {
                    s.validate(cfg).is_ok() && s.target.is_none_or(|t| t as usize <= cfg.num_items)
                })
                .collect();
            let skipped = total - users.len();
            (DataOrigin::Ratings, users, ds.titles, skipped)
        };
        Ok(Self::from_users(path, origin, users, titles, skipped))
    }

    /// `load`, or the synthetic fallback that says why.
    pub fn load_or_synthetic(path: &Path, cfg: &ModelConfig) -> DataSet {
        Self::load(path, cfg).unwrap_or_else(|e| Self::synthetic(path, cfg, format!("{e:#}")))
    }

    /// [`SYNTHETIC_USERS`] seeded users over the model's catalogue.
    pub fn synthetic(path: &Path, cfg: &ModelConfig, reason: String) -> DataSet {
        let generator = SyntheticBatches::new(SyntheticConfig {
            num_users: SYNTHETIC_USERS,
            num_items: cfg.num_items as u32,
            min_len: 12,
            max_len: 90,
            seed: 7,
            ..SyntheticConfig::default()
        });
        let users = (0..SYNTHETIC_USERS)
            .map(|u| {
                let mut s = generator.user(u);
                s.user_id = u as i64 + 1;
                s
            })
            .collect();
        Self::from_users(path, DataOrigin::Synthetic { reason }, users, None, 0)
    }

    fn from_users(
        path: &Path,
        origin: DataOrigin,
        users: Vec<UserSequence>,
        titles: Option<Titles>,
        skipped_users: usize,
    ) -> DataSet {
        let interactions = users.iter().map(|u| u.items.len()).sum();
        DataSet {
            path: path.into(),
            origin,
            users,
            titles,
            skipped_users,
            interactions,
        }
    }

    /// The title of `item`, or `#id`.
    pub fn title(&self, item: u32) -> String {
        item_title(self.titles.as_ref(), item)
    }
}

/// The title of `item` from `titles`, or `#id`.
pub fn item_title(titles: Option<&Titles>, item: u32) -> String {
    titles
        .and_then(|t| t.get(&item))
        .map_or_else(|| format!("#{item}"), |t| format!("{t} (#{item})"))
}

/// Users whose id or any history title contains `query` (case-insensitive); all when empty.
pub fn search_users(data: &DataSet, query: &str) -> Vec<usize> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return (0..data.users.len()).collect();
    }
    (0..data.users.len())
        .filter(|&i| {
            let u = &data.users[i];
            u.user_id.to_string().contains(&q)
                || data.titles.as_ref().is_some_and(|t| {
                    u.items
                        .iter()
                        .any(|it| t.get(it).is_some_and(|s| s.to_lowercase().contains(&q)))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_falls_back_to_synthetic_and_search_by_id() {
        let cfg = ModelConfig::movielens_hstu(1682);
        let data = DataSet::load_or_synthetic(Path::new("/nonexistent/x.jsonl"), &cfg);
        assert!(matches!(data.origin, DataOrigin::Synthetic { .. }));
        assert_eq!(data.users.len(), SYNTHETIC_USERS);
        assert!(data.users.iter().all(|u| u.validate(&cfg).is_ok()));
        assert_eq!(search_users(&data, "12"), vec![11]);
        assert_eq!(search_users(&data, "").len(), SYNTHETIC_USERS);
    }

    #[test]
    fn ratings_file_gives_test_split_with_titles() {
        let dir = std::env::temp_dir().join(format!("hstu-explorer-ds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("u.data"),
            "1\t1\t5\t10\n1\t2\t4\t20\n1\t3\t3\t30\n",
        )
        .unwrap();
        std::fs::write(dir.join("u.item"), "1|Toy Story|x\n2|Heat|x\n3|Fargo|x\n").unwrap();
        let cfg = ModelConfig::movielens_hstu(1682);
        let data = DataSet::load(&dir.join("u.data"), &cfg).unwrap();
        assert_eq!(data.users[0].items, vec![1, 2]);
        assert_eq!(data.users[0].target, Some(3));
        assert_eq!(data.title(2), "Heat (#2)");
        assert_eq!(search_users(&data, "fargo"), Vec::<usize>::new());
        assert_eq!(search_users(&data, "heat"), vec![0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
