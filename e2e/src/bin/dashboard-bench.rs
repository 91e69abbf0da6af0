//! `make bench BENCHES=dashboard`: the dashboard in a real browser (Debian's chromium through
//! playwright-core) over masters holding 20,000 checks on 2,000 hosts. Prints numbers; never a
//! pass/fail test (see `docs/benchmarks.md`).
//!
//! The masters and the dashboard run in this process (no history, open access), fed through
//! `Masters::receive` as satellites' batches would be; the catalog is a compiled-shaped bundle
//! of 2,000 hosts × 10 rules. `e2e/browser/bench.cjs` measures, each five times (median and
//! worst): the first meaningful paint of the problems view and of the all-checks view (from
//! navigation to the view drawn), a text filter and a sort applied (input to redraw), and a
//! burst of 1,000 state changes (the step to all of them on the problems view, and the longest
//! frame meanwhile, from the browser's long-task entries). Then 20 pages stay open on the
//! problems view while a burst of 100 changes arrives every 2 s for 20 s: this process's CPU
//! time and RSS are measured over the same 20 s without pages and with them.
//!
//! ```text
//! cargo run --release -p vedette-e2e --bin dashboard-bench [-- --hosts 2000 --rules 10]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vedette_crds::CheckState;
use vedette_operator::dashboard::{self, catalog::Catalog};
use vedette_operator::masters::access::ReadAccess;
use vedette_operator::masters::{self, Masters};
use vedette_protocol::clock::unix_ms;
use vedette_protocol::forward::Forwarded;
use vedette_protocol::plan::{CheckId, PlannedCheck, ZoneBundle};
use vedette_protocol::report::{Batch, CheckReport, Envelope, Report};

const NAMESPACES: [&str; 5] = ["shop", "billing", "search", "batch", "platform"];

fn planned(id: CheckId) -> anyhow::Result<PlannedCheck> {
    Ok(serde_json::from_value(serde_json::json!({
        "id": id,
        "template": "platform/tcp",
        "check": {"tcp": {"port": 443}},
        "critical": "2",
        "conditionState": "CRITICAL",
        "intervalSeconds": 60,
        "retryIntervalSeconds": 10,
        "maxAttempts": 3,
        "timeoutSeconds": 10,
        "timeoutState": "UNKNOWN",
    }))?)
}

fn ids(rules: usize) -> Vec<CheckId> {
    (0..rules)
        .map(|i| CheckId {
            namespace: NAMESPACES[i % NAMESPACES.len()].to_owned(),
            rule_set: format!("rules-{}", i % 2),
            rule: format!("rule-{i}"),
        })
        .collect()
}

fn bundle(hosts: usize, rules: usize) -> anyhow::Result<ZoneBundle> {
    let mut bundle = ZoneBundle {
        zone: "bench".to_owned(),
        checks: ids(rules)
            .into_iter()
            .map(planned)
            .collect::<Result<_, _>>()?,
        ..ZoneBundle::default()
    };
    let all: Vec<u32> = (0..rules as u32).collect();
    for host in 0..hosts {
        bundle
            .machines
            .insert(format!("host-{host:05}"), all.clone());
    }
    Ok(bundle)
}

/// Numbers the satellite's entries, as a spool would.
struct Feed {
    sequence: u64,
}

impl Feed {
    fn batch(&mut self, changes: Vec<(String, CheckId, CheckState)>) -> Batch<Forwarded> {
        let entries = changes
            .into_iter()
            .map(|(host, check, state)| {
                self.sequence += 1;
                Envelope {
                    sequence: self.sequence,
                    report: Forwarded::Agent {
                        agent: host.clone(),
                        sequence: self.sequence,
                        report: Report::StateChange(CheckReport {
                            check,
                            host,
                            state,
                            hard: true,
                            attempt: 1,
                            previous_state: CheckState::Ok,
                            output: format!(
                                "{} - measured by the dashboard benchmark",
                                state.name()
                            ),
                            duration_ms: 3,
                            at_ms: unix_ms(),
                        }),
                    },
                }
            })
            .collect();
        Batch {
            agent: "bench-satellite-0".to_owned(),
            floor: 1,
            entries,
        }
    }
}

/// The initial spread: 1 in 20 CRITICAL, 1 in 20 WARNING, 1 in 100 UNKNOWN, the rest OK.
fn initial(host: usize, rule: usize) -> CheckState {
    match (host * 7 + rule * 13) % 100 {
        0..=4 => CheckState::Critical,
        5..=9 => CheckState::Warning,
        10 => CheckState::Unknown,
        _ => CheckState::Ok,
    }
}

async fn feed(
    masters: &Masters,
    feed: &mut Feed,
    changes: Vec<(String, CheckId, CheckState)>,
) -> anyhow::Result<()> {
    for chunk in changes.chunks(2_000) {
        masters
            .receive(feed.batch(chunk.to_vec()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// This process's CPU seconds (user + system) and RSS in MiB.
fn usage() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the name: state is field 0, utime 11, stime 12 (clock ticks of 1/100 s).
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    (cpu, rss)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let hosts = arg("--hosts", 2_000);
    let rules = arg("--rules", 10);
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(vedette_operator::metrics::Metrics::new(&mut registry));
    let mut topology = masters::stream::BusBuilder::default();
    let pages = topology.subscribe("dashboard", dashboard::live::CAPACITY);
    let bus = topology.build(metrics.clone())?;
    let masters = Arc::new(Masters::new(
        vedette_satellite::auth::Auth::Disabled,
        "",
        bus,
        metrics,
        None,
    )?);
    let bundle = bundle(hosts, rules)?;
    masters.set_catalog(Catalog::new([&bundle], &[]));
    let board = dashboard::Dashboard::start(masters.clone(), ReadAccess::Open, pages);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let routes = masters::router(masters.clone()).merge(dashboard::router(board));
    tokio::spawn(async move { axum::serve(listener, routes).await });

    let ids = ids(rules);
    let host = |h: usize| format!("host-{h:05}");
    let mut source = Feed { sequence: 0 };
    let started = Instant::now();
    let everything: Vec<_> = (0..hosts)
        .flat_map(|h| {
            ids.iter()
                .enumerate()
                .map(move |(r, id)| (h, r, id.clone()))
        })
        .map(|(h, r, id)| (host(h), id, initial(h, r)))
        .collect();
    feed(&masters, &mut source, everything).await?;
    println!(
        "masters hold {} checks on {hosts} hosts ({:.2} s to feed); RSS {:.0} MiB",
        masters.state().checks().len(),
        started.elapsed().as_secs_f64(),
        usage().1
    );

    let runtime = tokio::runtime::Handle::current();
    let oks: Vec<(String, CheckId)> = (0..hosts)
        .flat_map(|h| (0..rules).map(move |r| (h, r)))
        .filter(|&(h, r)| initial(h, r) == CheckState::Ok)
        .map(|(h, r)| (host(h), ids[r].clone()))
        .collect();
    let flip = move |count: usize, state: CheckState| -> Vec<(String, CheckId, CheckState)> {
        oks.iter()
            .take(count)
            .map(|(h, id)| (h.clone(), id.clone(), state))
            .collect()
    };
    let lines = tokio::task::spawn_blocking(move || {
        vedette_e2e::browser::run(
            "bench.cjs",
            &[("BASE", format!("http://127.0.0.1:{port}"))],
            Duration::from_secs(900),
            |step| {
                let masters = masters.clone();
                match step {
                    "burst" => runtime.block_on(feed(
                        &masters,
                        &mut source,
                        flip(1_000, CheckState::Critical),
                    ))?,
                    "reset" => runtime.block_on(feed(
                        &masters,
                        &mut source,
                        flip(1_000, CheckState::Ok),
                    ))?,
                    "window" => {
                        // 20 s of a burst of 100 changes every 2 s; CPU and RSS of this process.
                        let (cpu, _) = usage();
                        for i in 0..10 {
                            let state = if i % 2 == 0 {
                                CheckState::Critical
                            } else {
                                CheckState::Ok
                            };
                            runtime.block_on(async {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                feed(&masters, &mut source, flip(100, state)).await
                            })?;
                        }
                        let (after, rss) = usage();
                        return Ok(format!("{:.2} {rss:.0}", after - cpu));
                    }
                    other => anyhow::bail!("unknown step {other:?}"),
                }
                Ok("done".to_owned())
            },
        )
    })
    .await??;
    let results: BTreeMap<_, _> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("result "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    println!("# results (ms unless said)");
    for (name, value) in results {
        println!("{name:<40} {value}");
    }
    Ok(())
}
