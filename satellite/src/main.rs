//! `vedette-satellite` entry point.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    vedette_satellite::cli::run(vedette_satellite::cli::Cli::parse())
}
