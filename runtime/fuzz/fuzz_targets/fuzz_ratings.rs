//! Every ratings reader and titles reader on arbitrary bytes (the first byte picks the format).
#![no_main]

use hstu_runtime::data::Limits;
use hstu_runtime::data::readers::{RatingsFormat, parse_ratings};
use hstu_runtime::data::titles::{TitlesFormat, parse_titles};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let limits = Limits {
        max_file_bytes: 1 << 20,
        max_users: 10_000,
        max_item_id: 100_000,
        max_interactions: 100_000,
    };
    let path = Path::new("fuzz.ratings");
    let format = match selector % 4 {
        0 => RatingsFormat::MovieLens100k,
        1 => RatingsFormat::MovieLens1m,
        2 => RatingsFormat::MovieLens20m,
        _ => RatingsFormat::RecBoleInter,
    };
    if let Ok(ds) = parse_ratings(body, path, format, &limits) {
        for split in [
            hstu_runtime::data::split::Split::Test,
            hstu_runtime::data::split::Split::Valid,
            hstu_runtime::data::split::Split::TrainWithValid,
        ] {
            let _ = hstu_runtime::data::split::sequences(&ds, split, 16);
        }
    }
    let titles = match selector % 4 {
        0 => TitlesFormat::MovieLens100k,
        1 => TitlesFormat::MovieLens1m,
        2 => TitlesFormat::MovieLens20m,
        _ => TitlesFormat::RecBoleItem,
    };
    let _ = parse_titles(body, path, titles);
});
