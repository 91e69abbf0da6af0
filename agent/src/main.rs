//! `vedette-agent` entry point.

use clap::Parser;

fn main() -> anyhow::Result<std::process::ExitCode> {
    vedette_agent::cli::run(vedette_agent::cli::Cli::parse())
}
