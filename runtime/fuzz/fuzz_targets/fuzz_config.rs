//! The config parser and validator on arbitrary text.
#![no_main]

use hstu_runtime::config::ModelConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = ModelConfig::from_json(text) {
            // A config that validates must describe a model whose sizes do not overflow.
            let _ = cfg.parameter_count();
            let _ = hstu_runtime::checkpoint::expected_tensors(&cfg).len();
        }
    }
});
