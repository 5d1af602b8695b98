//! The sources bar (model / data paths, drag-and-drop), the tab bar and the status bar.

use crate::state::{AppState, Command, Tab};
use std::path::PathBuf;

/// Path field and open buttons; dropping a file or a model directory on the window works too.
pub fn sources_ui(ui: &mut egui::Ui, state: &mut AppState) {
    ui.horizontal(|ui| {
        ui.label("Path:");
        let edit = egui::TextEdit::singleline(&mut state.path_input)
            .hint_text("a model directory, a sequences .jsonl or a MovieLens ratings file")
            .desired_width(ui.available_width() - 330.0);
        let response = ui.add(edit);
        let entered = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let path = PathBuf::from(state.path_input.trim());
        if ui.button("Open data").clicked() || entered {
            let mut sources = state.sources.clone();
            sources.data_path = path.clone();
            state.commands.push(Command::Open(sources));
        }
        if ui.button("Open model").clicked() {
            let mut sources = state.sources.clone();
            sources.model_dir = path;
            state.commands.push(Command::Open(sources));
        }
        if ui
            .button("Bundled")
            .on_hover_text("the bundled model and sample data")
            .clicked()
        {
            state
                .commands
                .push(Command::Open(crate::Sources::bundled()));
        }
    });
    ui.horizontal(|ui| {
        ui.weak(format!(
            "model {} · data {} · or drop a file / model directory on the window",
            state.sources.model_dir.display(),
            state.sources.data_path.display()
        ));
    });
}

/// The view tabs.
pub fn tabs_ui(ui: &mut egui::Ui, state: &mut AppState) {
    ui.horizontal(|ui| {
        for tab in Tab::ALL {
            ui.selectable_value(&mut state.tab, tab, tab.label());
        }
    });
}

/// Progress of the worker, the engine, the last message and the frame time.
pub fn status_ui(ui: &mut egui::Ui, state: &mut AppState) {
    ui.horizontal(|ui| {
        match &state.progress {
            Some(p) => {
                ui.add(egui::Spinner::new());
                ui.add(
                    egui::ProgressBar::new(p.fraction)
                        .desired_width(160.0)
                        .text(p.task.as_str()),
                );
            }
            None => {
                ui.label("idle");
            }
        }
        ui.separator();
        ui.label(format!("engine: {}", state.backend));
        if state.show_timings {
            ui.separator();
            ui.label(format!("frame {:.1} ms", state.frame_ms));
        }
        if let Some(last) = state.log.last() {
            ui.separator();
            ui.colored_label(super::WARN, last);
        }
    });
}
