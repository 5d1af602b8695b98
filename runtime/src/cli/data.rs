//! `hstu data fetch | prepare | stats`: get MovieLens-100K, turn ratings into sequences JSONL,
//! and describe a ratings file.

use anyhow::Context;
use hstu_runtime::data::{
    Limits, fetch,
    split::{self, Split},
};
use hstu_runtime::sequences::SequenceFile;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Download a public data set into the cache (idempotent; prints what it found as JSON).
    Fetch {
        #[arg(value_enum)]
        dataset: FetchDataset,
        /// Cache directory [default: $HSTU_DATA_DIR/ml-100k or ~/.cache/hstu/ml-100k].
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Write leave-one-out sequences (spec section 3 JSONL) from a ratings file or directory.
    Prepare {
        /// u.data, ratings.dat, ratings.csv, a RecBole .inter, or a directory holding one.
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// test: target = last item; valid: second-to-last; train: the sequence without its last
        /// item (without the last two with --validation), its last item as target.
        #[arg(long, value_enum, default_value_t = SplitArg::Test)]
        split: SplitArg,
        /// Keep the most recent N history items.
        #[arg(long, default_value_t = 200)]
        max_len: usize,
        /// A validation split is held out: `--split train` then also drops the second-to-last item.
        #[arg(long)]
        validation: bool,
    },
    /// Print users, items, interactions and history-length percentiles as JSON.
    Stats {
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchDataset {
    /// MovieLens-100K from the RecBole 1.2.1 wheel.
    #[value(name = "ml-100k")]
    Ml100k,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    Test,
    Valid,
    Train,
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Fetch { dataset, cache } => {
            let FetchDataset::Ml100k = dataset;
            let cache = cache.unwrap_or_else(fetch::default_cache_dir);
            let report = fetch::fetch_ml100k(&cache)
                .with_context(|| format!("fetching MovieLens-100K into {}", cache.display()))?;
            println!("{}", serde_json::to_string(&report)?);
        }
        DataCommand::Prepare {
            data,
            out,
            split,
            max_len,
            validation,
        } => {
            anyhow::ensure!(max_len >= 1, "--max-len must be at least 1");
            let ds = hstu_runtime::data::load_dataset(&data, &Limits::default())
                .with_context(|| format!("reading {}", data.display()))?;
            let split = match (split, validation) {
                (SplitArg::Test, _) => Split::Test,
                (SplitArg::Valid, _) => Split::Valid,
                (SplitArg::Train, false) => Split::Train,
                (SplitArg::Train, true) => Split::TrainWithValid,
            };
            let sequences = split::sequences(&ds, split, max_len);
            anyhow::ensure!(
                !sequences.is_empty(),
                "{}: no user is long enough for the {split:?} split",
                data.display()
            );
            SequenceFile::write_jsonl(&out, &sequences)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote {} sequences ({} of {} users; num_items = {}) to {}",
                sequences.len(),
                sequences.len(),
                ds.users.len(),
                ds.num_items,
                out.display()
            );
        }
        DataCommand::Stats { data } => {
            let ds = hstu_runtime::data::load_dataset(&data, &Limits::default())
                .with_context(|| format!("reading {}", data.display()))?;
            println!("{}", serde_json::to_string_pretty(&ds.stats())?);
        }
    }
    Ok(())
}
