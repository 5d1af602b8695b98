//! Shared pieces of the explorer's GPU tests: the adapter probe (skip with a reason), a harness
//! around one panel of a loaded [`ExplorerApp`], and waiting for the worker.

#![allow(dead_code)]

use egui_kittest::Harness;
use hstu_explorer::state::AppState;
use hstu_explorer::{ExplorerApp, Sources};
use std::time::{Duration, Instant};

/// How long the worker may take to load or compute before a test fails.
const WORKER_TIMEOUT: Duration = Duration::from_secs(180);

/// True when wgpu finds an adapter to render with; otherwise prints why `test` is skipped.
pub fn adapter_or_skip(test: &str) -> bool {
    let instance = eframe::wgpu::Instance::new(
        eframe::wgpu::InstanceDescriptor::new_without_display_handle_from_env(),
    );
    let adapters = pollster::block_on(instance.enumerate_adapters(eframe::wgpu::Backends::all()));
    if let Some(a) = adapters.first() {
        let info = a.get_info();
        eprintln!(
            "{test}: rendering on {} ({:?}, {:?})",
            info.name, info.backend, info.device_type
        );
        true
    } else {
        println!(
            "SKIPPED {test}: no wgpu adapter found (install lavapipe: apt-get install -y \
             mesa-vulkan-drivers; WGPU_BACKEND={:?})",
            std::env::var("WGPU_BACKEND").unwrap_or_default()
        );
        false
    }
}

/// The bundled sources (model dirs and sample data, or their documented fallbacks), as paths
/// relative to the crate (tests run in `app/`) so that snapshots do not depend on the checkout.
pub fn bundled() -> Sources {
    let assets = std::path::Path::new("../assets");
    Sources {
        model_dir: assets.join("ml-100k-hstu"),
        ranking_dir: assets.join("ml-100k-hstu-ranking"),
        data_path: assets.join("sample_sequences.jsonl"),
    }
}

/// A harness of `size` that draws `panel` inside a central panel of an app opened on `sources`;
/// `None` (after printing why) when there is no adapter.
pub fn harness(
    test: &str,
    sources: Sources,
    size: [f32; 2],
    panel: fn(&mut egui::Ui, &mut AppState),
) -> Option<Harness<'static, ExplorerApp>> {
    if !adapter_or_skip(test) {
        return None;
    }
    let mut app = ExplorerApp::new(sources, None);
    app.state.show_timings = false;
    let mut h = Harness::builder().with_size(size).wgpu().build_ui_state(
        move |ui, app: &mut ExplorerApp| {
            app.frame_with(ui, |ui, state| {
                egui::CentralPanel::default().show(ui, |ui| panel(ui, state));
            })
        },
        app,
    );
    settle(&mut h);
    Some(h)
}

/// The whole window (top bar, users, status, the current tab).
pub fn whole_app(ui: &mut egui::Ui, state: &mut AppState) {
    hstu_explorer::app::draw(ui, state);
}

/// Step until the worker is idle and every event has been applied, then a few frames more.
pub fn settle(h: &mut Harness<'static, ExplorerApp>) {
    let start = Instant::now();
    loop {
        h.step();
        if h.state().is_idle() {
            h.step();
            if h.state().is_idle() {
                break;
            }
        }
        assert!(
            start.elapsed() < WORKER_TIMEOUT,
            "worker still busy after {WORKER_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run_steps(4);
}
