//! Ratings readers: MovieLens-100K `u.data`, MovieLens-1M `ratings.dat`, MovieLens-20M
//! `ratings.csv` and RecBole atomic `.inter` files (spec section 8). Raw ids are kept.

use super::lines::{Line, LineReader};
use super::{Dataset, Limits, UserHistory};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The layout of a ratings file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum RatingsFormat {
    /// `u.data`: `user \t item \t rating \t timestamp`, no header.
    MovieLens100k,
    /// `ratings.dat`: `user::item::rating::timestamp`, no header.
    MovieLens1m,
    /// `ratings.csv`: header `userId,movieId,rating,timestamp`.
    MovieLens20m,
    /// RecBole `.inter`: tab-separated, header `user_id:token item_id:token rating:float timestamp:float`
    /// (columns found by name, in any order; `rating` optional).
    RecBoleInter,
}

impl RatingsFormat {
    /// Guess the format from the file name, then from its first line.
    pub fn detect(path: &Path, first_line: &str) -> Option<RatingsFormat> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".inter") || first_line.contains("user_id:") {
            Some(RatingsFormat::RecBoleInter)
        } else if name == "ratings.dat" || first_line.contains("::") {
            Some(RatingsFormat::MovieLens1m)
        } else if name.ends_with(".csv") || first_line.starts_with("userId,") {
            Some(RatingsFormat::MovieLens20m)
        } else if name == "u.data" || first_line.split('\t').count() == 4 {
            Some(RatingsFormat::MovieLens100k)
        } else {
            None
        }
    }
}

/// Column positions of a ratings file.
struct Columns {
    sep: &'static str,
    count: usize,
    user: usize,
    item: usize,
    rating: Option<usize>,
    timestamp: usize,
}

impl Columns {
    fn fixed(sep: &'static str) -> Columns {
        Columns {
            sep,
            count: 4,
            user: 0,
            item: 1,
            rating: Some(2),
            timestamp: 3,
        }
    }

    /// Parse the header of a format that has one; `None` for headerless formats.
    fn from_header(format: RatingsFormat, line: &Line<'_>) -> Result<Option<Columns>> {
        match format {
            RatingsFormat::MovieLens100k => Ok(None),
            RatingsFormat::MovieLens1m => Ok(None),
            RatingsFormat::MovieLens20m => {
                let text = line.text()?.trim();
                if text != "userId,movieId,rating,timestamp" {
                    return Err(line.error(format!(
                        "expected header `userId,movieId,rating,timestamp`, found `{text}`"
                    )));
                }
                Ok(Some(Columns::fixed(",")))
            }
            RatingsFormat::RecBoleInter => {
                let names: Vec<&str> = line.text()?.split('\t').map(str::trim).collect();
                let find = |field: &str| {
                    names
                        .iter()
                        .position(|n| n.split(':').next() == Some(field))
                };
                let need = |field: &str| {
                    find(field).ok_or_else(|| {
                        line.error(format!("RecBole header lacks a `{field}:..` column"))
                    })
                };
                Ok(Some(Columns {
                    sep: "\t",
                    count: names.len(),
                    user: need("user_id")?,
                    item: need("item_id")?,
                    rating: find("rating"),
                    timestamp: need("timestamp")?,
                }))
            }
        }
    }
}

/// One interaction as collected per user (file order is the push order).
#[derive(Clone, Copy)]
struct Event {
    timestamp: i64,
    item: u32,
    rating: f32,
}

/// Per-user events in file order, with the limits enforced as they grow.
struct Collector<'l> {
    limits: &'l Limits,
    index: HashMap<i64, usize>,
    users: Vec<(i64, Vec<Event>)>,
    interactions: usize,
    max_item: u32,
}

impl<'l> Collector<'l> {
    fn push(&mut self, line: &Line<'_>, user: i64, e: Event) -> Result<()> {
        if e.item as u64 > self.limits.max_item_id as u64 {
            return Err(line.error(format!(
                "item id {} exceeds the limit {} (Limits::max_item_id)",
                e.item, self.limits.max_item_id
            )));
        }
        if self.interactions >= self.limits.max_interactions {
            return Err(Error::Limit(format!(
                "{}: more than {} interactions (Limits::max_interactions)",
                line.path.display(),
                self.limits.max_interactions
            )));
        }
        let slot = match self.index.get(&user) {
            Some(&i) => i,
            None => {
                if self.users.len() >= self.limits.max_users {
                    return Err(Error::Limit(format!(
                        "{}: more than {} users (Limits::max_users)",
                        line.path.display(),
                        self.limits.max_users
                    )));
                }
                self.index.insert(user, self.users.len());
                self.users.push((user, Vec::new()));
                self.users.len() - 1
            }
        };
        self.users[slot].1.push(e);
        self.interactions += 1;
        self.max_item = self.max_item.max(e.item);
        Ok(())
    }

    /// Stable sort per user by timestamp (ties keep file order); users ordered by id.
    fn finish(mut self, path: &Path) -> Result<Dataset> {
        if self.interactions == 0 {
            return Err(Error::Data {
                path: path.into(),
                message: "no interactions in file".into(),
            });
        }
        self.users.sort_by_key(|(u, _)| *u);
        let users = self
            .users
            .into_iter()
            .map(|(user_id, mut events)| {
                events.sort_by_key(|e| e.timestamp);
                UserHistory {
                    user_id,
                    items: events.iter().map(|e| e.item).collect(),
                    timestamps: events.iter().map(|e| e.timestamp).collect(),
                    ratings: events.iter().map(|e| e.rating).collect(),
                }
            })
            .collect();
        Ok(Dataset {
            users,
            num_items: self.max_item as usize,
            titles: None,
        })
    }
}

/// Parse a ratings file of a known format; `path` names the source in errors.
pub fn parse_ratings<R: Read>(
    reader: R,
    path: &Path,
    format: RatingsFormat,
    limits: &Limits,
) -> Result<Dataset> {
    let mut lines = LineReader::new(reader, path);
    let mut columns: Option<Columns> = match format {
        RatingsFormat::MovieLens100k => Some(Columns::fixed("\t")),
        RatingsFormat::MovieLens1m => Some(Columns::fixed("::")),
        _ => None,
    };
    let mut collector = Collector {
        limits,
        index: HashMap::new(),
        users: Vec::new(),
        interactions: 0,
        max_item: 0,
    };
    while let Some(line) = lines.next_line()? {
        if line.is_blank() {
            continue;
        }
        let cols = match &columns {
            Some(c) => c,
            None => {
                columns = Columns::from_header(format, &line)?;
                continue;
            }
        };
        let text = line.text()?;
        let fields = line.fields(text, cols.sep, cols.count)?;
        let user = line.user_id(fields[cols.user])?;
        let item = line.item_id(fields[cols.item])?;
        let rating = match cols.rating {
            Some(i) => line.rating(fields[i])?,
            None => 0.0,
        };
        let timestamp = line.timestamp(fields[cols.timestamp])?;
        collector.push(
            &line,
            user,
            Event {
                timestamp,
                item,
                rating,
            },
        )?;
    }
    collector.finish(path)
}

/// Open a ratings file, check its size against the limits, detect its format and parse it.
pub fn read_ratings_file(path: &Path, limits: &Limits) -> Result<(Dataset, RatingsFormat)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > limits.max_file_bytes {
        return Err(Error::Limit(format!(
            "{}: {} bytes exceed the limit {} (Limits::max_file_bytes)",
            path.display(),
            meta.len(),
            limits.max_file_bytes
        )));
    }
    let first_line = {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut r = LineReader::new(file, path);
        match r.next_line()? {
            Some(l) => l.latin1(),
            None => String::new(),
        }
    };
    let format = RatingsFormat::detect(path, &first_line).ok_or_else(|| Error::Data {
        path: path.into(),
        message:
            "unknown ratings format (expected u.data, ratings.dat, ratings.csv or a RecBole .inter)"
                .into(),
    })?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok((parse_ratings(file, path, format, limits)?, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, format: RatingsFormat) -> Result<Dataset> {
        parse_ratings(
            text.as_bytes(),
            Path::new("r.txt"),
            format,
            &Limits::default(),
        )
    }

    #[test]
    fn ml100k_sorts_stably_by_time() {
        let ds = parse(
            "2\t5\t3\t100\n1\t7\t4\t50\n2\t3\t5\t90\n2\t9\t1\t100\n",
            RatingsFormat::MovieLens100k,
        )
        .unwrap();
        assert_eq!(ds.users.len(), 2);
        assert_eq!(ds.users[0].user_id, 1);
        assert_eq!(ds.users[1].items, vec![3, 5, 9]);
        assert_eq!(ds.users[1].timestamps, vec![90, 100, 100]);
        assert_eq!(ds.users[1].ratings, vec![5.0, 3.0, 1.0]);
        assert_eq!(ds.num_items, 9);
    }

    #[test]
    fn ml1m_ml20m_and_recbole_parse() {
        let a = parse(
            "1::1193::5::978300760\n1::661::3::978302109\n",
            RatingsFormat::MovieLens1m,
        )
        .unwrap();
        assert_eq!(a.users[0].items, vec![1193, 661]);
        let b = parse(
            "userId,movieId,rating,timestamp\r\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n",
            RatingsFormat::MovieLens20m,
        )
        .unwrap();
        assert_eq!(b.users[0].items, vec![29, 2]);
        assert_eq!(b.users[0].ratings, vec![3.5, 3.5]);
        let c = parse(
            "item_id:token\tuser_id:token\ttimestamp:float\trating:float\n242\t196\t881250949.0\t3\n",
            RatingsFormat::RecBoleInter,
        )
        .unwrap();
        assert_eq!(c.users[0].user_id, 196);
        assert_eq!(c.users[0].items, vec![242]);
        assert_eq!(c.users[0].timestamps, vec![881_250_949]);
        assert_eq!(c.users[0].ratings, vec![3.0]);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        use RatingsFormat::*;
        let cases = [
            (
                MovieLens100k,
                "1\t2\t3\t4\n1\tx\t3\t4\n",
                "r.txt:2:",
                "not an integer",
            ),
            (
                MovieLens100k,
                "1\t2\t3\t4\n1\t2\t3\n",
                "r.txt:2:",
                "expected 4 fields",
            ),
            (
                MovieLens100k,
                "1\t2\t3\t4\n\n1\t0\t3\t4\n",
                "r.txt:3:",
                "padding",
            ),
            (MovieLens100k, "-1\t2\t3\t4\n", "r.txt:1:", "positive"),
            (MovieLens1m, "1::4294967296::3::4\n", "r.txt:1:", "exceeds"),
            (
                MovieLens1m,
                "1::2::3::4::5\n",
                "r.txt:1:",
                "expected 4 fields",
            ),
            (MovieLens1m, "1::2::abc::4\n", "r.txt:1:", "rating"),
            (MovieLens20m, "user,movie,rating,ts\n", "r.txt:1:", "header"),
            (
                MovieLens20m,
                "userId,movieId,rating,timestamp\n1,2,3,x\n",
                "r.txt:2:",
                "timestamp",
            ),
            (
                RecBoleInter,
                "user_id:token\ttimestamp:float\n",
                "r.txt:1:",
                "item_id",
            ),
            (
                RecBoleInter,
                "user_id:token\titem_id:token\ttimestamp:float\n1\t2\n",
                "r.txt:2:",
                "fields",
            ),
        ];
        for (format, text, place, needle) in cases {
            let err = parse(text, format).err().unwrap().to_string();
            assert!(err.starts_with(place), "{format:?}: {err}");
            assert!(err.contains(needle), "{format:?}: {err} lacks {needle}");
        }
    }

    #[test]
    fn limits_and_empty_files_are_errors() {
        let limits = Limits {
            max_users: 1,
            ..Limits::default()
        };
        let err = parse_ratings(
            &b"1\t2\t3\t4\n2\t2\t3\t4\n"[..],
            Path::new("r"),
            RatingsFormat::MovieLens100k,
            &limits,
        );
        assert!(matches!(err, Err(Error::Limit(_))));
        let limits = Limits {
            max_item_id: 10,
            ..Limits::default()
        };
        let err = parse_ratings(
            &b"1\t11\t3\t4\n"[..],
            Path::new("r"),
            RatingsFormat::MovieLens100k,
            &limits,
        );
        assert!(err.err().unwrap().to_string().starts_with("r:1:"));
        assert!(parse("\n", RatingsFormat::MovieLens100k).is_err());
    }

    #[test]
    fn detection_by_name_and_header() {
        use RatingsFormat::*;
        let d = |p: &str, l: &str| RatingsFormat::detect(Path::new(p), l);
        assert_eq!(
            d("ml/u.data", "196\t242\t3\t881250949"),
            Some(MovieLens100k)
        );
        assert_eq!(d("ratings.dat", "1::1193::5::978300760"), Some(MovieLens1m));
        assert_eq!(
            d("ratings.csv", "userId,movieId,rating,timestamp"),
            Some(MovieLens20m)
        );
        assert_eq!(
            d("ml-100k.inter", "user_id:token\titem_id:token"),
            Some(RecBoleInter)
        );
        assert_eq!(d("other.txt", "hello"), None);
    }
}
