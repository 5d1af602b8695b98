//! MovieLens-100K from the RecBole 1.2.1 wheel on the Python package index (spec section 8).
//!
//! `pip download --no-deps recbole==1.2.1` fetches the wheel (a zip); its
//! `recbole/dataset_example/ml-100k/` holds `ml-100k.inter` (100,000 ratings) and `ml-100k.item`
//! (titles). Both are written atomically into the cache directory, then verified by parsing. A
//! cache that already verifies is left as it is (no network).

use super::{Limits, load_dataset};
use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const RECBOLE_REQUIREMENT: &str = "recbole==1.2.1";
const WHEEL_DIR: &str = "recbole/dataset_example/ml-100k/";
/// The files taken from the wheel: ratings and titles.
pub const ML100K_FILES: [&str; 2] = ["ml-100k.inter", "ml-100k.item"];
/// Largest member read from the wheel (`ml-100k.inter` is 1.98 MB).
const MAX_MEMBER_BYTES: u64 = 64 << 20;

/// The published size of MovieLens-100K.
pub const ML100K_RATINGS: usize = 100_000;
pub const ML100K_USERS: usize = 943;
pub const ML100K_ITEMS: usize = 1_682;

/// What `fetch_ml100k` did and found.
#[derive(Clone, Debug, Serialize)]
pub struct FetchReport {
    /// The ratings file (`<cache>/ml-100k.inter`).
    pub path: PathBuf,
    /// True when the cache already verified and nothing was downloaded.
    pub cached: bool,
    pub interactions: usize,
    pub users: usize,
    pub items: usize,
    pub titles: usize,
}

/// The default cache: `$HSTU_DATA_DIR/ml-100k`, else `~/.cache/hstu/ml-100k`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HSTU_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ml-100k");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("hstu").join("ml-100k")
}

/// Check the cached files: counts must be those of MovieLens-100K.
pub fn verify_ml100k(cache: &Path) -> Result<FetchReport> {
    let path = cache.join(ML100K_FILES[0]);
    let ds = load_dataset(&path, &Limits::default())?;
    let (interactions, users, items) = (ds.interactions(), ds.users.len(), ds.distinct_items());
    if (interactions, users, items) != (ML100K_RATINGS, ML100K_USERS, ML100K_ITEMS) {
        return Err(Error::Data {
            path,
            message: format!(
                "{interactions} ratings, {users} users, {items} items: expected \
                 {ML100K_RATINGS}, {ML100K_USERS}, {ML100K_ITEMS} (MovieLens-100K)"
            ),
        });
    }
    Ok(FetchReport {
        path,
        cached: true,
        interactions,
        users,
        items,
        titles: ds.titles.map(|t| t.len()).unwrap_or(0),
    })
}

/// Fetch MovieLens-100K into `cache` (idempotent: a cache that verifies is not downloaded again).
pub fn fetch_ml100k(cache: &Path) -> Result<FetchReport> {
    if cache.join(ML100K_FILES[0]).is_file()
        && let Ok(report) = verify_ml100k(cache)
    {
        return Ok(report);
    }
    let tmp = std::env::temp_dir().join(format!(
        "hstu-fetch-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = download_and_extract(&tmp, cache);
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    let mut report = verify_ml100k(cache)?;
    report.cached = false;
    Ok(report)
}

fn download_and_extract(tmp: &Path, cache: &Path) -> Result<()> {
    let wheel = pip_download(tmp)?;
    let file = std::fs::File::open(&wheel).map_err(|e| Error::io(&wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| Error::Data {
        path: wheel.clone(),
        message: format!("not a readable wheel (zip): {e}"),
    })?;
    for name in ML100K_FILES {
        let member = format!("{WHEEL_DIR}{name}");
        let bytes = read_member(&mut archive, &member, &wheel)?;
        write_atomic(&cache.join(name), &bytes)?;
    }
    Ok(())
}

fn read_member(
    archive: &mut zip::ZipArchive<std::fs::File>,
    member: &str,
    wheel: &Path,
) -> Result<Vec<u8>> {
    let data_error = |message: String| Error::Data {
        path: wheel.to_path_buf(),
        message,
    };
    let entry = archive
        .by_name(member)
        .map_err(|e| data_error(format!("`{member}`: {e}")))?;
    if entry.size() > MAX_MEMBER_BYTES {
        return Err(data_error(format!(
            "`{member}` is {} bytes, over the limit {MAX_MEMBER_BYTES}",
            entry.size()
        )));
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .take(MAX_MEMBER_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| data_error(format!("`{member}`: {e}")))?;
    Ok(bytes)
}

/// Run `python3 -m pip download`, falling back to `pip`; returns the wheel's path.
fn pip_download(tmp: &Path) -> Result<PathBuf> {
    let args = [
        "download",
        "--no-deps",
        "--only-binary=:all:",
        RECBOLE_REQUIREMENT,
        "-d",
    ];
    let attempts: [(&str, &[&str]); 2] = [("python3", &["-m", "pip"]), ("pip", &[])];
    let mut failures = Vec::new();
    for (program, prefix) in attempts {
        let out = Command::new(program)
            .args(prefix)
            .args(args)
            .arg(tmp)
            .output();
        match out {
            Err(e) => failures.push(format!("`{program}` could not be run: {e}")),
            Ok(o) if !o.status.success() => {
                let stderr = String::from_utf8_lossy(&o.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                failures.push(format!(
                    "`{program} {}` failed ({}): {}",
                    prefix.join(" "),
                    o.status,
                    tail.join(" | ")
                ));
            }
            Ok(_) => return find_wheel(tmp),
        }
    }
    Err(Error::Data {
        path: tmp.to_path_buf(),
        message: format!(
            "could not download {RECBOLE_REQUIREMENT} with pip (is pip installed and the Python package \
             index reachable?): {}",
            failures.join("; ")
        ),
    })
}

fn find_wheel(dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("recbole-") && name.ends_with(".whl") {
            return Ok(p);
        }
    }
    Err(Error::Data {
        path: dir.to_path_buf(),
        message: "pip succeeded but left no recbole-*.whl".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_counts_fail_verification() {
        let dir = std::env::temp_dir().join(format!("hstu-fetch-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ml-100k.inter"),
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t3\t4\n",
        )
        .unwrap();
        let err = verify_ml100k(&dir).unwrap_err().to_string();
        assert!(err.contains("expected 100000, 943, 1682"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_wheel_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("hstu-fetch-nowheel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            find_wheel(&dir)
                .unwrap_err()
                .to_string()
                .contains("no recbole")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
