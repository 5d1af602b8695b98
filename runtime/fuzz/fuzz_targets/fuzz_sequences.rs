//! The sequences JSONL parser and validator, then the CPU forward on whatever validates.
#![no_main]

use hstu_runtime::checkpoint::Weights;
use hstu_runtime::config::ModelConfig;
use hstu_runtime::sequences::{SequenceFile, parse_jsonl};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.jsonl");
    let cfg = ModelConfig::tiny_for_tests();
    let Ok(raw) = parse_jsonl(data, path) else { return };
    let Ok(file) = SequenceFile::from_parsed(path, raw, &cfg) else { return };
    let w = Weights::<f32>::seeded(&cfg, 1);
    for s in file.sequences.iter().take(4) {
        let out = hstu_runtime::reference::encode_user(&cfg, &w, s);
        assert_eq!(out.user_embedding.len(), cfg.embedding_dim);
    }
});
