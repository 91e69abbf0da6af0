//! `vedette-operator` entry point.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    vedette_operator::cli::run(vedette_operator::cli::Cli::parse())
}
