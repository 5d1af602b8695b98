//! CPU backward and trainer (spec section 7), generic over [`Real`](crate::real::Real) where it
//! is checked (f64 against goldens and finite differences) and run in f32 by the trainer.
//!
//! * [`ops`]: backward of layer norm (no affine), SiLU and L2 normalisation.
//! * [`attention`]: backward of the jagged attention of spec section 6 (dq, dk, dv, d rab).
//! * [`tape`]: the training forward (dropout, recorded activations) and its backward into every
//!   parameter (embeddings, positions, W_uvqk, pos_w / ts_w, W_o / b_o, action embeddings).
//! * [`loss`]: autoregressive sampled softmax; the ranking head with BCE per task.
//! * [`grads`], [`adamw`]: gradient buffers shaped like the weights; AdamW as torch.
//! * [`step`]: one example's and one batch's gradients (parallel, deterministic).
//! * [`cuda`] (feature `cuda`): the same retrieval step fused on a CUDA GPU (hstu-cuda).
//! * [`trainer`], [`state`]: the loop (validating each epoch through [`crate::evaluate`]) and its checkpoint for `--resume`.

pub mod adamw;
pub mod attention;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod grads;
pub mod loss;
pub mod ops;
pub mod state;
pub mod step;
pub mod tape;
pub mod trainer;

pub use attention::{AttentionGrads, hstu_attention_backward};
pub use trainer::{TrainData, TrainDevice, TrainOptions, TrainReport, train};
