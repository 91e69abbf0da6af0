//! `vedette-satellite` entry point: the one place errors become `anyhow` (printed with their
//! causes).

use clap::Parser;

fn main() -> anyhow::Result<()> {
    Ok(vedette_satellite::cli::run(
        vedette_satellite::cli::Cli::parse(),
    )?)
}
