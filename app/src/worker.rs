//! The worker thread: owns the models and the data, reads files and runs inference; the UI talks
//! to it only through [`Command`]s in and [`Event`]s out, so a frame never waits on work.

use crate::analysis::{UserAnalysis, analyze_user, retrieval};
use crate::backend::{InferenceBackend, SharedDevice, select_backend};
use crate::dataset::DataSet;
use crate::metrics::TrainingLog;
use crate::model_info::{ModelCard, load_or_seed};
use crate::ranking::{
    CandidateSource, PrefillReport, RankSession, StepReport, parse_candidates, random_candidates,
};
use crate::sources::{Sources, is_model_dir};
use crate::state::Command;
use hstu_runtime::checkpoint::Model;
use hstu_runtime::reference::retrieval::normalized_items;
use hstu_runtime::tensor::Mat;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// What the worker reports.
pub enum Event {
    Progress {
        task: String,
        fraction: f32,
    },
    Backend(String),
    Models {
        retrieval: Box<ModelCard>,
        ranking: Box<ModelCard>,
    },
    Data(Arc<DataSet>, Sources),
    Training(Option<TrainingLog>, String),
    Analysis(Arc<UserAnalysis>),
    RankStarted {
        user: usize,
        candidates: Vec<u32>,
        prefill: PrefillReport,
    },
    RankStep(StepReport),
    Error(String),
}

/// The UI's handle on the worker.
pub struct Worker {
    jobs: Sender<Command>,
    events: Receiver<Event>,
    /// Commands sent and not yet finished (or dropped as superseded).
    pending: Arc<AtomicUsize>,
    repaint: Arc<Mutex<Option<egui::Context>>>,
}

impl Worker {
    /// Start the worker thread; `device` is eframe's wgpu device when there is one.
    pub fn spawn(device: Option<SharedDevice>) -> Worker {
        let (jobs, job_rx) = channel();
        let (event_tx, events) = channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let repaint: Arc<Mutex<Option<egui::Context>>> = Arc::default();
        let (p, r) = (pending.clone(), repaint.clone());
        std::thread::Builder::new()
            .name("hstu-explorer-worker".into())
            .spawn(move || {
                let (backend, note) = select_backend(device.as_ref());
                let mut core = Core {
                    backend,
                    out: Outbox {
                        tx: event_tx,
                        repaint: r,
                    },
                    session: None,
                    rank: None,
                };
                core.out.send(Event::Backend(note));
                run(job_rx, &mut core, &p);
            })
            .expect("spawning the worker thread");
        Worker {
            jobs,
            events,
            pending,
            repaint,
        }
    }

    /// The context to wake when an event arrives.
    pub fn set_repaint(&self, ctx: &egui::Context) {
        if let Ok(mut slot) = self.repaint.lock()
            && slot.is_none()
        {
            *slot = Some(ctx.clone());
        }
    }

    pub fn send(&self, cmd: Command) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.jobs.send(cmd).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Events that have arrived, oldest first.
    pub fn drain(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }

    /// No command is queued or running (events may still wait in [`Self::drain`]).
    pub fn is_idle(&self) -> bool {
        self.pending.load(Ordering::SeqCst) == 0
    }
}

struct Outbox {
    tx: Sender<Event>,
    repaint: Arc<Mutex<Option<egui::Context>>>,
}

impl Outbox {
    fn send(&self, e: Event) {
        let _ = self.tx.send(e);
        if let Ok(slot) = self.repaint.lock()
            && let Some(ctx) = slot.as_ref()
        {
            ctx.request_repaint();
        }
    }

    fn progress(&self, task: &str, fraction: f32) {
        self.send(Event::Progress {
            task: task.into(),
            fraction,
        });
    }
}

/// The loaded models and data.
struct Session {
    model: Model,
    ranking: Model,
    items_normed: Mat<f32>,
    data: Arc<DataSet>,
    sources: Sources,
}

struct Core {
    backend: Box<dyn InferenceBackend>,
    out: Outbox,
    session: Option<Session>,
    rank: Option<RankSession>,
}

fn run(jobs: Receiver<Command>, core: &mut Core, pending: &AtomicUsize) {
    let mut queue: VecDeque<Command> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match jobs.recv() {
                Ok(c) => queue.push_back(c),
                Err(_) => return,
            }
        }
        queue.extend(jobs.try_iter());
        let Some(cmd) = queue.pop_front() else {
            continue;
        };
        // A newer analysis request supersedes an older one: switching users quickly never queues.
        let superseded = matches!(cmd, Command::Analyze { .. })
            && queue.iter().any(|c| matches!(c, Command::Analyze { .. }));
        if !superseded {
            core.handle(cmd, pending);
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Core {
    fn handle(&mut self, cmd: Command, pending: &AtomicUsize) {
        let result = match cmd {
            Command::Open(sources) => self.open(sources),
            Command::OpenPath(path) => {
                let mut sources = self
                    .session
                    .as_ref()
                    .map_or_else(Sources::bundled, |s| s.sources.clone());
                if is_model_dir(&path) {
                    sources.model_dir = path;
                } else {
                    sources.data_path = path;
                }
                self.open(sources)
            }
            Command::Analyze { user, k } => self.analyze(user, k),
            Command::RankStart {
                user,
                source,
                count,
                microbatch,
            } => self.rank_start(user, source, count, microbatch),
            Command::RankStep => {
                self.rank_step();
                Ok(())
            }
            Command::RankRunAll => {
                // One event per step; stop early when the UI sends anything else.
                while self.rank_step() && pending.load(Ordering::SeqCst) <= 1 {}
                Ok(())
            }
        };
        if let Err(e) = result {
            self.out.send(Event::Error(e));
        }
    }

    fn open(&mut self, sources: Sources) -> Result<(), String> {
        self.out.progress("loading model", 0.0);
        let (model, origin) = load_or_seed(&sources.model_dir, false);
        let retrieval_card = ModelCard::new(&model, origin);
        self.out.progress("loading ranking model", 0.3);
        // No ranking directory: a trained retrieval model ranks by its retrieval score (as
        // `hstu rank` does); with no trained model at all, a seeded model with a ranking head.
        let (ranking, ranking_card) =
            if !sources.ranking_dir.is_dir() && !retrieval_card.is_seeded() {
                (model.clone(), retrieval_card.clone())
            } else {
                let (m, o) = load_or_seed(&sources.ranking_dir, true);
                let card = ModelCard::new(&m, o);
                (m, card)
            };
        self.out.send(Event::Models {
            retrieval: Box::new(retrieval_card),
            ranking: Box::new(ranking_card),
        });
        self.out.progress("loading data", 0.5);
        let data = Arc::new(DataSet::load_or_synthetic(
            &sources.data_path,
            &model.config,
        ));
        self.out.send(Event::Data(data.clone(), sources.clone()));
        self.out.progress("reading metrics.jsonl", 0.8);
        let metrics = std::fs::read_to_string(sources.metrics_path());
        let training = match metrics {
            Ok(text) => (Some(TrainingLog::parse(&text)), String::new()),
            Err(e) => (None, format!("{}: {e}", sources.metrics_path().display())),
        };
        self.out.send(Event::Training(training.0, training.1));
        self.out.progress("normalising item table", 0.9);
        let items_normed = normalized_items(&model.weights.item_emb, model.config.l2_norm_eps);
        self.rank = None;
        self.session = Some(Session {
            model,
            ranking,
            items_normed,
            data,
            sources,
        });
        self.out.progress("ready", 1.0);
        Ok(())
    }

    fn session(&self) -> Result<&Session, String> {
        self.session
            .as_ref()
            .ok_or_else(|| "nothing loaded yet".to_string())
    }

    fn analyze(&mut self, user: usize, k: usize) -> Result<(), String> {
        let s = self.session()?;
        let full = s.data.users.get(user).ok_or("no such user")?;
        self.out.progress("attention + retrieval", 0.2);
        let (cfg, w) = (&s.model.config, &s.model.weights);
        let a = analyze_user(&*self.backend, cfg, w, &s.items_normed, user, full, k);
        self.out.send(Event::Analysis(Arc::new(a)));
        self.out.progress("ready", 1.0);
        Ok(())
    }

    fn rank_start(
        &mut self,
        user: usize,
        source: CandidateSource,
        count: usize,
        microbatch: usize,
    ) -> Result<(), String> {
        let s = self.session()?;
        let full = s.data.users.get(user).ok_or("no such user")?;
        let num_items = s.ranking.config.num_items;
        let seq = full.truncated(s.ranking.config.max_sequence_len);
        let candidates = match source {
            CandidateSource::RetrievalTopK => {
                let window = full.truncated(s.model.config.max_sequence_len);
                let user_emb = self
                    .backend
                    .encode_user(&s.model.config, &s.model.weights, &window);
                retrieval(&user_emb, &s.items_normed, &window.items, None, count)
                    .top
                    .items
            }
            CandidateSource::Random { seed } => {
                random_candidates(num_items, &seq.items, count, seed)
            }
            CandidateSource::Typed(text) => parse_candidates(&text, num_items)?,
        };
        self.out.progress("prefill (KV cache)", 0.0);
        let (session, prefill) = RankSession::start(
            &*self.backend,
            &s.ranking,
            seq,
            candidates.clone(),
            microbatch,
        );
        self.rank = Some(session);
        self.out.send(Event::RankStarted {
            user,
            candidates,
            prefill,
        });
        self.out.progress("ready", 1.0);
        Ok(())
    }

    /// Score one micro-batch; false when there was nothing left to score.
    fn rank_step(&mut self) -> bool {
        let (Some(session), Some(rank)) = (self.session.as_ref(), self.rank.as_mut()) else {
            return false;
        };
        let Some(step) = rank.step(&*self.backend, &session.ranking) else {
            return false;
        };
        let total = rank.candidates.len().max(1);
        let done = (step.first + step.scores.len()) as f32 / total as f32;
        self.out.send(Event::RankStep(step));
        self.out.progress("ranking", done);
        !rank.is_done()
    }
}
