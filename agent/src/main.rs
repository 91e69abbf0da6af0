//! `vedette-agent` entry point: the one place errors become `anyhow` (printed with their
//! causes).

use clap::Parser;

fn main() -> anyhow::Result<std::process::ExitCode> {
    Ok(vedette_agent::cli::run(vedette_agent::cli::Cli::parse())?)
}
