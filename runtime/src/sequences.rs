//! The sequences JSONL of spec section 3: one user per line.
//!
//! `{"user_id": 7, "items": [12, 5, 99], "timestamps": [..], "query_time": 978302000, "candidates": [3, 17]}`

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Largest accepted line and list lengths (checked before allocating).
pub const MAX_LINE_BYTES: usize = 64 << 20;
pub const MAX_CANDIDATES: usize = 1 << 20;

/// One user's history (oldest first), query time and optional ranking fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserSequence {
    pub user_id: i64,
    /// 1-based item ids, oldest first.
    pub items: Vec<u32>,
    /// Unix seconds, non-decreasing, one per item.
    pub timestamps: Vec<i64>,
    /// Time of the request; defaults to the last timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_time: Option<i64>,
    /// Items to rank (spec section 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<u32>,
    /// History actions of a ranking model (MovieLens rating 1..=5, 0 unknown), one per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratings: Option<Vec<u8>>,
    /// Held-out next item, when known (evaluation, the explorer's hit marker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
}

impl UserSequence {
    pub fn new(user_id: i64, items: Vec<u32>, timestamps: Vec<i64>) -> Self {
        UserSequence {
            user_id,
            items,
            timestamps,
            query_time: None,
            candidates: Vec::new(),
            ratings: None,
            target: None,
        }
    }

    /// `t_q`: the query time, or the last timestamp.
    pub fn query_time_secs(&self) -> i64 {
        self.query_time
            .unwrap_or_else(|| self.timestamps.last().copied().unwrap_or(0))
    }

    /// Keep the most recent `max_len` items (spec section 1).
    pub fn truncated(&self, max_len: usize) -> UserSequence {
        if self.items.len() <= max_len {
            return self.clone();
        }
        let start = self.items.len() - max_len;
        UserSequence {
            items: self.items[start..].to_vec(),
            timestamps: self.timestamps[start..].to_vec(),
            ratings: self.ratings.as_ref().map(|r| r[start..].to_vec()),
            ..self.clone()
        }
    }

    /// Check the rules of spec section 3 against a model; the message says what is wrong.
    pub fn validate(&self, cfg: &ModelConfig) -> std::result::Result<(), String> {
        if self.items.is_empty() {
            return Err("empty history: `items` needs at least one item".into());
        }
        if self.items.len() != self.timestamps.len() {
            return Err(format!(
                "`items` has {} entries but `timestamps` has {}",
                self.items.len(),
                self.timestamps.len()
            ));
        }
        if let Some(r) = &self.ratings {
            if r.len() != self.items.len() {
                return Err(format!(
                    "`ratings` has {} entries but `items` has {}",
                    r.len(),
                    self.items.len()
                ));
            }
            if let Some(rc) = &cfg.ranking
                && let Some(&a) = r.iter().find(|&&a| a as usize >= rc.num_actions)
            {
                return Err(format!("rating {a} is outside 0..{}", rc.num_actions));
            }
        }
        for (name, ids) in [("items", &self.items), ("candidates", &self.candidates)] {
            if let Some((pos, &id)) = ids
                .iter()
                .enumerate()
                .find(|&(_, &id)| id == 0 || id as usize > cfg.num_items)
            {
                return Err(format!(
                    "`{name}`[{pos}] = {id} is outside 1..={} (num_items)",
                    cfg.num_items
                ));
            }
        }
        if let Some(t) = self.target
            && (t == 0 || t as usize > cfg.num_items)
        {
            return Err(format!("`target` = {t} is outside 1..={}", cfg.num_items));
        }
        if let Some(p) = self.timestamps.windows(2).position(|w| w[1] < w[0]) {
            return Err(format!(
                "timestamps decrease at index {}: {} then {}",
                p + 1,
                self.timestamps[p],
                self.timestamps[p + 1]
            ));
        }
        if self.candidates.len() > MAX_CANDIDATES {
            return Err(format!(
                "{} candidates exceed the limit {MAX_CANDIDATES}",
                self.candidates.len()
            ));
        }
        Ok(())
    }
}

/// One line as read: the sequence and whatever other fields it carries (ignored, but named in a
/// warning, so that a misspelt `query_time` or `candidates` does not pass unnoticed).
#[derive(Deserialize)]
struct Line {
    #[serde(flatten)]
    seq: UserSequence,
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// Parse one JSONL text; `path` names the source in errors.
pub fn parse_jsonl<R: Read>(reader: R, path: &Path) -> Result<Vec<UserSequence>> {
    let mut out = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        line_no += 1;
        let n = read_bounded_line(&mut reader, &mut buf).map_err(|e| match e {
            LineError::Io(e) => Error::io(path, e),
            LineError::TooLong => Error::Line {
                path: path.into(),
                line: line_no,
                message: format!("line longer than {MAX_LINE_BYTES} bytes"),
            },
        })?;
        if n == 0 {
            break;
        }
        let text = std::str::from_utf8(&buf).map_err(|_| Error::Line {
            path: path.into(),
            line: line_no,
            message: "not valid UTF-8".into(),
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(text).map_err(|e| Error::Line {
            path: path.into(),
            line: line_no,
            message: format!("malformed sequence JSON: {e}"),
        })?;
        for name in line.other.keys() {
            if !unknown.contains(name) {
                tracing::warn!(
                    "{}:{line_no}: unknown field `{name}` ignored (fields: user_id, items, \
                     timestamps, query_time, candidates, ratings, target)",
                    path.display()
                );
                unknown.push(name.clone());
            }
        }
        out.push(line.seq);
    }
    if out.is_empty() {
        return Err(Error::Data {
            path: path.into(),
            message: "no sequences in file".into(),
        });
    }
    Ok(out)
}

enum LineError {
    Io(std::io::Error),
    TooLong,
}

fn read_bounded_line<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::result::Result<usize, LineError> {
    let mut total = 0;
    loop {
        let available = r.fill_buf().map_err(LineError::Io)?;
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let len = chunk.len();
        if total + len > MAX_LINE_BYTES {
            return Err(LineError::TooLong);
        }
        buf.extend_from_slice(chunk);
        r.consume(len);
        total += len;
        if done {
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            return Ok(total);
        }
    }
}

/// Sequences of a file, each validated against the model: errors name the line.
#[derive(Clone, Debug)]
pub struct SequenceFile {
    pub path: PathBuf,
    pub sequences: Vec<UserSequence>,
}

impl SequenceFile {
    /// Read and validate every line; histories are truncated to `max_sequence_len` (most recent).
    pub fn load(path: &Path, cfg: &ModelConfig) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let raw = parse_jsonl(file, path)?;
        Self::from_parsed(path, raw, cfg)
    }

    pub fn from_parsed(path: &Path, raw: Vec<UserSequence>, cfg: &ModelConfig) -> Result<Self> {
        let mut sequences = Vec::with_capacity(raw.len());
        for (i, s) in raw.into_iter().enumerate() {
            s.validate(cfg).map_err(|message| Error::Line {
                path: path.into(),
                line: i + 1,
                message,
            })?;
            sequences.push(s.truncated(cfg.max_sequence_len));
        }
        Ok(SequenceFile {
            path: path.into(),
            sequences,
        })
    }

    /// Write sequences as JSONL.
    pub fn write_jsonl(path: &Path, sequences: &[UserSequence]) -> Result<()> {
        let mut text = String::new();
        for s in sequences {
            text.push_str(&serde_json::to_string(s).expect("sequence serialises"));
            text.push('\n');
        }
        crate::checkpoint::write_atomic(path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ModelConfig {
        ModelConfig::tiny_for_tests()
    }

    fn check(line: &str) -> std::result::Result<(), String> {
        let seqs = parse_jsonl(line.as_bytes(), Path::new("x.jsonl")).map_err(|e| e.to_string())?;
        SequenceFile::from_parsed(Path::new("x.jsonl"), seqs, &cfg())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_fields_are_ignored_and_every_known_one_still_read() {
        let plain = r#"{"user_id": 3, "items": [1, 2], "timestamps": [5, 6], "query_time": 9, "candidates": [4], "ratings": [5, 1], "target": 7}"#;
        let extra = r#"{"user_id": 3, "quer_time": 1, "items": [1, 2], "timestamps": [5, 6], "query_time": 9, "candidates": [4], "ratings": [5, 1], "target": 7, "meta": {"a": [1]}}"#;
        let a = parse_jsonl(plain.as_bytes(), Path::new("a.jsonl")).unwrap();
        let b = parse_jsonl(extra.as_bytes(), Path::new("b.jsonl")).unwrap();
        assert_eq!(a, b);
        assert_eq!(b[0].query_time, Some(9));
        assert_eq!(b[0].ratings, Some(vec![5, 1]));
        // A known field of the wrong type is still an error.
        let bad = r#"{"user_id": 3, "items": [1, -2], "timestamps": [5, 6], "extra": 1}"#;
        assert!(parse_jsonl(bad.as_bytes(), Path::new("c.jsonl")).is_err());
    }

    #[test]
    fn good_line_parses_with_default_query_time() {
        let seqs = parse_jsonl(
            &b"{\"user_id\": 1, \"items\": [1,2], \"timestamps\": [5,6]}\n"[..],
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(seqs[0].query_time_secs(), 6);
        check("{\"user_id\": 1, \"items\": [1,2], \"timestamps\": [5,6]}").unwrap();
    }

    #[test]
    fn bad_lines_name_line_and_problem() {
        let ok = "{\"user_id\": 1, \"items\": [1], \"timestamps\": [5]}\n";
        let cases = [
            (
                "{\"user_id\": 1, \"items\": [41], \"timestamps\": [5]}",
                "outside",
            ),
            (
                "{\"user_id\": 1, \"items\": [0], \"timestamps\": [5]}",
                "outside",
            ),
            (
                "{\"user_id\": 1, \"items\": [1, 2], \"timestamps\": [5]}",
                "timestamps",
            ),
            (
                "{\"user_id\": 1, \"items\": [1, 2], \"timestamps\": [6, 5]}",
                "decrease",
            ),
            (
                "{\"user_id\": 1, \"items\": [], \"timestamps\": []}",
                "empty",
            ),
            ("{\"user_id\": 1, \"items\": [1", "malformed"),
            (
                "{\"user_id\": 1, \"items\": [-1], \"timestamps\": [5]}",
                "malformed",
            ),
        ];
        for (bad, needle) in cases {
            let err = check(&format!("{ok}{bad}\n")).unwrap_err();
            assert!(err.contains(":2:"), "{err}");
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn truncation_keeps_most_recent() {
        let s = UserSequence::new(1, (1..=20).collect(), (0..20).collect());
        let t = s.truncated(12);
        assert_eq!(t.items.first(), Some(&9));
        assert_eq!(t.items.len(), 12);
    }
}
