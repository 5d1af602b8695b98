//! Attention maps: per layer and head a `[T, T]` heatmap of `a_ij` (a viridis texture), a legend,
//! a hover readout with the relative bias split into its position and time parts, and the items a
//! clicked query row attends to.

use crate::analysis::UserAnalysis;
use crate::colormap::{MASKED, ValueRange, viridis};
use crate::state::AppState;
use crate::timefmt;
use egui::{Color32, Pos2, Rect, Sense, Stroke, Vec2, pos2, vec2};
use hstu_runtime::reference::ops::time_bucket;

/// How many attended items the row list shows.
const ROW_TOP: usize = 12;

pub fn attention_ui(ui: &mut egui::Ui, state: &mut AppState) {
    let Some(a) = state.current_analysis() else {
        ui.label(if state.selected_user.is_some() {
            "computing attention..."
        } else {
            "select a user"
        });
        return;
    };
    selectors_ui(ui, state, &a);
    let (layer, head) = (state.attention.layer, state.attention.head);
    let Some(texture) = state
        .attention
        .textures
        .get(layer)
        .and_then(|l| l.get(head))
        .cloned()
    else {
        return;
    };
    let map = &a.layers[layer].heads[head];
    let t = a.len();
    ui.horizontal_top(|ui| {
        let side = (ui.available_width() - 380.0)
            .min(ui.available_height() - 24.0)
            .max(160.0);
        let (rect, response) = ui.allocate_exact_size(Vec2::splat(side), Sense::click());
        let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
        ui.painter().image(texture.id(), rect, uv, Color32::WHITE);
        state.attention.heatmap_rect = Some(rect);
        let cell = |p: Pos2| {
            let f = (p - rect.min) / side * t as f32;
            ((f.y as usize).min(t - 1), (f.x as usize).min(t - 1))
        };
        state.attention.hovered = response.hover_pos().map(cell);
        if response.clicked()
            && let Some(p) = response.interact_pointer_pos()
        {
            state.attention.selected_row = Some(cell(p).0);
        }
        if let Some(row) = state.attention.selected_row.filter(|&r| r < t) {
            let h = side / t as f32;
            let band = Rect::from_min_size(
                pos2(rect.min.x, rect.min.y + row as f32 * h),
                vec2(side, h.max(1.0)),
            );
            ui.painter().rect_stroke(
                band,
                0.0,
                Stroke::new(1.5, Color32::WHITE),
                egui::StrokeKind::Outside,
            );
        }
        if let Some((i, j)) = state.attention.hovered {
            response.on_hover_ui_at_pointer(|ui| hover_ui(ui, state, &a, i, j));
        }
        legend_ui(ui, map.range, side);
        ui.vertical(|ui| row_ui(ui, state, &a));
    });
}

fn selectors_ui(ui: &mut egui::Ui, state: &mut AppState, a: &UserAnalysis) {
    let view = &mut state.attention;
    ui.horizontal(|ui| {
        egui::ComboBox::new("attention-layer", "Layer")
            .selected_text(format!("layer {}", view.layer))
            .show_ui(ui, |ui| {
                for l in 0..a.layers.len() {
                    ui.selectable_value(&mut view.layer, l, format!("layer {l}"));
                }
            });
        let heads = a.layers.first().map_or(0, |l| l.heads.len());
        egui::ComboBox::new("attention-head", "Head")
            .selected_text(format!("head {}", view.head))
            .show_ui(ui, |ui| {
                for h in 0..heads {
                    ui.selectable_value(&mut view.head, h, format!("head {h}"));
                }
            });
        ui.label(format!(
            "T = {} tokens (query i down, key j across)",
            a.len()
        ));
        if a.truncated_items > 0 {
            ui.weak(format!(
                "{} older items outside the window",
                a.truncated_items
            ));
        }
    });
}

/// A vertical viridis bar from `range.max` (top) to `range.min` (bottom).
fn legend_ui(ui: &mut egui::Ui, range: ValueRange, height: f32) {
    let (rect, _) = ui.allocate_exact_size(vec2(86.0, height), Sense::hover());
    let bar = Rect::from_min_size(rect.min, vec2(16.0, height));
    let steps = 64;
    for s in 0..steps {
        let y0 = bar.min.y + height * s as f32 / steps as f32;
        let seg = Rect::from_min_max(
            pos2(bar.min.x, y0),
            pos2(bar.max.x, y0 + height / steps as f32 + 0.5),
        );
        ui.painter()
            .rect_filled(seg, 0.0, viridis(1.0 - s as f32 / (steps - 1) as f32));
    }
    let font = egui::FontId::monospace(11.0);
    let color = ui.visuals().text_color();
    let x = bar.max.x + 4.0;
    let p = ui.painter();
    p.text(
        pos2(x, bar.min.y),
        egui::Align2::LEFT_TOP,
        format!("{:.2e}", range.max),
        font.clone(),
        color,
    );
    p.text(
        pos2(x, bar.center().y),
        egui::Align2::LEFT_CENTER,
        "a_ij",
        font.clone(),
        color,
    );
    p.text(
        pos2(x, bar.max.y),
        egui::Align2::LEFT_BOTTOM,
        format!("{:.2e}", range.min),
        font.clone(),
        color,
    );
    let masked = Rect::from_min_size(pos2(bar.min.x, bar.max.y + 4.0), vec2(16.0, 10.0));
    if masked.max.y < ui.max_rect().max.y {
        p.rect_filled(masked, 0.0, MASKED);
    }
}

fn hover_ui(ui: &mut egui::Ui, state: &AppState, a: &UserAnalysis, i: usize, j: usize) {
    let t = a.len();
    let item = |p: usize| {
        format!(
            "{} · {}",
            state.title(a.seq.items[p]),
            timefmt::date_time(a.seq.timestamps[p])
        )
    };
    ui.label(format!("query i = {i}: {}", item(i)));
    ui.label(format!("key   j = {j}: {}", item(j)));
    if j > i {
        ui.weak("masked: a query never attends to a later key");
        return;
    }
    let layer = &a.layers[state.attention.layer];
    let v = layer.heads[state.attention.head].values[i * t + j];
    let (pos, time) = (layer.pos_bias[i * t + j], layer.time_bias[i * t + j]);
    ui.monospace(format!("a_ij = silu(s_ij)/N = {v:.4e}"));
    ui.monospace(format!(
        "rab  = {:+.4} = position {pos:+.4} + time {time:+.4}",
        pos + time
    ));
    let dt = a.time_gap_secs(i, j);
    let bucket = state
        .model
        .as_ref()
        .map(|m| time_bucket(dt, m.config.time_bucket_divisor, m.config.num_time_buckets));
    ui.weak(format!(
        "position part: pos_w[N-1+j-i], j-i = {}; time part: ts_w[bucket], t_next(i)-t_j = {}{}",
        j as i64 - i as i64,
        timefmt::span(dt),
        bucket.map_or(String::new(), |b| format!(", bucket {b}"))
    ));
}

/// What the selected query row attends to, strongest first.
fn row_ui(ui: &mut egui::Ui, state: &AppState, a: &UserAnalysis) {
    let t = a.len();
    let Some(i) = state.attention.selected_row.filter(|&r| r < t) else {
        ui.label("Click a row of the map to list what that position attends to.");
        return;
    };
    ui.strong(format!("position {i}: {}", state.title(a.seq.items[i])));
    ui.weak(format!(
        "attends to {} history items (strongest first):",
        i + 1
    ));
    let values =
        &a.layers[state.attention.layer].heads[state.attention.head].values[i * t..i * t + i + 1];
    let mut order: Vec<usize> = (0..=i).collect();
    order.sort_by(|&x, &y| values[y].total_cmp(&values[x]).then(x.cmp(&y)));
    let max = values.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
    egui::Grid::new("attention-row")
        .striped(true)
        .show(ui, |ui| {
            for &j in order.iter().take(ROW_TOP) {
                ui.monospace(format!("{j:>3}"));
                ui.add(egui::ProgressBar::new((values[j] / max).max(0.0)).desired_width(60.0));
                ui.monospace(format!("{:.2e}", values[j]));
                ui.label(truncate(&state.title(a.seq.items[j]), 34));
                ui.end_row();
            }
        });
}

/// At most `n` characters, with an ellipsis when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n - 1).collect::<String>())
    }
}
