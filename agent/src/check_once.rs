//! `vedette-agent check --plan FILE --once`: runs every check of a plan once, concurrently,
//! and prints a table of state, duration, output and perfdata — or with `--dry-run` only
//! validates the plan. Exits like a Nagios plugin, so it can gate a pipeline: 0 when every
//! check is OK (or the dry run is valid), else the worst state's code (1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN; the worst by severity, CRITICAL over UNKNOWN); non-zero also when the plan is
//! invalid.

use std::path::PathBuf;
use std::sync::Arc;

use vedette_crds::CheckState;

use crate::host_paths::HostPaths;
use crate::nagios::exec::PluginRunner;
use crate::node::plan_keeper::ActivePlan;
use crate::probe::Prober;
use crate::runner::{CheckRunner, Outcome};

/// What `check` runs.
#[derive(Debug, Clone)]
pub struct CheckOnceConfig {
    /// The plan to run (JSON).
    pub plan: PathBuf,
    /// Only validate the plan, run nothing.
    pub dry_run: bool,
    /// Directories searched for plugins given by name (the default ones when empty).
    pub plugin_dirs: Vec<PathBuf>,
    /// Where the machine probes find the node.
    pub host_paths: HostPaths,
}

/// Why `check` could not run the plan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan file cannot be read or parsed.
    #[error(transparent)]
    Read(#[from] crate::node::Error),
    /// The plan parses but is not one the agent can run.
    #[error("plan {} is invalid:\n{}", path.display(), listed(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, one per line.
        problems: Vec<String>,
    },
    /// A check's task panicked.
    #[error("a check's task failed")]
    Task(#[from] tokio::task::JoinError),
}

fn listed(problems: &[String]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
    lines.join("\n")
}

/// Runs the command; the worst state of the checks (OK for a dry run or an empty plan).
pub async fn run(args: CheckOnceConfig) -> Result<CheckState, Error> {
    let plan = crate::node::read_plan_file(&args.plan, "")?;
    let active = ActivePlan::new(plan).map_err(|problems| Error::Invalid {
        path: args.plan.clone(),
        problems: problems.iter().map(ToString::to_string).collect(),
    })?;
    if args.dry_run {
        if !active.refused.is_empty() {
            return Err(Error::Invalid {
                path: args.plan.clone(),
                problems: active
                    .refused
                    .iter()
                    .map(|(_, reason)| reason.clone())
                    .collect(),
            });
        }
        println!(
            "plan {} is valid: {} checks for host {}",
            active.hash,
            active.checks.len(),
            active.plan.host
        );
        for check in &active.checks {
            let kind = check.planned.check.probe_kind().unwrap_or("?");
            let every = match check.planned.every_cycles {
                Some(1) => format!("every cycle of {}s", active.plan.settings.cycle_seconds),
                Some(n) => format!(
                    "every {n} cycles of {}s",
                    active.plan.settings.cycle_seconds
                ),
                None => format!("every {}s", check.planned.interval_seconds),
            };
            println!("  {} ({kind}, {every})", check.planned.id);
        }
        return Ok(CheckState::Ok);
    }
    let mut plugins = PluginRunner::default();
    if !args.plugin_dirs.is_empty() {
        plugins.plugin_dirs = args.plugin_dirs.clone();
    }
    let prober = Prober::new().with_host_paths(args.host_paths.clone());
    let runner = Arc::new(CheckRunner::new(prober, plugins));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, check) in active.checks.iter().enumerate() {
        let (runner, check) = (runner.clone(), check.clone());
        tasks.spawn(async move { (index, runner.run(&check).await) });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; active.checks.len()];
    while let Some(joined) = tasks.join_next().await {
        let (index, outcome) = joined?;
        outcomes[index] = Some(outcome);
    }
    print!("{}", table(&active, &outcomes));
    Ok(worst(outcomes.iter().flatten().map(|o| o.state)))
}

/// The worst of `states` by severity; OK when there is none.
fn worst(states: impl Iterator<Item = CheckState>) -> CheckState {
    states.fold(CheckState::Ok, CheckState::worse)
}

fn table(active: &ActivePlan, outcomes: &[Option<Outcome>]) -> String {
    let rows: Vec<[String; 5]> = active
        .checks
        .iter()
        .zip(outcomes)
        .filter_map(|(check, outcome)| {
            let o = outcome.as_ref()?;
            let perf: Vec<String> = o
                .perfdata
                .iter()
                .map(|(l, v, u)| format!("{l}={v}{u}"))
                .collect();
            Some([
                check.planned.id.to_string(),
                o.state.name().to_owned(),
                format!("{:.1}ms", o.duration.as_secs_f64() * 1000.0),
                o.output.clone(),
                perf.join(" "),
            ])
        })
        .collect();
    let header = ["CHECK", "STATE", "DURATION", "OUTPUT", "PERFDATA"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count()).min(80);
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_state_is_the_worst_by_severity() {
        use CheckState::{Critical, Ok, Unknown, Warning};
        assert_eq!(worst([].into_iter()), Ok);
        assert_eq!(worst([Ok, Warning].into_iter()), Warning);
        assert_eq!(worst([Warning, Unknown, Ok].into_iter()), Unknown);
        assert_eq!(worst([Unknown, Critical].into_iter()), Critical);
    }
}
