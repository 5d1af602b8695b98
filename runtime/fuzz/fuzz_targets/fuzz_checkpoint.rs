//! The checkpoint loader on arbitrary bytes, against a fixed small config: Err, never a panic,
//! never an allocation sized by an unchecked header field.
#![no_main]

use hstu_runtime::checkpoint::weights_from_bytes;
use hstu_runtime::config::ModelConfig;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let cfg = ModelConfig::tiny_for_tests();
    let _ = weights_from_bytes::<f32>(data, Path::new("fuzz.safetensors"), &cfg);
    let _ = hstu_runtime::checkpoint::raw_from_bytes(data, Path::new("fuzz.safetensors"));
});
