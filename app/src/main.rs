//! `hstu-explorer [--model DIR] [--ranking-model DIR] [--data PATH]`: the desktop explorer.

use anyhow::Result;
use clap::Parser;
use hstu_explorer::state::Tab;
use hstu_explorer::{ExplorerApp, Sources};
use std::path::PathBuf;

/// Inspect an HSTU model over a user's timeline and step through candidate ranking.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Retrieval model directory (default: the bundled assets/ml-100k-hstu).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Ranking model directory (default: the bundled assets/ml-100k-hstu-ranking).
    #[arg(long)]
    ranking_model: Option<PathBuf>,
    /// Sequences .jsonl or a MovieLens ratings file/directory (default: assets/sample_sequences.jsonl).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The view to open on: model, timeline, attention, retrieval, ranking or training.
    #[arg(long, default_value = "attention")]
    tab: String,
    /// Initial window size in points.
    #[arg(long, default_value_t = 1280.0)]
    width: f32,
    #[arg(long, default_value_t = 800.0)]
    height: f32,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut sources = Sources::bundled();
    if let Some(m) = args.model {
        sources.model_dir = m;
    }
    if let Some(r) = args.ranking_model {
        sources.ranking_dir = r;
    }
    if let Some(d) = args.data {
        sources.data_path = d;
    }
    let tab =
        Tab::from_name(&args.tab).ok_or_else(|| anyhow::anyhow!("unknown --tab {}", args.tab))?;
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("hstu-explorer")
            .with_inner_size([args.width, args.height])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "hstu-explorer",
        options,
        Box::new(move |cc| {
            let mut app = ExplorerApp::from_creation_context(cc, sources);
            app.state.tab = tab;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("eframe: {e}"))
}
