//! `vedette-agent` entry point.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    vedette_agent::cli::run(vedette_agent::cli::Cli::parse())
}
