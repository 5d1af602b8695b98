//! The eframe shell: forwards panel commands to the worker, applies worker events to the state,
//! uploads heatmap images as textures, and lays the panels out.

use crate::backend::SharedDevice;
use crate::panels;
use crate::sources::Sources;
use crate::state::{AppState, Command, Progress, RankingRun, Tab};
use crate::worker::{Event, Worker};
use egui::TextureOptions;
use std::time::Instant;

/// The explorer application.
pub struct ExplorerApp {
    pub state: AppState,
    worker: Worker,
}

impl ExplorerApp {
    /// Start the worker and ask it to open `sources`.
    pub fn new(sources: Sources, device: Option<SharedDevice>) -> ExplorerApp {
        let worker = Worker::spawn(device);
        let mut state = AppState::new(sources.clone());
        state.commands.push(Command::Open(sources));
        let mut app = ExplorerApp { state, worker };
        app.flush_commands();
        app
    }

    /// From eframe's creation context: shares eframe's wgpu device with the worker.
    pub fn from_creation_context(cc: &eframe::CreationContext<'_>, sources: Sources) -> Self {
        let device = cc.wgpu_render_state.as_ref().map(|rs| SharedDevice {
            device: rs.device.clone(),
            queue: rs.queue.clone(),
            adapter: rs.adapter.get_info().name,
            info: rs.adapter.get_info(),
        });
        let app = Self::new(sources, device);
        app.worker.set_repaint(&cc.egui_ctx);
        app
    }

    /// The worker has nothing queued and every event and command has been applied.
    pub fn is_idle(&self) -> bool {
        self.worker.is_idle() && self.state.commands.is_empty()
    }

    fn flush_commands(&mut self) {
        for cmd in self.state.commands.drain(..) {
            self.worker.send(cmd);
        }
    }

    /// Apply the worker's events (run at the start of every frame).
    pub fn process_events(&mut self, ctx: &egui::Context) {
        self.worker.set_repaint(ctx);
        for event in self.worker.drain() {
            self.apply(ctx, event);
        }
        self.flush_commands();
    }

    fn apply(&mut self, ctx: &egui::Context, event: Event) {
        let s = &mut self.state;
        match event {
            Event::Progress { task, fraction } => {
                s.progress = (fraction < 1.0).then_some(Progress { task, fraction });
            }
            Event::Backend(name) => s.backend = name,
            Event::Models { retrieval, ranking } => {
                s.model = Some(*retrieval);
                s.ranking_model = Some(*ranking);
            }
            Event::Data(data, sources) => {
                s.reset_user_views();
                s.path_input = sources.data_path.display().to_string();
                s.sources = sources;
                let any = !data.users.is_empty();
                s.data = Some(data);
                if any {
                    s.select_user(0);
                }
            }
            Event::Training(log, note) => {
                s.training = log;
                s.training_note = note;
            }
            Event::Analysis(a) => {
                let textures = a
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(l, layer)| {
                        layer
                            .heads
                            .iter()
                            .enumerate()
                            .map(|(h, head)| {
                                let name = format!("attention-u{}-l{l}-h{h}", a.user_index);
                                ctx.load_texture(name, head.image.clone(), TextureOptions::NEAREST)
                            })
                            .collect()
                    })
                    .collect();
                let view = &mut s.attention;
                view.textures = textures;
                view.layer = view.layer.min(a.layers.len().saturating_sub(1));
                let heads = a.layers.first().map_or(1, |l| l.heads.len());
                view.head = view.head.min(heads.saturating_sub(1));
                s.analysis = Some(a);
            }
            Event::RankStarted {
                user,
                candidates,
                prefill,
            } => {
                s.ranking.run = Some(RankingRun {
                    user,
                    scores: vec![None; candidates.len()],
                    candidates,
                    prefill: Some(prefill),
                    steps: Vec::new(),
                });
            }
            Event::RankStep(step) => {
                if let Some(run) = s.ranking.run.as_mut() {
                    run.apply(step);
                }
            }
            Event::Error(e) => {
                s.progress = None;
                s.push_log(format!("error: {e}"));
            }
        }
    }

    /// Files dropped on the window become an open request (decided on the worker).
    fn take_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<_> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for path in dropped {
            self.state.commands.push(Command::OpenPath(path));
        }
    }

    /// One frame of the whole window: events in, panels drawn, commands out.
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) {
        self.frame_with(ui, draw);
    }

    /// One frame that draws only `panel` (the snapshot tests show one panel at a time).
    pub fn frame_with(
        &mut self,
        ui: &mut egui::Ui,
        panel: impl FnOnce(&mut egui::Ui, &mut AppState),
    ) {
        let start = Instant::now();
        let ctx = ui.ctx().clone();
        self.process_events(&ctx);
        self.take_dropped_files(&ctx);
        panel(ui, &mut self.state);
        self.flush_commands();
        if self.state.progress.is_some() {
            ctx.request_repaint();
        }
        self.state.frame_ms = start.elapsed().as_secs_f64() * 1e3;
    }
}

/// The layout: sources and tabs on top, status at the bottom, users on the left, a view in the middle.
pub fn draw(ui: &mut egui::Ui, state: &mut AppState) {
    egui::Panel::top("sources").show(ui, |ui| {
        panels::sources::sources_ui(ui, state);
        panels::sources::tabs_ui(ui, state);
    });
    egui::Panel::bottom("status").show(ui, |ui| panels::sources::status_ui(ui, state));
    egui::Panel::left("users")
        .min_size(200.0)
        .default_size(240.0)
        .show(ui, |ui| panels::users::users_ui(ui, state));
    egui::CentralPanel::default().show(ui, |ui| match state.tab {
        Tab::Model => panels::model_card::model_card_ui(ui, state),
        Tab::Timeline => panels::timeline::timeline_ui(ui, state),
        Tab::Attention => panels::attention::attention_ui(ui, state),
        Tab::Retrieval => panels::retrieval::retrieval_ui(ui, state),
        Tab::Ranking => panels::ranking::ranking_ui(ui, state),
        Tab::Training => panels::training::training_ui(ui, state),
    });
}

impl eframe::App for ExplorerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame_ui(ui);
    }
}
