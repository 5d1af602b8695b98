//! What the panels read and edit. Panels never run work: they push [`Command`]s that the app
//! shell hands to the worker, and the worker's [`crate::worker::Event`]s land back here.

use crate::analysis::UserAnalysis;
use crate::dataset::{DataSet, search_users};
use crate::metrics::TrainingLog;
use crate::model_info::ModelCard;
use crate::ranking::{CandidateSource, PrefillReport, StepReport, ranked_order};
use crate::sources::Sources;
use egui::TextureHandle;
use std::path::PathBuf;
use std::sync::Arc;

/// The views of the central area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Model,
    Timeline,
    Attention,
    Retrieval,
    Ranking,
    Training,
}

impl Tab {
    pub const ALL: [Tab; 6] = [
        Tab::Model,
        Tab::Timeline,
        Tab::Attention,
        Tab::Retrieval,
        Tab::Ranking,
        Tab::Training,
    ];

    /// The tab whose label starts with `name` (case-insensitive), e.g. `attention`, `model`.
    pub fn from_name(name: &str) -> Option<Tab> {
        let name = name.to_lowercase();
        Tab::ALL
            .into_iter()
            .find(|t| t.label().to_lowercase().starts_with(&name))
    }

    pub fn label(self) -> &'static str {
        match self {
            Tab::Model => "Model card",
            Tab::Timeline => "Timeline",
            Tab::Attention => "Attention",
            Tab::Retrieval => "Retrieval",
            Tab::Ranking => "Ranking",
            Tab::Training => "Training",
        }
    }
}

/// A request from the UI to the worker.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Load these model/ranking/data sources (replacing the session).
    Open(Sources),
    /// A dropped or typed path: a model directory or a data file.
    OpenPath(PathBuf),
    /// Analyse user `index` of the data set, retrieval top-`k`.
    Analyze { user: usize, k: usize },
    /// Prefill the ranking model for `user` with candidates from `source`.
    RankStart {
        user: usize,
        source: CandidateSource,
        count: usize,
        microbatch: usize,
    },
    /// Score the next micro-batch.
    RankStep,
    /// Score every remaining micro-batch, one event per step.
    RankRunAll,
}

/// Which candidate source the ranking panel has selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Retrieval,
    Random,
    Typed,
}

/// The ranking run as the UI sees it.
#[derive(Clone, Debug, Default)]
pub struct RankingRun {
    pub user: usize,
    pub candidates: Vec<u32>,
    pub scores: Vec<Option<f32>>,
    pub prefill: Option<PrefillReport>,
    pub steps: Vec<StepReport>,
}

impl RankingRun {
    pub fn scored(&self) -> usize {
        self.scores.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_done(&self) -> bool {
        !self.candidates.is_empty() && self.scored() == self.candidates.len()
    }

    /// Apply one step's scores.
    pub fn apply(&mut self, step: StepReport) {
        for (k, &s) in step.scores.iter().enumerate() {
            if let Some(slot) = self.scores.get_mut(step.first + k) {
                *slot = Some(s);
            }
        }
        self.steps.push(step);
    }

    /// Candidate indices by score, best first.
    pub fn order(&self) -> Vec<usize> {
        ranked_order(&self.scores)
    }
}

/// Settings and results of the ranking panel.
#[derive(Clone, Debug)]
pub struct RankingView {
    pub source: SourceKind,
    pub typed: String,
    pub count: usize,
    pub microbatch: usize,
    pub seed: u64,
    pub run: Option<RankingRun>,
}

/// Settings of the attention panel.
#[derive(Default)]
pub struct AttentionView {
    pub layer: usize,
    pub head: usize,
    /// The query row whose attention is listed (clicked).
    pub selected_row: Option<usize>,
    /// `(i, j)` under the pointer.
    pub hovered: Option<(usize, usize)>,
    /// Where the heatmap was drawn last frame (for tests and hit-testing).
    pub heatmap_rect: Option<egui::Rect>,
    /// `textures[layer][head]` of the current analysis.
    pub textures: Vec<Vec<TextureHandle>>,
}

/// A task the worker is running.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub task: String,
    pub fraction: f32,
}

/// The whole UI state.
pub struct AppState {
    pub sources: Sources,
    /// The path text field of the sources bar.
    pub path_input: String,
    pub tab: Tab,
    pub model: Option<ModelCard>,
    pub ranking_model: Option<ModelCard>,
    pub data: Option<Arc<DataSet>>,
    pub training: Option<TrainingLog>,
    pub training_note: String,
    pub user_query: String,
    /// `(query, matching user indices)` of the last search.
    pub user_filter: (String, Vec<usize>),
    pub selected_user: Option<usize>,
    pub retrieval_k: usize,
    pub analysis: Option<Arc<UserAnalysis>>,
    pub attention: AttentionView,
    pub ranking: RankingView,
    pub progress: Option<Progress>,
    pub backend: String,
    /// Messages for the status bar, newest last.
    pub log: Vec<String>,
    /// Show measured times (off in snapshot tests, where they would differ run to run).
    pub show_timings: bool,
    /// Last frame's CPU time, for the status bar.
    pub frame_ms: f64,
    pub commands: Vec<Command>,
}

impl AppState {
    pub fn new(sources: Sources) -> AppState {
        AppState {
            path_input: sources.data_path.display().to_string(),
            sources,
            tab: Tab::Attention,
            model: None,
            ranking_model: None,
            data: None,
            training: None,
            training_note: String::new(),
            user_query: String::new(),
            user_filter: (String::from("\u{0}"), Vec::new()),
            selected_user: None,
            retrieval_k: 10,
            analysis: None,
            attention: AttentionView::default(),
            ranking: RankingView {
                source: SourceKind::Retrieval,
                typed: String::new(),
                count: 20,
                microbatch: 4,
                seed: 1,
                run: None,
            },
            progress: None,
            backend: String::new(),
            log: Vec::new(),
            show_timings: true,
            frame_ms: 0.0,
            commands: Vec::new(),
        }
    }

    /// Select user `index` and ask for its analysis.
    pub fn select_user(&mut self, index: usize) {
        self.selected_user = Some(index);
        self.attention.selected_row = None;
        self.attention.hovered = None;
        self.commands.push(Command::Analyze {
            user: index,
            k: self.retrieval_k,
        });
    }

    /// The analysis of the selected user, when it has arrived.
    pub fn current_analysis(&self) -> Option<Arc<UserAnalysis>> {
        self.analysis
            .clone()
            .filter(|a| Some(a.user_index) == self.selected_user)
    }

    /// Users matching the search field (recomputed only when the query changes).
    pub fn filtered_users(&mut self) -> &[usize] {
        if self.user_filter.0 != self.user_query {
            let hits = self
                .data
                .as_deref()
                .map(|d| search_users(d, &self.user_query))
                .unwrap_or_default();
            self.user_filter = (self.user_query.clone(), hits);
        }
        &self.user_filter.1
    }

    /// A title for `item` from the data set, or `#id`.
    pub fn title(&self, item: u32) -> String {
        crate::dataset::item_title(self.data.as_ref().and_then(|d| d.titles.as_ref()), item)
    }

    /// Queue the start of a ranking run with the panel's settings.
    pub fn start_ranking(&mut self) {
        let Some(user) = self.selected_user else {
            return;
        };
        let r = &self.ranking;
        let source = match r.source {
            SourceKind::Retrieval => CandidateSource::RetrievalTopK,
            SourceKind::Random => CandidateSource::Random { seed: r.seed },
            SourceKind::Typed => CandidateSource::Typed(r.typed.clone()),
        };
        let (count, microbatch) = (r.count, r.microbatch);
        self.ranking.run = None;
        self.commands.push(Command::RankStart {
            user,
            source,
            count,
            microbatch,
        });
    }

    /// Data changed: drop everything derived from the old users.
    pub fn reset_user_views(&mut self) {
        self.selected_user = None;
        self.analysis = None;
        self.attention = AttentionView::default();
        self.ranking.run = None;
        self.user_filter = (String::from("\u{0}"), Vec::new());
    }

    pub fn push_log(&mut self, msg: impl Into<String>) {
        self.log.push(msg.into());
        if self.log.len() > 50 {
            self.log.remove(0);
        }
    }
}
