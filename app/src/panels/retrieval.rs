//! Retrieval: the user's top-K items over the catalogue (history excluded) with their scores;
//! the held-out target is marked when it is hit, and its rank is shown either way.

use crate::state::{AppState, Command};

/// The K values offered.
pub const K_CHOICES: [usize; 4] = [10, 20, 50, 100];

pub fn retrieval_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let Some(a) = state.current_analysis() else {
        ui.label(if state.selected_user.is_some() {
            "retrieving..."
        } else {
            "select a user"
        });
        return;
    };
    let r = &a.retrieval;
    let target = state
        .data
        .as_ref()
        .and_then(|d| d.users.get(a.user_index))
        .and_then(|u| u.target);
    ui.horizontal(|ui| {
        ui.label("top K:");
        for k in K_CHOICES {
            if ui
                .selectable_label(state.retrieval_k == k, k.to_string())
                .clicked()
                && state.retrieval_k != k
            {
                state.retrieval_k = k;
                state.commands.push(Command::Analyze {
                    user: a.user_index,
                    k,
                });
            }
        }
        ui.separator();
        match (target, r.target_rank) {
            (Some(t), Some(rank)) => {
                let hit = rank <= r.k;
                let text = format!(
                    "target {} at rank {rank}{}",
                    state.title(t),
                    if hit {
                        format!(" - HIT@{}", r.k)
                    } else {
                        format!(" - miss@{}", r.k)
                    }
                );
                ui.colored_label(super::TARGET, text);
            }
            (Some(t), None) => {
                ui.weak(format!(
                    "target {} is in the history or outside the catalogue",
                    state.title(t)
                ));
            }
            (None, _) => {
                ui.weak("no held-out target for this user");
            }
        }
    });
    if r.k != state.retrieval_k {
        ui.weak("updating...");
    }
    let best = r
        .top
        .scores
        .first()
        .copied()
        .unwrap_or(1.0)
        .abs()
        .max(f32::MIN_POSITIVE);
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            egui::Grid::new("retrieval-table")
                .striped(true)
                .show(ui, |ui| {
                    ui.strong("rank");
                    ui.strong("item");
                    ui.strong("score");
                    ui.strong("");
                    ui.end_row();
                    for (rank, (&item, &score)) in r.top.items.iter().zip(&r.top.scores).enumerate()
                    {
                        let is_target = Some(item) == target;
                        ui.monospace(format!("{:>3}", rank + 1));
                        let title = state.title(item);
                        if is_target {
                            ui.colored_label(
                                super::TARGET,
                                format!("> {title}  (held-out target)"),
                            );
                        } else {
                            ui.label(title);
                        }
                        ui.monospace(format!("{score:+.4}"));
                        ui.add(
                            egui::ProgressBar::new((score / best).clamp(0.0, 1.0))
                                .desired_width(120.0),
                        );
                        ui.end_row();
                    }
                });
        });
}
