//! `vedette-agent check --plan FILE --once`: runs every check of a plan once, concurrently,
//! and prints a table of state, duration, output and perfdata — or with `--dry-run` only
//! validates the plan. Exits non-zero when the plan is invalid.

use std::path::PathBuf;
use std::sync::Arc;

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

/// Runs the command.
pub async fn run(args: CheckOnceConfig) -> anyhow::Result<()> {
    let plan = crate::node::read_plan_file(&args.plan, "")?;
    let active = ActivePlan::new(plan).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        anyhow::anyhow!(
            "plan {} is invalid:\n{}",
            args.plan.display(),
            list.join("\n")
        )
    })?;
    if args.dry_run {
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
        return Ok(());
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
    Ok(())
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
