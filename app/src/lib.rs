//! `hstu-explorer`: an egui/eframe desktop explorer of an HSTU model over a user's timeline.
//!
//! The crate is split so that drawing never waits:
//!
//! * [`worker`]: a background thread that owns the loaded model(s) and data and does all file
//!   reading and inference (through an [`backend::InferenceBackend`]); it reports progress and
//!   results over a channel.
//! * [`state`]: what the panels read and edit; panels queue [`state::Command`]s, never run work.
//! * [`panels`]: one `*_ui` function per panel; they only draw.
//! * [`app`]: the eframe shell that forwards commands to the worker and results into the state.
//!
//! ```
//! use hstu_explorer::colormap::viridis;
//! assert_eq!(viridis(0.0), egui::Color32::from_rgb(68, 1, 84));
//! ```

pub mod analysis;
pub mod app;
pub mod backend;
pub mod colormap;
pub mod dataset;
pub mod metrics;
pub mod model_info;
pub mod panels;
pub mod ranking;
pub mod sources;
pub mod state;
pub mod timefmt;
pub mod worker;

pub use app::ExplorerApp;
pub use sources::Sources;
