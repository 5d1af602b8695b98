//! Item titles: MovieLens `u.item` (Latin-1, `|`), `movies.dat` (Latin-1, `::`), `movies.csv`
//! (quoted CSV) and RecBole `.item` (tab-separated, a `*title*` column), read when present beside
//! the ratings file.

use super::lines::{Line, LineReader};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Item id -> title.
pub type Titles = BTreeMap<u32, String>;

/// The layout of a titles file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TitlesFormat {
    /// `u.item`: `id|title|release date|...`, Latin-1.
    MovieLens100k,
    /// `movies.dat`: `id::title::genres`, Latin-1.
    MovieLens1m,
    /// `movies.csv`: header `movieId,title,genres`, titles quoted when they hold commas.
    MovieLens20m,
    /// RecBole `.item`: header `item_id:token\tmovie_title:token_seq\t...`.
    RecBoleItem,
}

/// Parse a titles file; malformed lines are errors naming the line.
pub fn parse_titles<R: Read>(reader: R, path: &Path, format: TitlesFormat) -> Result<Titles> {
    let mut lines = LineReader::new(reader, path);
    let mut titles = Titles::new();
    // RecBole: (number of columns, id column, title column) from the header.
    let mut recbole: Option<(usize, usize, usize)> = None;
    let mut first = true;
    while let Some(line) = lines.next_line()? {
        let is_header = std::mem::replace(&mut first, false);
        if line.is_blank() {
            continue;
        }
        let (id_field, title) = match format {
            TitlesFormat::MovieLens100k => {
                let text = line.latin1();
                let mut it = text.split('|');
                let (id, title) = (it.next(), it.next());
                match (id, title) {
                    (Some(id), Some(t)) => (id.to_string(), t.to_string()),
                    _ => return Err(line.error("expected `id|title|...`")),
                }
            }
            TitlesFormat::MovieLens1m => {
                let text = line.latin1();
                let f = line.fields(&text, "::", 3)?;
                (f[0].to_string(), f[1].to_string())
            }
            TitlesFormat::MovieLens20m => {
                if is_header {
                    continue;
                }
                let f = split_csv(&line, line.text()?)?;
                if f.len() != 3 {
                    return Err(line.error(format!("expected 3 CSV fields, found {}", f.len())));
                }
                (f[0].clone(), f[1].clone())
            }
            TitlesFormat::RecBoleItem => {
                let text = line.text()?;
                let Some((count, id_col, title_col)) = recbole else {
                    recbole = Some(recbole_header(&line, text)?);
                    continue;
                };
                let f = line.fields(text, "\t", count)?;
                (f[id_col].to_string(), f[title_col].to_string())
            }
        };
        let id = line.item_id(&id_field)?;
        titles.insert(id, title.trim().to_string());
    }
    Ok(titles)
}

fn recbole_header(line: &Line<'_>, text: &str) -> Result<(usize, usize, usize)> {
    let names: Vec<&str> = text.split('\t').map(str::trim).collect();
    let id = names.iter().position(|n| n.starts_with("item_id:"));
    let title = names.iter().position(|n| n.contains("title"));
    match (id, title) {
        (Some(i), Some(t)) => Ok((names.len(), i, t)),
        _ => Err(line.error("RecBole .item header lacks `item_id:..` or a `*title*` column")),
    }
}

/// Split one CSV record (double quotes, `""` escapes; no embedded newlines).
fn split_csv(line: &Line<'_>, text: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err(line.error("unterminated quote"));
    }
    fields.push(cur);
    Ok(fields)
}

/// The titles file beside a ratings file, if one exists: `u.item`, `movies.dat`, `movies.csv`,
/// or `<stem>.item` next to `<stem>.inter`.
pub fn titles_beside(ratings: &Path) -> Option<(PathBuf, TitlesFormat)> {
    let dir = ratings.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![
        (dir.join("u.item"), TitlesFormat::MovieLens100k),
        (dir.join("movies.dat"), TitlesFormat::MovieLens1m),
        (dir.join("movies.csv"), TitlesFormat::MovieLens20m),
    ];
    if ratings.extension().is_some_and(|e| e == "inter") {
        candidates.insert(
            0,
            (ratings.with_extension("item"), TitlesFormat::RecBoleItem),
        );
    }
    candidates.into_iter().find(|(p, _)| p.is_file())
}

/// Read the titles file beside `ratings`, `Ok(None)` when there is none.
pub fn read_titles_beside(ratings: &Path, max_file_bytes: u64) -> Result<Option<Titles>> {
    let Some((path, format)) = titles_beside(ratings) else {
        return Ok(None);
    };
    let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
    if meta.len() > max_file_bytes {
        return Err(Error::Limit(format!(
            "{}: {} bytes exceed the limit {max_file_bytes}",
            path.display(),
            meta.len()
        )));
    }
    let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    parse_titles(file, &path, format).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], f: TitlesFormat) -> Result<Titles> {
        parse_titles(bytes, Path::new("t"), f)
    }

    #[test]
    fn all_title_formats_parse() {
        let a = parse(
            b"1|Toy Story (1995)|01-Jan-1995||x\n2|Caf\xe9 (1994)|x\n",
            TitlesFormat::MovieLens100k,
        )
        .unwrap();
        assert_eq!(a[&1], "Toy Story (1995)");
        assert_eq!(a[&2], "Caf\u{e9} (1994)");
        let b = parse(
            b"1::Toy Story (1995)::Animation|Comedy\n",
            TitlesFormat::MovieLens1m,
        )
        .unwrap();
        assert_eq!(b[&1], "Toy Story (1995)");
        let c = parse(
            b"movieId,title,genres\n11,\"American President, The (1995)\",Comedy\n12,\"A \"\"B\"\"\",Drama\n",
            TitlesFormat::MovieLens20m,
        )
        .unwrap();
        assert_eq!(c[&11], "American President, The (1995)");
        assert_eq!(c[&12], "A \"B\"");
        let d = parse(
            b"item_id:token\tmovie_title:token_seq\trelease_year:token\n1\tToy Story\t1995\n",
            TitlesFormat::RecBoleItem,
        )
        .unwrap();
        assert_eq!(d[&1], "Toy Story");
    }

    #[test]
    fn malformed_title_lines_name_line() {
        let cases: [(&[u8], TitlesFormat); 4] = [
            (b"1|a\nx|b\n", TitlesFormat::MovieLens100k),
            (b"1::a::g\n2::b\n", TitlesFormat::MovieLens1m),
            (
                b"movieId,title,genres\n\"3,a,b\n",
                TitlesFormat::MovieLens20m,
            ),
            (
                b"item_id:token\tmovie_title:token_seq\n1\tA\n2\n",
                TitlesFormat::RecBoleItem,
            ),
        ];
        for (text, f) in cases {
            let err = parse(text, f).unwrap_err().to_string();
            assert!(
                err.starts_with("t:2:") || err.starts_with("t:3:"),
                "{f:?}: {err}"
            );
        }
    }
}
