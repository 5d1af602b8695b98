//! One snapshot per panel with the bundled model (PNG under tests/snapshots/), rendered by the
//! wgpu renderer (lavapipe in CI). Update with `UPDATE_SNAPSHOTS=1`.

mod common;

use common::{bundled, harness, settle, whole_app};
use egui_kittest::kittest::Queryable;
use hstu_explorer::panels;
use hstu_explorer::state::Tab;
use std::path::PathBuf;

const PANEL: [f32; 2] = [1000.0, 640.0];

#[test]
fn model_card_snapshot() {
    let Some(mut h) = harness(
        "model_card_snapshot",
        bundled(),
        [1000.0, 900.0],
        panels::model_card::model_card_ui,
    ) else {
        return;
    };
    h.snapshot("model_card");
}

#[test]
fn users_snapshot() {
    let Some(mut h) = harness(
        "users_snapshot",
        bundled(),
        [280.0, 520.0],
        panels::users::users_ui,
    ) else {
        return;
    };
    h.snapshot("users");
}

#[test]
fn timeline_snapshot() {
    let Some(mut h) = harness(
        "timeline_snapshot",
        bundled(),
        PANEL,
        panels::timeline::timeline_ui,
    ) else {
        return;
    };
    h.snapshot("timeline");
}

#[test]
fn attention_snapshot() {
    let Some(mut h) = harness(
        "attention_snapshot",
        bundled(),
        PANEL,
        panels::attention::attention_ui,
    ) else {
        return;
    };
    let rect = h
        .state()
        .state
        .attention
        .heatmap_rect
        .expect("heatmap drawn");
    let t = h.state().state.current_analysis().expect("analysis").len() as f32;
    let at = |i: f32, j: f32| rect.min + egui::vec2((j + 0.5) / t, (i + 0.5) / t) * rect.width();
    h.hover_at(at(t - 1.0, 0.0));
    h.event(egui::Event::PointerButton {
        pos: at(t - 1.0, 0.0),
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: Default::default(),
    });
    h.event(egui::Event::PointerButton {
        pos: at(t - 1.0, 0.0),
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: Default::default(),
    });
    h.run_steps(2);
    h.hover_at(at(t - 3.0, t - 9.0));
    h.run_steps(6);
    assert_eq!(h.state().state.attention.selected_row, Some(t as usize - 1));
    h.snapshot("attention");
}

#[test]
fn retrieval_snapshot() {
    let Some(mut h) = harness(
        "retrieval_snapshot",
        bundled(),
        PANEL,
        panels::retrieval::retrieval_ui,
    ) else {
        return;
    };
    h.snapshot("retrieval");
}

#[test]
fn ranking_snapshot() {
    let Some(mut h) = harness(
        "ranking_snapshot",
        bundled(),
        PANEL,
        panels::ranking::ranking_ui,
    ) else {
        return;
    };
    h.get_by_label("Prefill").click();
    settle(&mut h);
    for _ in 0..2 {
        h.get_by_label("Step").click();
        settle(&mut h);
    }
    h.snapshot("ranking");
}

#[test]
fn training_snapshot() {
    let mut sources = bundled();
    sources.model_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model-with-metrics");
    let Some(mut h) = harness(
        "training_snapshot",
        sources,
        PANEL,
        panels::training::training_ui,
    ) else {
        return;
    };
    h.snapshot("training");
}

/// The whole window on each main view (copied to docs/screenshots/ for the README).
#[test]
fn app_views_snapshots() {
    let Some(mut h) = harness("app_views_snapshots", bundled(), [1280.0, 800.0], whole_app) else {
        return;
    };
    for tab in [Tab::Model, Tab::Timeline, Tab::Attention, Tab::Retrieval] {
        h.state_mut().state.tab = tab;
        settle(&mut h);
        h.snapshot(format!(
            "app_{}",
            tab.label().to_lowercase().replace(' ', "_")
        ));
    }
    h.state_mut().state.tab = Tab::Ranking;
    settle(&mut h);
    h.get_by_label("Prefill").click();
    settle(&mut h);
    h.get_by_label("Run all").click();
    settle(&mut h);
    h.snapshot("app_ranking");
}
