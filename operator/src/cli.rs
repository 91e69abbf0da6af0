//! Command-line interface of `vedette-operator`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::manifests;

/// Vedette's operator: turns MonitorZones, CheckTemplates, RuleSets and BusinessProcesses into
/// satellites, agents and zone bundles, and writes their status.
#[derive(Parser, Debug)]
#[command(name = "vedette-operator", version, about, long_about = None)]
pub struct Cli {
    /// Log filter, e.g. `info` or `vedette_operator=debug`.
    #[arg(long, global = true, env = "VEDETTE_LOG", default_value = "info")]
    pub log_level: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The operator's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
    /// Check Vedette manifests offline: every document of a Vedette kind must parse into its
    /// type (no unknown fields, right types). Exits non-zero naming each problem.
    Validate {
        /// Files or directories (searched for *.yaml, *.yml, not recursively).
        #[arg(short = 'f', long = "filename", required = true)]
        paths: Vec<PathBuf>,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crds => {
            for (_, crd) in vedette_crds::generate::all() {
                print!("---\n{}", vedette_crds::generate::to_yaml(&crd));
            }
            Ok(())
        }
        Command::Validate { paths } => {
            let loaded = manifests::load_paths(&paths)?;
            for problem in &loaded.problems {
                eprintln!("{problem}");
            }
            println!(
                "{} Vedette objects valid, {} problems",
                loaded.objects.len(),
                loaded.problems.len()
            );
            if loaded.problems.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("invalid manifests")
            }
        }
    }
}
