//! `hstu info`: config, parameter count, tensor table.

use super::common::{default_model, load_model};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Model directory (config.json + model.safetensors); default: the bundled model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Skip the NaN/Inf scan of the weights (on by default).
    #[arg(long)]
    no_check_finite: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: InfoArgs) -> Result<()> {
    let dir = a.model.unwrap_or_else(default_model);
    let m = load_model(&dir, !a.no_check_finite)?;
    let c = &m.config;
    let params = m.weights.parameter_count();
    if a.json {
        let tensors: Vec<_> = m
            .tensors
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "dtype": t.dtype, "shape": t.shape}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"model": dir, "config": c, "parameters": params, "tensors": tensors})
        );
        return Ok(());
    }
    println!("model      {}", dir.display());
    println!(
        "shape      D={} blocks={} heads={} dqk={} dv={} N={} (max_sequence_len {} + max_output_len {})",
        c.embedding_dim,
        c.num_blocks,
        c.num_heads,
        c.attention_dim,
        c.linear_dim,
        c.n(),
        c.max_sequence_len,
        c.max_output_len
    );
    println!("items      {} (+1 padding row)", c.num_items);
    println!(
        "time bias  {} buckets, {} / {}",
        c.num_time_buckets, c.time_bucket_fn, c.time_bucket_divisor
    );
    match &c.ranking {
        Some(r) => println!(
            "ranking    {} actions, MLP {} -> {} -> {} (tasks rating >= {:?})",
            r.num_actions,
            c.embedding_dim,
            r.mlp_hidden_dim,
            r.num_tasks(),
            r.task_thresholds
        ),
        None => println!("ranking    none (retrieval model)"),
    }
    println!("parameters {params}");
    println!();
    println!("{:<56} {:>5}  shape", "tensor", "dtype");
    for t in &m.tensors {
        println!("{:<56} {:>5}  {:?}", t.name, t.dtype, t.shape);
    }
    Ok(())
}
