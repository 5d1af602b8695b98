//! The model card: origin, config, parameter counts and the tensor table of both models.

use crate::model_info::{ModelCard, ModelOrigin};
use crate::state::AppState;

/// Both model cards, retrieval first.
pub fn model_card_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let Some(model) = &state.model else {
        ui.label("no model loaded yet");
        return;
    };
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading("Retrieval model");
        card_ui(ui, model, "retrieval");
        if let Some(ranking) = &state.ranking_model {
            ui.add_space(8.0);
            ui.separator();
            ui.heading("Ranking model");
            card_ui(ui, ranking, "ranking");
        }
    });
}

fn card_ui(ui: &mut egui::Ui, card: &ModelCard, id: &str) {
    ui.label(format!("directory: {}", card.dir.display()));
    if let ModelOrigin::Seeded { seed, reason } = &card.origin {
        ui.colored_label(
            super::WARN,
            format!("No trained model here: showing a seeded model (seed {seed}). {reason}"),
        );
    }
    let c = &card.config;
    ui.columns(2, |cols| {
        egui::Grid::new(format!("{id}-config"))
            .striped(true)
            .show(&mut cols[0], |ui| {
                let rows: [(&str, String); 11] = [
                    ("architecture", c.architecture.clone()),
                    ("num_items", c.num_items.to_string()),
                    ("embedding_dim D", c.embedding_dim.to_string()),
                    (
                        "blocks x heads",
                        format!("{} x {}", c.num_blocks, c.num_heads),
                    ),
                    (
                        "dqk / dv",
                        format!("{} / {}", c.attention_dim, c.linear_dim),
                    ),
                    ("max_sequence_len", c.max_sequence_len.to_string()),
                    ("N (normaliser)", c.n().to_string()),
                    (
                        "time buckets",
                        format!(
                            "{} ({}, {})",
                            c.num_time_buckets, c.time_bucket_fn, c.time_bucket_divisor
                        ),
                    ),
                    (
                        "dropout in / lin",
                        format!("{} / {}", c.input_dropout, c.linear_dropout),
                    ),
                    (
                        "eps ln / l2",
                        format!("{:e} / {:e}", c.layer_norm_eps, c.l2_norm_eps),
                    ),
                    (
                        "ranking head",
                        c.ranking.as_ref().map_or("none".into(), |r| {
                            format!("hidden {}, tasks {:?}", r.mlp_hidden_dim, r.task_thresholds)
                        }),
                    ),
                ];
                for (k, v) in rows {
                    ui.label(k);
                    ui.monospace(v);
                    ui.end_row();
                }
            });
        let ui = &mut cols[1];
        ui.strong(format!("{} parameters", group_digits(card.parameter_count)));
        egui::Grid::new(format!("{id}-params"))
            .striped(true)
            .show(ui, |ui| {
                for (name, n) in &card.parameter_groups {
                    ui.label(name);
                    ui.monospace(group_digits(*n));
                    let share = *n as f32 / card.parameter_count.max(1) as f32;
                    ui.add(egui::ProgressBar::new(share).desired_width(90.0));
                    ui.end_row();
                }
            });
    });
    egui::CollapsingHeader::new(format!("{} tensors", card.tensors.len()))
        .id_salt(format!("{id}-tensors"))
        .default_open(true)
        .show(ui, |ui| {
            egui::Grid::new(format!("{id}-tensor-table"))
                .striped(true)
                .show(ui, |ui| {
                    ui.strong("name");
                    ui.strong("dtype");
                    ui.strong("shape");
                    ui.end_row();
                    for t in &card.tensors {
                        ui.monospace(&t.name);
                        ui.label(&t.dtype);
                        ui.monospace(format!("{:?}", t.shape));
                        ui.end_row();
                    }
                });
        });
}

/// `1234567` -> `1,234,567`.
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits() {
        assert_eq!(super::group_digits(1_234_567), "1,234,567");
        assert_eq!(super::group_digits(12), "12");
    }
}
