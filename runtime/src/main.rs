//! `hstu`: encode, retrieve, rank, evaluate and train HSTU models (see `hstu --help`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
