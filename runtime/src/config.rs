//! `config.json` of a model directory (spec section 2). Unknown fields are an error.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest accepted values: checked before any allocation sized by the config.
pub mod limits {
    pub const MAX_ITEMS: usize = 200_000_000;
    pub const MAX_DIM: usize = 65_536;
    pub const MAX_BLOCKS: usize = 1024;
    pub const MAX_HEADS: usize = 1024;
    pub const MAX_SEQUENCE_LEN: usize = 1 << 20;
    pub const MAX_TIME_BUCKETS: usize = 1 << 16;
    /// Largest parameter count of a model this runtime accepts (f32 on the host).
    pub const MAX_PARAMETERS: usize = 8_000_000_000;
}

/// Model hyper-parameters, `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Always `"hstu"`.
    pub architecture: String,
    /// Largest item id; the item table has `num_items + 1` rows (row 0 = padding).
    pub num_items: usize,
    /// D.
    pub embedding_dim: usize,
    pub num_blocks: usize,
    pub num_heads: usize,
    /// dqk per head.
    pub attention_dim: usize,
    /// dv per head.
    pub linear_dim: usize,
    pub max_sequence_len: usize,
    pub max_output_len: usize,
    pub num_time_buckets: usize,
    /// Always `"log"`.
    pub time_bucket_fn: String,
    pub time_bucket_divisor: f64,
    pub layer_norm_eps: f64,
    pub l2_norm_eps: f64,
    pub input_dropout: f64,
    pub linear_dropout: f64,
    /// Present on a ranking model (spec section 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<RankingConfig>,
}

/// The ranking head of spec section 5 (this project's definition).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankingConfig {
    /// Rows of the action embedding: action 0 = unknown, 1..=5 = the MovieLens rating.
    pub num_actions: usize,
    /// Hidden width of the MLP `D -> hidden -> T` (ReLU between).
    pub mlp_hidden_dim: usize,
    /// One task per threshold: label = `rating >= threshold` (MovieLens: `[4, 3]`).
    pub task_thresholds: Vec<u8>,
}

impl RankingConfig {
    pub fn num_tasks(&self) -> usize {
        self.task_thresholds.len()
    }
}

impl ModelConfig {
    /// N = max_sequence_len + max_output_len: the attention normaliser and the position range.
    pub fn n(&self) -> usize {
        self.max_sequence_len + self.max_output_len
    }

    /// Width of `W_uvqk`: `2*H*dv + 2*H*dqk`.
    pub fn uvqk_dim(&self) -> usize {
        2 * self.num_heads * (self.linear_dim + self.attention_dim)
    }

    pub fn hdv(&self) -> usize {
        self.num_heads * self.linear_dim
    }

    pub fn hdqk(&self) -> usize {
        self.num_heads * self.attention_dim
    }

    /// Parameter count of the weights this config describes.
    pub fn parameter_count(&self) -> usize {
        let d = self.embedding_dim;
        let n = self.n();
        let per_layer =
            d * self.uvqk_dim() + (2 * n - 1) + (self.num_time_buckets + 1) + d * self.hdv() + d;
        let ranking = self.ranking.as_ref().map_or(0, |r| {
            r.num_actions * d
                + r.mlp_hidden_dim * d
                + r.mlp_hidden_dim
                + r.num_tasks() * r.mlp_hidden_dim
                + r.num_tasks()
        });
        (self.num_items + 1) * d + n * d + self.num_blocks * per_layer + ranking
    }

    /// Read and validate `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() > 1 << 20 {
            return Err(Error::Config {
                path: path.into(),
                message: format!("file is {} bytes; a config is at most 1 MiB", meta.len()),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|message| Error::Config {
            path: path.into(),
            message,
        })
    }

    /// Parse and validate JSON text; the error is one line.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let cfg: ModelConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// Every field in range and consistent; limits checked before any allocation.
    pub fn validate(&self) -> std::result::Result<(), String> {
        use limits::*;
        if self.architecture != "hstu" {
            return Err(format!(
                "architecture is {:?}, expected \"hstu\"",
                self.architecture
            ));
        }
        if self.time_bucket_fn != "log" {
            return Err(format!(
                "time_bucket_fn is {:?}, only \"log\" is supported",
                self.time_bucket_fn
            ));
        }
        let ranges: [(&str, usize, usize); 9] = [
            ("num_items", self.num_items, MAX_ITEMS),
            ("embedding_dim", self.embedding_dim, MAX_DIM),
            ("num_blocks", self.num_blocks, MAX_BLOCKS),
            ("num_heads", self.num_heads, MAX_HEADS),
            ("attention_dim", self.attention_dim, MAX_DIM),
            ("linear_dim", self.linear_dim, MAX_DIM),
            ("max_sequence_len", self.max_sequence_len, MAX_SEQUENCE_LEN),
            ("max_output_len", self.max_output_len, MAX_SEQUENCE_LEN),
            ("num_time_buckets", self.num_time_buckets, MAX_TIME_BUCKETS),
        ];
        for (name, value, max) in ranges {
            if value == 0 {
                return Err(format!("{name} must be positive, got 0"));
            }
            if value > max {
                return Err(format!("{name} = {value} exceeds the limit {max}"));
            }
        }
        if self.num_heads * self.attention_dim > MAX_DIM
            || self.num_heads * self.linear_dim > MAX_DIM
        {
            return Err(format!(
                "num_heads * attention_dim / linear_dim exceed the limit {MAX_DIM}"
            ));
        }
        let positive = [
            ("time_bucket_divisor", self.time_bucket_divisor),
            ("layer_norm_eps", self.layer_norm_eps),
            ("l2_norm_eps", self.l2_norm_eps),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!(
                    "{name} must be a positive finite number, got {value}"
                ));
            }
        }
        for (name, value) in [
            ("input_dropout", self.input_dropout),
            ("linear_dropout", self.linear_dropout),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(format!("{name} must be in [0, 1), got {value}"));
            }
        }
        if let Some(r) = &self.ranking {
            if r.num_actions == 0 || r.num_actions > 1 << 16 {
                return Err(format!(
                    "ranking.num_actions = {} must be in 1..=65536",
                    r.num_actions
                ));
            }
            if r.mlp_hidden_dim == 0 || r.mlp_hidden_dim > MAX_DIM {
                return Err(format!(
                    "ranking.mlp_hidden_dim = {} must be in 1..={MAX_DIM}",
                    r.mlp_hidden_dim
                ));
            }
            if r.task_thresholds.is_empty() || r.task_thresholds.len() > 64 {
                return Err("ranking.task_thresholds must list 1 to 64 thresholds".into());
            }
        }
        let params = self
            .parameter_count_checked()
            .ok_or("parameter count overflows")?;
        if params > MAX_PARAMETERS {
            return Err(format!(
                "{params} parameters exceed the limit {MAX_PARAMETERS}"
            ));
        }
        Ok(())
    }

    fn parameter_count_checked(&self) -> Option<usize> {
        let d = self.embedding_dim;
        let items = self.num_items.checked_add(1)?.checked_mul(d)?;
        let layer = d
            .checked_mul(self.uvqk_dim())?
            .checked_add(d.checked_mul(self.hdv())?)?;
        let all = items.checked_add(self.num_blocks.checked_mul(layer)?)?;
        Some(all)
    }

    /// A small config for doc tests and unit tests.
    pub fn tiny_for_tests() -> Self {
        ModelConfig {
            architecture: "hstu".into(),
            num_items: 40,
            embedding_dim: 8,
            num_blocks: 2,
            num_heads: 2,
            attention_dim: 4,
            linear_dim: 3,
            max_sequence_len: 12,
            max_output_len: 3,
            num_time_buckets: 128,
            time_bucket_fn: "log".into(),
            time_bucket_divisor: 0.301,
            layer_norm_eps: 1e-6,
            l2_norm_eps: 1e-6,
            input_dropout: 0.2,
            linear_dropout: 0.2,
            ranking: None,
        }
    }

    /// The MovieLens HSTU config of spec section 7 (2 blocks, 1 head, 50/50, D = 50).
    pub fn movielens_hstu(num_items: usize) -> Self {
        ModelConfig {
            num_items,
            embedding_dim: 50,
            num_blocks: 2,
            num_heads: 1,
            attention_dim: 50,
            linear_dim: 50,
            max_sequence_len: 200,
            max_output_len: 11,
            ..Self::tiny_for_tests()
        }
    }

    /// The MovieLens HSTU-large config (8 blocks, 2 heads, 25/25, D = 50).
    pub fn movielens_hstu_large(num_items: usize) -> Self {
        ModelConfig {
            num_blocks: 8,
            num_heads: 2,
            attention_dim: 25,
            linear_dim: 25,
            ..Self::movielens_hstu(num_items)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_config_parses() {
        let text = include_str!("../../tests/golden/retrieval_small/config.json");
        let cfg = ModelConfig::from_json(text).unwrap();
        assert_eq!(cfg.n(), 61);
        assert_eq!(cfg.uvqk_dim(), 128);
    }

    #[test]
    fn unknown_missing_zero_fields_rejected() {
        let text = include_str!("../../tests/golden/retrieval_small/config.json");
        let unknown = text.replacen("{", "{\"extra\": 1,", 1);
        assert!(
            ModelConfig::from_json(&unknown)
                .unwrap_err()
                .contains("extra")
        );
        let missing = text.replace("\"num_heads\": 2,", "");
        assert!(
            ModelConfig::from_json(&missing)
                .unwrap_err()
                .contains("num_heads")
        );
        let zero = text.replace("\"num_heads\": 2", "\"num_heads\": 0");
        assert!(
            ModelConfig::from_json(&zero)
                .unwrap_err()
                .contains("num_heads")
        );
        let negative = text.replace("\"num_heads\": 2", "\"num_heads\": -2");
        assert!(ModelConfig::from_json(&negative).is_err());
        let huge = text.replace("\"num_items\": 300", "\"num_items\": 99999999999999");
        assert!(
            ModelConfig::from_json(&huge)
                .unwrap_err()
                .contains("num_items")
        );
    }
}
