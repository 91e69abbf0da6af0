//! The masters' business-process engine at size: 10,000 elements in 1,000 processes over
//! 1,000 machines (each process a chain of 10 elements, each on its own machine, 10 elements
//! per machine; every process's 6th element has a masters' clause, its last a deadline). The
//! models come from `compile`. Runs of every process (each element Standby → Running →
//! Completed, then all back to Standby: 30,000 transitions per round) go through
//! `Masters::receive` in satellite batches of 500, with the embedded history on. Prints the
//! transitions per second, the time from a batch's submission to its transitions being in the
//! masters' state (what `/v1/masters/state` and status read) and to its acknowledgement (its
//! records durable), the cost of the once-a-second sweep (deadlines and masters' clauses over
//! every element) and of building every process's status, the engine's memory and the CPU
//! per transition. Then the whole path on this machine: standalone mode (agent, satellite and
//! masters over HTTP) with 20 elements driven by files, from a file written to the element's
//! new state on `/v1/state`. Asserts nothing.
//!
//! `cargo bench -p vedette-operator --bench process_engine` (`VEDETTE_BENCH_DIR` for the disk).

use std::sync::Arc;
use std::time::{Duration, Instant};

use vedette_crds::process::ElementState;
use vedette_operator::compile::{Input, Machine, compile};
use vedette_operator::masters::stream::BusBuilder;
use vedette_operator::masters::{History, Masters};
use vedette_protocol::forward::Forwarded;
use vedette_protocol::process::{ElementReport, ProcessId};
use vedette_protocol::report::{Batch, Envelope, Report};

const PROCESSES: usize = 1_000;
const ELEMENTS: usize = 10;
const MACHINES: usize = 1_000;
const PER_BATCH: usize = 500;
const ROUNDS: usize = 3;

fn machine_of(process: usize, element: usize) -> String {
    format!("node-{:04}", (process * ELEMENTS + element) % MACHINES)
}

fn input() -> Input {
    let zone: vedette_crds::MonitorZone = serde_yaml::from_str(
        "apiVersion: vedette.dev/v1alpha1\nkind: MonitorZone\nmetadata: {name: core}\nspec: {nodeSelector: {}}",
    )
    .unwrap();
    let processes = (0..PROCESSES)
        .map(|p| {
            let elements: Vec<String> = (0..ELEMENTS)
                .map(|e| {
                    let depends = if e == 0 {
                        String::new()
                    } else {
                        format!("\n    dependsOn: [e{}]", e - 1)
                    };
                    let extra_failure = if e == 5 {
                        format!(
                            "\n      - when: {{elementState: {{element: e{}, state: Failed}}}}\n        message: blocked",
                            e - 1
                        )
                    } else {
                        String::new()
                    };
                    let deadline = if e == ELEMENTS - 1 {
                        "\n    completeBy: {time: \"23:59\"}"
                    } else {
                        ""
                    };
                    format!(
                        "  - name: e{e}\n    runsOn: {{hostNames: [{host}]}}{depends}{deadline}\n    \
                         standby: {{when: {{fileExists: /s}}}}\n    \
                         running: {{when: {{processRunning: job-{e}}}, message: started}}\n    \
                         completed: {{when: {{fileExists: /done-{e}}}, message: done}}\n    \
                         failed:\n      - when: {{fileExists: /fail-{e}}}{extra_failure}",
                        host = machine_of(p, e)
                    )
                })
                .collect();
            let yaml = format!(
                "apiVersion: vedette.dev/v1alpha1\nkind: BusinessProcess\nmetadata: {{name: p{p:04}, namespace: app-{}}}\nspec:\n  timeZone: Europe/Berlin\n  elements:\n{}",
                p % 10,
                elements.join("\n")
            );
            serde_yaml::from_str(&yaml).unwrap()
        })
        .collect();
    Input {
        zones: vec![zone],
        processes,
        machines: (0..MACHINES)
            .map(|m| Machine {
                name: format!("node-{m:04}"),
                labels: Default::default(),
            })
            .collect(),
        ..Input::default()
    }
}

/// One round's transitions, in the order agents would make them.
fn round(base_ms: u64) -> Vec<ElementReport> {
    let mut reports = Vec::new();
    let mut at = base_ms;
    let mut step = |p: usize, e: usize, from: ElementState, to: ElementState| {
        at += 1;
        ElementReport {
            process: ProcessId {
                namespace: format!("app-{}", p % 10),
                name: format!("p{p:04}"),
            },
            element: format!("e{e}"),
            host: machine_of(p, e),
            from,
            to,
            clause: to.as_str().to_ascii_lowercase(),
            message: Some("bench".into()),
            at_ms: at,
        }
    };
    for e in 0..ELEMENTS {
        for p in 0..PROCESSES {
            reports.push(step(p, e, ElementState::Standby, ElementState::Running));
            reports.push(step(p, e, ElementState::Running, ElementState::Completed));
        }
    }
    for e in 0..ELEMENTS {
        for p in 0..PROCESSES {
            reports.push(step(p, e, ElementState::Completed, ElementState::Standby));
        }
    }
    reports
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or_default()
}

/// Resident memory, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// CPU time of this process (user + system), seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

/// Elements of the end-to-end part, on this machine.
const E2E_ELEMENTS: usize = 20;

/// The end-to-end part: `vedette-operator standalone` (agent, satellite and masters, each
/// over HTTP as in a cluster) with 20 elements on this machine, each driven by files; a file
/// written → the element's new state on `/v1/state` (what the masters hold), per transition.
fn end_to_end(base: &std::path::Path) {
    let dir = tempfile::tempdir_in(base).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let elements: Vec<String> = (0..E2E_ELEMENTS)
        .map(|i| {
            let w = work.display();
            format!(
                "    - name: e{i}\n      runsOn: {{hostNames: [bench-host]}}\n      \
                 standby: {{when: {{fileExists: {w}/reset-{i}}}}}\n      \
                 running: {{when: {{fileExists: {w}/run-{i}}}}}\n      \
                 completed: {{when: {{fileExists: {w}/done-{i}}}}}\n      \
                 failed: [{{when: {{fileExists: {w}/fail-{i}}}}}]"
            )
        })
        .collect();
    let manifest = format!(
        "apiVersion: vedette.dev/v1alpha1\nkind: MonitorZone\nmetadata: {{name: local}}\nspec: {{nodeSelector: {{}}}}\n---\n\
         apiVersion: vedette.dev/v1alpha1\nkind: BusinessProcess\nmetadata: {{name: bench, namespace: bench}}\nspec:\n  elements:\n{}\n",
        elements.join("\n")
    );
    std::fs::write(dir.path().join("bench.yaml"), manifest).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vedette-operator"))
        .args(["standalone", "--host", "bench-host", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-f")
        .arg(dir.path().join("bench.yaml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--summary-seconds", "3600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state_of = |element: usize| -> Option<String> {
        let body = http_get(port, "/v1/state")?;
        let view: serde_json::Value = serde_json::from_str(&body).ok()?;
        let element = view["processes"][0]["elements"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == format!("e{element}"))?
            .clone();
        element["state"].as_str().map(str::to_owned)
    };
    let wait = |element: usize, want: &str, limit: Duration| {
        let began = Instant::now();
        while began.elapsed() < limit {
            if state_of(element).as_deref() == Some(want) {
                return Some(began.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    };
    let ready = wait(0, "Standby", Duration::from_secs(60)).is_some();
    let mut latencies = Vec::new();
    let mut missed = 0;
    if ready {
        // Let the agent's first plan and evaluation settle.
        std::thread::sleep(Duration::from_secs(2));
        for i in 0..E2E_ELEMENTS {
            for (file, state) in [
                ("run", "Running"),
                ("done", "Completed"),
                ("reset", "Standby"),
            ] {
                // Not aligned with the agent's once-a-second evaluation.
                std::thread::sleep(Duration::from_millis(137 * (i as u64 % 7)));
                if file == "reset" {
                    let _ = std::fs::remove_file(work.join(format!("run-{i}")));
                    let _ = std::fs::remove_file(work.join(format!("done-{i}")));
                }
                std::fs::write(work.join(format!("{file}-{i}")), b"").unwrap();
                match wait(i, state, Duration::from_secs(10)) {
                    Some(latency) => latencies.push(latency),
                    None => missed += 1,
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    latencies.sort();
    println!(
        "end to end (standalone: agent → satellite → masters over HTTP), a file written → the \
         element's new state on /v1/state: {} transitions, p50 {:?} p99 {:?} max {:?}, {missed} not seen within 10 s{}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        if ready {
            ""
        } else {
            " (standalone did not start)"
        },
    );
}

/// `GET path` (HTTP/1.1, `Connection: close`): the body when the status is 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            if size == 0 || tail.len() < size {
                break;
            }
            out.push_str(&tail[..size]);
            rest = tail[size..].trim_start_matches("\r\n");
        }
        return Some(out);
    }
    Some(body.to_owned())
}

fn main() {
    let base = std::env::var_os("VEDETTE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "process engine: {PROCESSES} processes × {ELEMENTS} elements over {MACHINES} machines, \
         batches of {PER_BATCH} transitions, history on (SQLite), in process"
    );
    let input = input();
    let before = rss();
    let compiled_at = Instant::now();
    let output = compile(&input);
    drop(input);
    let models: Vec<_> = output.processes.into_values().collect();
    println!(
        "compile of the processes: {:?}, {} elements in the zone's bundle",
        compiled_at.elapsed(),
        output.bundles["core"].elements.len()
    );
    drop(output.bundles);
    runtime.block_on(async move {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let history = History::open(dir.path()).unwrap();
        let metrics = Arc::new(vedette_operator::metrics::Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        let mut topology = BusBuilder::default();
        let mut events = topology.subscribe("bench", 1 << 20);
        let bus = topology.build(metrics.clone()).unwrap();
        let masters = Arc::new(
            Masters::new(
                vedette_satellite::auth::Auth::Disabled,
                "",
                bus,
                metrics,
                Some(history),
            )
            .unwrap(),
        );
        let drain = tokio::spawn(async move {
            let mut count = 0u64;
            while events.recv().await.is_some() {
                count += 1;
            }
            count
        });
        masters.state().set_processes(models);
        let with_models = rss();
        let mut agent_sequences = vec![0u64; MACHINES];
        let mut satellite_sequence = 0u64;
        let mut visible = Vec::new();
        let mut acked = Vec::new();
        let mut transitions = 0usize;
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        for r in 0..ROUNDS {
            let reports = round(1_800_000_000_000 + r as u64 * 10_000_000);
            for chunk in reports.chunks(PER_BATCH) {
                let entries = chunk
                    .iter()
                    .map(|report| {
                        let machine: usize = report.host[5..].parse().unwrap();
                        agent_sequences[machine] += 1;
                        satellite_sequence += 1;
                        Envelope {
                            sequence: satellite_sequence,
                            report: Forwarded::Agent {
                                agent: report.host.clone(),
                                sequence: agent_sequences[machine],
                                report: Report::ElementTransition(report.clone()),
                            },
                        }
                    })
                    .collect();
                let batch = Batch {
                    agent: "satellite-0".into(),
                    floor: 1,
                    entries,
                };
                transitions += chunk.len();
                let last = chunk.last().unwrap().clone();
                let began = Instant::now();
                let receive = masters.receive(batch);
                tokio::pin!(receive);
                // The merge happens at once under the lock; the ack waits for durability.
                let ack = tokio::select! {
                    biased;
                    ack = &mut receive => Some(ack),
                    () = tokio::task::yield_now() => None,
                };
                let seen = {
                    let state = masters.state();
                    let runtime = state.processes().runtime(&last.process).unwrap();
                    runtime.elements[&last.element].state == last.to
                };
                if seen {
                    visible.push(began.elapsed());
                }
                match ack {
                    Some(ack) => drop(ack.unwrap()),
                    None => drop(receive.await.unwrap()),
                }
                acked.push(began.elapsed());
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_before;
        let after = rss();
        visible.sort();
        acked.sort();
        println!(
            "{transitions} transitions in {elapsed:.2} s: {:.0} transitions/s, CPU {:.1} µs per transition",
            transitions as f64 / elapsed,
            cpu / transitions as f64 * 1e6,
        );
        println!(
            "batch → in the masters' state: p50 {:?} p99 {:?} ({} of {} batches sampled); \
             → acknowledged (durable): p50 {:?} p99 {:?}",
            percentile(&visible, 0.5),
            percentile(&visible, 0.99),
            visible.len(),
            acked.len(),
            percentile(&acked, 0.5),
            percentile(&acked, 0.99),
        );
        let mut sweeps = Vec::new();
        for _ in 0..50 {
            let began = Instant::now();
            masters.sweep();
            sweeps.push(began.elapsed());
        }
        sweeps.sort();
        println!(
            "sweep (deadlines and masters' clauses of {} elements): p50 {:?} p99 {:?}",
            PROCESSES * ELEMENTS,
            percentile(&sweeps, 0.5),
            percentile(&sweeps, 0.99)
        );
        let began = Instant::now();
        let live = {
            let state = masters.state();
            vedette_operator::status::live::summarise(
                &state,
                &Default::default(),
                vedette_protocol::clock::unix_ms(),
            )
        };
        println!(
            "status of {} processes built in {:?}",
            live.processes.len(),
            began.elapsed()
        );
        println!(
            "memory: {:.1} MiB for the models and states (RSS before compile {:.1}, with the engine set {:.1} MiB), {:.1} MiB after the rounds (the history's buffers and the event channel included)",
            (with_models.saturating_sub(before)) as f64 / 1048576.0,
            before as f64 / 1048576.0,
            with_models as f64 / 1048576.0,
            after as f64 / 1048576.0,
        );
        let counts = masters.state().processes().counts();
        println!(
            "applied {} transitions, {} ignored, {} waiting",
            counts.applied,
            counts.ignored,
            masters.state().processes().parked()
        );
        drop(masters);
        drop(drain);
    });
    end_to_end(
        &std::env::var_os("VEDETTE_BENCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    );
}
