//! The user picker: a summary of the data set, a search field and the matching users.

use crate::dataset::DataOrigin;
use crate::state::AppState;

pub fn users_ui(ui: &mut egui::Ui, state: &mut AppState) {
    ui.heading("Users");
    let Some(data) = state.data.clone() else {
        ui.label("loading data...");
        return;
    };
    let file = data
        .path
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    match &data.origin {
        DataOrigin::Sequences => ui.label(format!("{file}: sequences")),
        DataOrigin::Ratings => ui.label(format!("{file}: ratings, last item held out")),
        DataOrigin::Synthetic { reason } => ui
            .colored_label(super::WARN, "synthetic users (data file not readable)")
            .on_hover_text(reason.as_str()),
    };
    ui.label(format!(
        "{} users · {} interactions{}",
        data.users.len(),
        data.interactions,
        if data.titles.is_some() {
            " · titles"
        } else {
            ""
        }
    ));
    if data.skipped_users > 0 {
        ui.weak(format!(
            "{} users skipped (too short / ids outside the model)",
            data.skipped_users
        ));
    }
    ui.add(
        egui::TextEdit::singleline(&mut state.user_query)
            .hint_text("search id or title")
            .desired_width(f32::INFINITY),
    );
    let hits = state.filtered_users().to_vec();
    ui.weak(format!("{} match", hits.len()));
    let mut clicked = None;
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show_rows(ui, row_height, hits.len(), |ui, rows| {
            for &index in &hits[rows] {
                let u = &data.users[index];
                let selected = state.selected_user == Some(index);
                let label = format!("user {} · {} items", u.user_id, u.items.len());
                if ui.selectable_label(selected, label).clicked() {
                    clicked = Some(index);
                }
            }
        });
    if let Some(index) = clicked {
        state.select_user(index);
    }
}
