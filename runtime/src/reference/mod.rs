//! The CPU reference of HSTU: written for clarity, the oracle of every fast path.
//!
//! * [`ops`]: layer norm, L2 normalisation, the time bucket.
//! * [`attention`]: the jagged attention operator of spec section 6.
//! * [`encoder`]: the retrieval encoder of spec section 1 (and the target-aware forward of section 5).
//! * [`retrieval`]: item scoring and top-K with the history excluded.
//! * [`ranking`]: M-FALCON (history prefill into a KV cache, candidate micro-batches) and the ranking head.

pub mod attention;
pub mod encoder;
pub mod ops;
pub mod ranking;
pub mod retrieval;

pub use attention::{AttentionParams, hstu_attention};
pub use encoder::{EncodeOutput, LayerCapture, encode_batch, encode_user, forward_tokens};
pub use ranking::{KvCache, prefill, rank_candidates, score_candidates};
pub use retrieval::{TopK, retrieve_top_k};
