//! One module per panel; every panel is a `*_ui(ui, state)` function that only draws and queues
//! [`crate::state::Command`]s.

pub mod attention;
pub mod model_card;
pub mod ranking;
pub mod retrieval;
pub mod sources;
pub mod timeline;
pub mod training;
pub mod users;

/// Colour of warnings (seeded model, synthetic data).
pub const WARN: egui::Color32 = egui::Color32::from_rgb(230, 160, 60);
/// Colour that marks the held-out target.
pub const TARGET: egui::Color32 = egui::Color32::from_rgb(240, 90, 90);
