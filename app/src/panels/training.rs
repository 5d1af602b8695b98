//! Training curves from the model directory's `metrics.jsonl`: loss (and throughput) per step,
//! and every evaluation metric (HR@K, NDCG@K, ...) with its best point.

use crate::colormap::series_color;
use crate::metrics::series_styles;
use crate::state::AppState;
use egui_plot::{Legend, Line, LineStyle, Plot, Points};

pub fn training_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let Some(log) = &state.training else {
        ui.label("No training log: metrics.jsonl is written beside the model by `hstu train`.");
        if !state.training_note.is_empty() {
            ui.weak(&state.training_note);
        }
        return;
    };
    if log.is_empty() {
        ui.label("metrics.jsonl has no step or eval lines yet.");
        return;
    }
    ui.horizontal(|ui| {
        ui.label(format!(
            "{} steps, {} evaluations",
            log.loss.len(),
            log.evals.len()
        ));
        for split in log.splits() {
            ui.separator();
            match split.as_str() {
                "valid_in_sample" => ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "evaluated in-sample (a refit trains on these targets): not a measure",
                ),
                "test" => ui.label("evaluated on each user's last item (spec protocol)"),
                "valid" => ui.label("evaluated on the held-out validation item"),
                other => ui.label(format!("split {other}")),
            };
        }
        if log.skipped_lines > 0 {
            ui.weak(format!("({} lines skipped)", log.skipped_lines));
        }
        for name in ["HR@10", "NDCG@10"] {
            if let Some([x, v]) = log.best(name) {
                ui.separator();
                ui.label(format!("best {name} {v:.4} at {x}"));
            }
        }
    });
    let height = (ui.available_height() - 40.0) / 2.0;
    ui.strong("training loss");
    Plot::new("training-loss")
        .height(height.max(120.0))
        .legend(Legend::default())
        .x_axis_label("step")
        .show(ui, |plot| {
            plot.line(Line::new("loss", log.loss.clone()));
        });
    ui.strong("evaluation");
    Plot::new("training-eval")
        .height(height.max(120.0))
        .legend(Legend::default().follow_insertion_order(true))
        .x_axis_label("step")
        .show(ui, |plot| {
            let names = log.metric_names();
            for (name, (color, style)) in names.iter().zip(series_styles(&names)) {
                let series = log.metric_series(name);
                let color = series_color(color);
                let style = match style {
                    0 => LineStyle::Solid,
                    1 => LineStyle::dashed_loose(),
                    _ => LineStyle::dotted_loose(),
                };
                plot.line(
                    Line::new(name.clone(), series.clone())
                        .color(color)
                        .style(style),
                );
                plot.add(Points::new(name.clone(), series).radius(2.5).color(color));
            }
        });
}
