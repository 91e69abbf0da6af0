//! Command-line interface of `vedette-agent`.

use clap::{Parser, Subcommand};

/// Vedette's agent: runs checks on this machine and reports state changes upstream.
#[derive(Parser, Debug)]
#[command(name = "vedette-agent", version, about, long_about = None)]
pub struct Cli {
    /// Log filter, e.g. `info` or `vedette_agent=debug`.
    #[arg(long, global = true, env = "VEDETTE_LOG", default_value = "info")]
    pub log_level: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The agent's roles and tools.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the Vedette API version this agent speaks.
    ApiVersion,
    /// Inspect or measure the agent's durable spool.
    Spool {
        /// What to do with the spool.
        #[command(subcommand)]
        command: crate::spool::command::SpoolCommand,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::ApiVersion => {
            println!("{}/{}", vedette_crds::GROUP, vedette_crds::VERSION);
            Ok(())
        }
        Command::Spool { command } => crate::spool::command::run(command),
    }
}
