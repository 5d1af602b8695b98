//! `hstu-runtime`: the HSTU generative recommender (Zhai et al., ICML 2024) as one portable runtime.
//!
//! * [`config`]: `config.json` ([`ModelConfig`]), checked against itself and the weights.
//! * [`checkpoint`]: `model.safetensors` loading/saving under the reference tensor names.
//! * [`sequences`]: the sequences JSONL of spec section 3.
//! * [`reference`]: the CPU reference (the oracle of every fast path): forward, attention, ranking.
//! * [`data`]: MovieLens / RecBole readers, splits, the synthetic generator.
//! * [`eval`]: full-catalogue retrieval metrics (HR, NDCG, MRR).
//! * [`gpu`]: the wgpu runtime running the WGSL kernels of `hstu-shaders`.
//! * [`train`]: the CPU backward and trainer.
//!
//! ```
//! use hstu_runtime::{config::ModelConfig, checkpoint::Weights, reference};
//! let cfg = ModelConfig::tiny_for_tests();
//! let w = Weights::<f32>::seeded(&cfg, 7);
//! let seq = hstu_runtime::sequences::UserSequence::new(1, vec![3, 5, 9], vec![10, 20, 30]);
//! let out = reference::encode_user(&cfg, &w, &seq);
//! assert_eq!(out.user_embedding.len(), cfg.embedding_dim);
//! ```

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod eval;
pub mod evaluate;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod limits;
pub mod real;
pub mod reference;
pub mod rng;
pub mod sequences;
pub mod tensor;
pub mod train;

pub use config::ModelConfig;
pub use error::{Error, Result};
