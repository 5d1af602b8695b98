//! Streaming line reading with a bounded line length, and the field parsers shared by the readers.
//!
//! Every error names `file:line` ([`Error::Line`]); nothing is allocated from an unchecked length.

use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Longest accepted line of a ratings or titles file (MovieLens lines are < 300 bytes).
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// Reads one line at a time into a reused buffer; `\n` and a trailing `\r` are stripped.
pub struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    line_no: usize,
    path: PathBuf,
}

/// One line of a file: its 1-based number, bytes (no newline) and the file it came from.
pub struct Line<'a> {
    pub no: usize,
    pub bytes: &'a [u8],
    pub path: &'a Path,
}

impl<R: Read> LineReader<R> {
    pub fn new(reader: R, path: &Path) -> Self {
        LineReader {
            inner: BufReader::with_capacity(1 << 16, reader),
            buf: Vec::new(),
            line_no: 0,
            path: path.to_path_buf(),
        }
    }

    /// The next line, `None` at the end of the file; a line over [`MAX_LINE_BYTES`] is an error.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>> {
        self.buf.clear();
        self.line_no += 1;
        let mut total = 0usize;
        loop {
            let available = self
                .inner
                .fill_buf()
                .map_err(|e| Error::io(&self.path, e))?;
            if available.is_empty() {
                if total == 0 {
                    return Ok(None);
                }
                break;
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if total + take > MAX_LINE_BYTES + 1 {
                return Err(Error::Line {
                    path: self.path.clone(),
                    line: self.line_no,
                    message: format!("line longer than {MAX_LINE_BYTES} bytes"),
                });
            }
            self.buf.extend_from_slice(&available[..take]);
            self.inner.consume(take);
            total += take;
            if done {
                break;
            }
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(Some(Line {
            no: self.line_no,
            bytes: &self.buf,
            path: &self.path,
        }))
    }
}

impl Line<'_> {
    /// An [`Error::Line`] naming this line.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Line {
            path: self.path.to_path_buf(),
            line: self.no,
            message: message.into(),
        }
    }

    /// The line as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(self.bytes).map_err(|_| self.error("not valid UTF-8"))
    }

    /// The line decoded as Latin-1 (every byte one char), as MovieLens `u.item` / `movies.dat` are.
    pub fn latin1(&self) -> String {
        self.bytes.iter().map(|&b| b as char).collect()
    }

    pub fn is_blank(&self) -> bool {
        self.bytes.iter().all(|b| b.is_ascii_whitespace())
    }

    /// Split on `sep` and require exactly `expected` fields.
    pub fn fields<'t>(&self, text: &'t str, sep: &str, expected: usize) -> Result<Vec<&'t str>> {
        let fields: Vec<&str> = text.split(sep).collect();
        if fields.len() != expected {
            return Err(self.error(format!(
                "expected {expected} fields separated by {sep:?}, found {}",
                fields.len()
            )));
        }
        Ok(fields)
    }

    /// A user id: a positive integer.
    pub fn user_id(&self, field: &str) -> Result<i64> {
        let f = field.trim();
        let id: i64 = f
            .parse()
            .map_err(|_| self.error(format!("user id `{f}` is not an integer")))?;
        if id <= 0 {
            return Err(self.error(format!("user id {id} must be positive")));
        }
        Ok(id)
    }

    /// An item id: an integer in `1..=u32::MAX` (0 is the padding id).
    pub fn item_id(&self, field: &str) -> Result<u32> {
        let f = field.trim();
        let id: i128 = f
            .parse()
            .map_err(|_| self.error(format!("item id `{f}` is not an integer")))?;
        if id <= 0 {
            return Err(self.error(format!("item id {id} must be positive (0 is padding)")));
        }
        u32::try_from(id).map_err(|_| self.error(format!("item id {id} exceeds {}", u32::MAX)))
    }

    /// A rating: a finite number >= 0 (MovieLens 1..5, ML-20M in half stars).
    pub fn rating(&self, field: &str) -> Result<f32> {
        let f = field.trim();
        let r: f32 = f
            .parse()
            .map_err(|_| self.error(format!("rating `{f}` is not a number")))?;
        if !r.is_finite() || r < 0.0 {
            return Err(self.error(format!("rating {r} must be finite and >= 0")));
        }
        Ok(r)
    }

    /// Unix seconds: an integer, or a float (RecBole writes `881250949.0`) truncated to seconds.
    pub fn timestamp(&self, field: &str) -> Result<i64> {
        let f = field.trim();
        if let Ok(t) = f.parse::<i64>() {
            return Ok(t);
        }
        let t: f64 = f
            .parse()
            .map_err(|_| self.error(format!("timestamp `{f}` is not a number")))?;
        if !t.is_finite() || t.abs() > 9.0e15 {
            return Err(self.error(format!("timestamp {t} is out of range")));
        }
        Ok(t.floor() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8]) -> Vec<(usize, Vec<u8>)> {
        let mut r = LineReader::new(text, Path::new("t.txt"));
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push((l.no, l.bytes.to_vec()));
        }
        out
    }

    #[test]
    fn lines_strip_crlf_and_count() {
        let got = lines(b"a\r\nbb\n\nc");
        assert_eq!(
            got,
            vec![
                (1, b"a".to_vec()),
                (2, b"bb".to_vec()),
                (3, Vec::new()),
                (4, b"c".to_vec())
            ]
        );
    }

    #[test]
    fn overlong_line_names_line() {
        let mut text = b"ok\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        let mut r = LineReader::new(&text[..], Path::new("t.txt"));
        assert!(r.next_line().unwrap().is_some());
        let err = r.next_line().err().unwrap().to_string();
        assert!(err.starts_with("t.txt:2:"), "{err}");
    }

    #[test]
    fn id_parsers_reject_bad_values() {
        let l = Line {
            no: 3,
            bytes: b"",
            path: Path::new("f"),
        };
        assert_eq!(l.item_id(" 42 ").unwrap(), 42);
        for bad in ["0", "-1", "abc", "4294967296", "1.5"] {
            let e = l.item_id(bad).unwrap_err().to_string();
            assert!(e.starts_with("f:3:"), "{e}");
        }
        assert!(l.user_id("-3").is_err());
        assert_eq!(l.timestamp("881250949.0").unwrap(), 881_250_949);
        assert!(l.rating("nan").is_err());
    }
}
