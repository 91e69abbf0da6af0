//! `vedette-operator` entry point: the one place errors become `anyhow` (printed with their
//! causes).

use clap::Parser;

fn main() -> anyhow::Result<()> {
    Ok(vedette_operator::cli::run(
        vedette_operator::cli::Cli::parse(),
    )?)
}
