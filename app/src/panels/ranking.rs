//! The M-FALCON stepper: choose candidates and a micro-batch size, prefill the history once, then
//! score one micro-batch per step against the cached K/V; scores fill in as steps run and the
//! ranked list builds up.

use super::attention::truncate;
use crate::state::{AppState, Command, RankingRun, SourceKind};
use egui_plot::{Bar, BarChart, Plot};

pub fn ranking_ui(ui: &mut egui::Ui, state: &mut AppState) {
    if state.selected_user.is_none() {
        ui.label("select a user");
        return;
    }
    if let Some(card) = &state.ranking_model {
        let head = if card.config.ranking.is_some() {
            "with ranking head"
        } else {
            "no ranking head"
        };
        let seeded = if card.is_seeded() {
            " (seeded: no trained ranking model found)"
        } else {
            ""
        };
        ui.label(format!(
            "ranking model {} - {head}{seeded}",
            card.dir.display()
        ));
    }
    settings_ui(ui, state);
    ui.separator();
    let Some(run) = state.ranking.run.clone() else {
        ui.label("Prefill to start: the history runs once and its K/V of every layer is cached.");
        return;
    };
    if Some(run.user) != state.selected_user {
        ui.weak("this run belongs to another user: prefill again");
    }
    report_ui(ui, state, &run);
    ui.separator();
    ui.columns(2, |cols| {
        candidates_ui(&mut cols[0], state, &run);
        ranked_ui(&mut cols[1], state, &run);
    });
}

fn settings_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let r = &mut state.ranking;
    ui.horizontal(|ui| {
        ui.label("candidates:");
        ui.radio_value(&mut r.source, SourceKind::Retrieval, "retrieval top-K");
        ui.radio_value(&mut r.source, SourceKind::Random, "random");
        ui.radio_value(&mut r.source, SourceKind::Typed, "typed ids");
        match r.source {
            SourceKind::Typed => {
                ui.add(
                    egui::TextEdit::singleline(&mut r.typed)
                        .hint_text("e.g. 50, 181, 1")
                        .desired_width(180.0),
                );
            }
            SourceKind::Random => {
                let l = ui.label("count");
                ui.add(egui::DragValue::new(&mut r.count).range(1..=200))
                    .labelled_by(l.id);
                let l = ui.label("seed");
                ui.add(egui::DragValue::new(&mut r.seed)).labelled_by(l.id);
            }
            SourceKind::Retrieval => {
                let l = ui.label("count");
                ui.add(egui::DragValue::new(&mut r.count).range(1..=200))
                    .labelled_by(l.id);
            }
        }
    });
    ui.horizontal(|ui| {
        let l = ui.label("micro-batch");
        ui.add(egui::DragValue::new(&mut state.ranking.microbatch).range(1..=64))
            .labelled_by(l.id);
        if ui.button("Prefill").clicked() {
            state.start_ranking();
        }
        let can_step = state
            .ranking
            .run
            .as_ref()
            .is_some_and(|r| !r.is_done() && r.prefill.is_some());
        if ui
            .add_enabled(can_step, egui::Button::new("Step"))
            .clicked()
        {
            state.commands.push(Command::RankStep);
        }
        if ui
            .add_enabled(can_step, egui::Button::new("Run all"))
            .clicked()
        {
            state.commands.push(Command::RankRunAll);
        }
    });
}

fn report_ui(ui: &mut egui::Ui, state: &AppState, run: &RankingRun) {
    let Some(p) = &run.prefill else { return };
    let ms = |v: f64| {
        if state.show_timings {
            format!("{v:.2} ms")
        } else {
            "- ms".into()
        }
    };
    ui.label(format!(
        "prefill: {} history rows x {} layers cached ({:.1} KiB) in {}",
        p.history_len,
        p.layers,
        p.cache_bytes as f64 / 1024.0,
        ms(p.elapsed_ms)
    ));
    ui.weak(&p.scoring);
    ui.label(format!(
        "{} / {} candidates scored in {} steps{}",
        run.scored(),
        run.candidates.len(),
        run.steps.len(),
        if run.is_done() { " - done" } else { "" }
    ));
    if !run.steps.is_empty() {
        egui::Grid::new("ranking-steps")
            .striped(true)
            .show(ui, |ui| {
                ui.strong("step");
                ui.strong("candidates");
                ui.strong("cache rows reused");
                ui.strong("time");
                ui.end_row();
                for s in run.steps.iter().rev().take(4) {
                    ui.monospace(s.step.to_string());
                    ui.monospace(format!("{}..{}", s.first, s.first + s.scores.len()));
                    ui.monospace(format!("{} (no recompute)", s.cache_rows_reused));
                    ui.monospace(ms(s.elapsed_ms));
                    ui.end_row();
                }
            });
        if state.show_timings && run.steps.len() > 1 {
            let bars = run
                .steps
                .iter()
                .map(|s| Bar::new(s.step as f64, s.elapsed_ms))
                .collect();
            Plot::new("ranking-step-times")
                .height(90.0)
                .y_axis_label("ms")
                .show(ui, |plot| {
                    plot.bar_chart(BarChart::new("time per step", bars))
                });
        }
    }
}

fn candidates_ui(ui: &mut egui::Ui, state: &AppState, run: &RankingRun) {
    ui.strong("candidates in list order");
    let last = run.steps.last().map(|s| s.first..s.first + s.scores.len());
    egui::ScrollArea::vertical()
        .id_salt("rank-candidates")
        .show(ui, |ui| {
            egui::Grid::new("rank-candidates-grid")
                .striped(true)
                .show(ui, |ui| {
                    for (c, &item) in run.candidates.iter().enumerate() {
                        ui.monospace(format!("{c:>3}"));
                        ui.label(truncate(&state.title(item), 30));
                        let fresh = last.as_ref().is_some_and(|r| r.contains(&c));
                        match run.scores[c] {
                            Some(s) if fresh => {
                                ui.colored_label(egui::Color32::LIGHT_GREEN, format!("{s:.4}  new"))
                            }
                            Some(s) => ui.monospace(format!("{s:.4}")),
                            None => ui.weak("..."),
                        };
                        ui.end_row();
                    }
                });
        });
}

fn ranked_ui(ui: &mut egui::Ui, state: &AppState, run: &RankingRun) {
    ui.strong(if run.is_done() {
        "final ranking"
    } else {
        "ranking so far"
    });
    egui::ScrollArea::vertical()
        .id_salt("rank-ranked")
        .show(ui, |ui| {
            egui::Grid::new("rank-ranked-grid")
                .striped(true)
                .show(ui, |ui| {
                    for (rank, &c) in run
                        .order()
                        .iter()
                        .filter(|&&c| run.scores[c].is_some())
                        .enumerate()
                    {
                        ui.monospace(format!("{:>3}", rank + 1));
                        ui.label(truncate(&state.title(run.candidates[c]), 30));
                        ui.monospace(format!("{:.4}", run.scores[c].unwrap_or(f32::NAN)));
                        ui.end_row();
                    }
                });
        });
}
