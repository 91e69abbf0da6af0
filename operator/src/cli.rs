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
    /// Compile manifests offline and print the plan one machine would get (JSON), with every
    /// diagnostic on stderr. `vedette-agent check --plan` runs such a plan.
    Plan {
        /// Files or directories of manifests.
        #[arg(short = 'f', long = "filename", required = true)]
        paths: Vec<PathBuf>,
        /// The machine's name.
        #[arg(long)]
        host: String,
        /// The machine's labels, `key=value`; repeat for several.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("label {text:?} is not key=value"))
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
        Command::Plan {
            paths,
            host,
            labels,
        } => print_plan(&paths, &host, labels),
    }
}

fn print_plan(paths: &[PathBuf], host: &str, labels: Vec<(String, String)>) -> anyhow::Result<()> {
    let loaded = manifests::load_paths(paths)?;
    anyhow::ensure!(
        loaded.problems.is_empty(),
        "invalid manifests: {}",
        loaded.problems.join("; ")
    );
    let machine = crate::compile::Machine {
        name: host.to_owned(),
        labels: labels.into_iter().collect(),
    };
    let output = crate::compile::compile(&manifests::input(loaded.objects, vec![machine]));
    for diagnostic in &output.diagnostics {
        eprintln!("{diagnostic}");
    }
    let plan = output
        .bundles
        .values()
        .find_map(|bundle| vedette_agent::plan::plan_for(bundle, host))
        .ok_or_else(|| anyhow::anyhow!("no zone selects machine {host}"))?;
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(())
}
