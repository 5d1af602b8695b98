//! The `hstu` command line (spec section 4 and the project's own commands).

mod common;
mod data;
mod eval;
mod infer;
mod info;
mod train;

use clap::{Parser, Subcommand};

/// HSTU generative recommender: a portable runtime (CPU reference, WGSL on any GPU, CUDA training).
///
/// With no --model, commands use the bundled MovieLens-100K model under assets/.
#[derive(Parser, Debug)]
#[command(name = "hstu", version, propagate_version = true)]
struct Cli {
    /// Log level filter (also HSTU_LOG): error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show a model's config, parameter count and tensor table.
    Info(info::InfoArgs),
    /// Encode user histories: writes user_embeddings [B, D], sequence_embeddings [sum L, D], seq_offsets [B+1].
    Encode(infer::EncodeArgs),
    /// Retrieve the top-K items per user over the whole catalogue (history excluded); one JSON line per user.
    Retrieve(infer::RetrieveArgs),
    /// Rank each user's candidates with M-FALCON (history encoded once, candidates in micro-batches).
    Rank(infer::RankArgs),
    /// Evaluate a model on a data set (leave-one-out, full-catalogue ranking); prints one JSON object.
    Eval(eval::EvalArgs),
    /// Train a model on the CPU or a CUDA GPU (`--device cuda`; sampled softmax; ranking BCE when the config has `ranking`); checkpoints every epoch.
    Train(train::TrainArgs),
    /// Fetch, prepare and describe data sets.
    #[command(subcommand)]
    Data(data::DataCommand),
}

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    common::init_tracing(&cli.log);
    let result = match cli.command {
        Command::Info(a) => info::run(a),
        Command::Encode(a) => infer::encode(a),
        Command::Retrieve(a) => infer::retrieve(a),
        Command::Rank(a) => infer::rank(a),
        Command::Eval(a) => eval::run(a),
        Command::Train(a) => train::run(a),
        Command::Data(c) => data::run(c),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}

/// A closed stdout (`hstu retrieve | head`) ends the command quietly.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
