//! The model card: where a model came from, its config, parameter counts and tensor table.

use hstu_runtime::checkpoint::{Model, TensorEntry, Weights};
use hstu_runtime::config::{ModelConfig, RankingConfig};
use std::path::{Path, PathBuf};

/// How a model got into the session.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelOrigin {
    /// Read from `config.json` + `model.safetensors`.
    Loaded,
    /// Made on the fly from a fixed seed because the directory could not be read.
    Seeded { seed: u64, reason: String },
}

/// What the model card panel shows.
#[derive(Clone, Debug)]
pub struct ModelCard {
    pub dir: PathBuf,
    pub origin: ModelOrigin,
    pub config: ModelConfig,
    /// `(group, parameters)`: item embeddings, positions, each layer, the ranking head.
    pub parameter_groups: Vec<(String, usize)>,
    pub parameter_count: usize,
    pub tensors: Vec<TensorEntry>,
}

/// The seed of the on-the-fly model (the project's documented default).
pub const FALLBACK_SEED: u64 = 7;
/// MovieLens-100K's largest item id.
pub const ML100K_NUM_ITEMS: usize = 1682;

/// The ranking head of the on-the-fly ranking model (MovieLens tasks: rating >= 4, >= 3).
pub fn fallback_ranking_config() -> RankingConfig {
    RankingConfig {
        num_actions: 6,
        mlp_hidden_dim: 64,
        task_thresholds: vec![4, 3],
    }
}

/// `Model::load(dir)`, or a seeded `movielens_hstu(1682)` model (with a ranking head when
/// `ranking`) that says why.
pub fn load_or_seed(dir: &Path, ranking: bool) -> (Model, ModelOrigin) {
    match Model::load(dir) {
        Ok(m) => (m, ModelOrigin::Loaded),
        Err(e) => {
            let mut config = ModelConfig::movielens_hstu(ML100K_NUM_ITEMS);
            if ranking {
                config.ranking = Some(fallback_ranking_config());
            }
            let weights = Weights::<f32>::seeded(&config, FALLBACK_SEED);
            let tensors = weights
                .named()
                .into_iter()
                .map(|(name, shape, _)| TensorEntry {
                    name,
                    dtype: "F32 (seeded)".into(),
                    shape,
                })
                .collect();
            let model = Model {
                dir: dir.into(),
                config,
                weights,
                tensors,
            };
            let reason = e.to_string();
            (
                model,
                ModelOrigin::Seeded {
                    seed: FALLBACK_SEED,
                    reason,
                },
            )
        }
    }
}

impl ModelCard {
    pub fn new(model: &Model, origin: ModelOrigin) -> ModelCard {
        let w = &model.weights;
        let mut groups = vec![
            ("item embeddings".to_string(), w.item_emb.data.len()),
            ("position embeddings".to_string(), w.pos_emb.data.len()),
        ];
        for (i, l) in w.layers.iter().enumerate() {
            let n =
                l.uvqk.data.len() + l.pos_w.len() + l.ts_w.len() + l.o_w.data.len() + l.o_b.len();
            groups.push((format!("layer {i}"), n));
        }
        if let Some(r) = &w.ranking {
            let n = r.action_emb.data.len()
                + r.mlp0_w.data.len()
                + r.mlp0_b.len()
                + r.mlp2_w.data.len()
                + r.mlp2_b.len();
            groups.push(("ranking head".to_string(), n));
        }
        ModelCard {
            dir: model.dir.clone(),
            origin,
            config: model.config.clone(),
            parameter_groups: groups,
            parameter_count: w.parameter_count(),
            tensors: model.tensors.clone(),
        }
    }

    pub fn is_seeded(&self) -> bool {
        matches!(self.origin, ModelOrigin::Seeded { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dir_seeds_and_groups_sum_to_total() {
        let (model, origin) = load_or_seed(Path::new("/nonexistent/model"), true);
        assert!(matches!(origin, ModelOrigin::Seeded { seed: 7, .. }));
        let card = ModelCard::new(&model, origin);
        let sum: usize = card.parameter_groups.iter().map(|g| g.1).sum();
        assert_eq!(sum, card.parameter_count);
        assert_eq!(card.config.num_items, 1682);
        assert!(card.parameter_groups.iter().any(|g| g.0 == "ranking head"));
    }
}
