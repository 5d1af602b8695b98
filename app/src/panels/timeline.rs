//! The selected user's history on a real time axis (zoom: wheel / ctrl+wheel, pan: drag,
//! reset: double click): one point per interaction at its rating, the held-out target at `t_q`.

use crate::colormap::viridis;
use crate::state::AppState;
use crate::timefmt;
use egui_plot::{HoverPosition, Legend, MarkerShape, Plot, Points, VLine};

/// The y of an interaction: its rating, or 1 when the data has none.
fn rating_y(ratings: Option<&Vec<u8>>, p: usize) -> f64 {
    ratings
        .and_then(|r| r.get(p))
        .map_or(1.0, |&r| f64::from(r.max(1)))
}

pub fn timeline_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let (Some(data), Some(index)) = (state.data.clone(), state.selected_user) else {
        ui.label("select a user");
        return;
    };
    let user = &data.users[index];
    let window = state
        .model
        .as_ref()
        .map_or(user.items.len(), |m| m.config.max_sequence_len);
    let first_in_window = user.items.len().saturating_sub(window);
    let ratings = user.ratings.as_ref();
    ui.horizontal(|ui| {
        ui.strong(format!("user {}", user.user_id));
        ui.label(format!(
            "{} interactions, {} to {}",
            user.items.len(),
            timefmt::date(user.timestamps[0]),
            timefmt::date(*user.timestamps.last().unwrap_or(&0))
        ));
        if first_in_window > 0 {
            ui.weak(format!("(model window: the last {window}; older in grey)"));
        }
        if let Some(t) = user.target {
            ui.colored_label(super::TARGET, format!("target: {}", state.title(t)));
        }
    });
    let point = |p: usize| [user.timestamps[p] as f64, rating_y(ratings, p)];
    let older: Vec<[f64; 2]> = (0..first_in_window).map(point).collect();
    let by_rating: Vec<(u8, Vec<[f64; 2]>)> = (1..=5u8)
        .map(|r| {
            let pts = (first_in_window..user.items.len())
                .filter(|&p| rating_y(ratings, p) as u8 == r)
                .map(point)
                .collect();
            (r, pts)
        })
        .collect();
    let tq = user.query_time_secs() as f64;
    let title_of = |name: &str, idx: usize| -> Option<String> {
        let p = if name == "older" {
            idx
        } else if let Some(r) = name.strip_prefix("rating ") {
            let r: u8 = r.parse().ok()?;
            (first_in_window..user.items.len())
                .filter(|&p| rating_y(ratings, p) as u8 == r)
                .nth(idx)?
        } else {
            return user.target.map(|t| {
                format!(
                    "target {}\n{}",
                    state.title(t),
                    timefmt::date_time(tq as i64)
                )
            });
        };
        Some(format!(
            "#{p}: {}\n{}{}",
            state.title(user.items[p]),
            timefmt::date_time(user.timestamps[p]),
            ratings
                .and_then(|r| r.get(p))
                .map_or(String::new(), |r| format!("\nrating {r}"))
        ))
    };
    Plot::new(("timeline", index))
        .legend(Legend::default())
        .x_axis_formatter(|mark, _| timefmt::date(mark.value as i64))
        .y_axis_label(if ratings.is_some() {
            "rating"
        } else {
            "interaction"
        })
        .include_y(0.5)
        .include_y(5.5)
        .label_formatter(|pos| match pos {
            HoverPosition::NearDataPoint {
                plot_name, index, ..
            } => title_of(plot_name, *index),
            HoverPosition::Elsewhere { .. } => None,
        })
        .show(ui, |plot| {
            if !older.is_empty() {
                plot.add(
                    Points::new("older", older)
                        .radius(2.5)
                        .color(egui::Color32::GRAY),
                );
            }
            for (r, pts) in by_rating {
                if !pts.is_empty() {
                    let color = viridis(0.2 + 0.8 * (f32::from(r) - 1.0) / 4.0);
                    plot.add(
                        Points::new(format!("rating {r}"), pts)
                            .radius(3.5)
                            .color(color),
                    );
                }
            }
            plot.add(VLine::new("query time", tq).color(super::TARGET));
            if user.target.is_some() {
                let y = 3.0;
                plot.add(
                    Points::new("target", vec![[tq, y]])
                        .shape(MarkerShape::Diamond)
                        .radius(7.0)
                        .color(super::TARGET),
                );
            }
        });
}
