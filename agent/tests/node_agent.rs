//! The node agent as a real process against a real HTTP upstream: state changes decided on the
//! agent reach the upstream and the agent's own /metrics; a bad check is refused alone (UNKNOWN
//! with the reason) and a plan that cannot be read is refused while the last good one keeps
//! running; an unreachable upstream is survived through the spool, with
//! failover to a standby and an in-order replay; a SIGKILLed agent resends what it spooled
//! and comes back with the check states it had.

mod common;

use std::time::Duration;

use common::{Agent, Upstream, closed_port, eventually, tcp_plan};
use vedette_crds::template::CheckState;
use vedette_protocol::report::{Envelope, Report};

const WAIT: Duration = Duration::from_secs(20);

fn states_of(entries: &[Envelope], rule: &str) -> Vec<(u64, CheckState)> {
    entries
        .iter()
        .filter_map(|e| match &e.report {
            Report::StateChange(r) if r.check.rule == rule => Some((e.sequence, r.state)),
            _ => None,
        })
        .collect()
}

fn last_keepalive(entries: &[Envelope]) -> Option<vedette_protocol::report::Keepalive> {
    entries.iter().rev().find_map(|e| match &e.report {
        Report::Keepalive(k) => Some(k.clone()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_turning_critical_reaches_upstream_and_metrics() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = Upstream::start().await;
    upstream.set_plan(&tcp_plan("node-a", port, 2));
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start("node-a", &[upstream.url()], dir.path());

    eventually("first state OK upstream", WAIT, || {
        states_of(&upstream.entries(), "listener")
            .first()
            .filter(|s| s.1 == CheckState::Ok)
            .copied()
    })
    .await;
    drop(listener);
    eventually("CRITICAL upstream", WAIT, || {
        states_of(&upstream.entries(), "listener")
            .iter()
            .find(|s| s.1 == CheckState::Critical)
            .copied()
    })
    .await;
    let series =
        r#"vedette_check_state{host="node-a",namespace="test",ruleset="net",check="listener"} 2"#;
    let mut text = String::new();
    for _ in 0..100 {
        text = agent.metrics_text().await;
        if text.contains(series) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text.contains(series), "metrics: {text}");
    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    eventually("OK again upstream", WAIT, || {
        states_of(&upstream.entries(), "listener")
            .last()
            .filter(|s| s.1 == CheckState::Ok)
            .copied()
    })
    .await;
    let keepalive = last_keepalive(&upstream.entries()).expect("keepalives arrive");
    assert_eq!(keepalive.host, "node-a");
    assert!(!keepalive.plan.held, "{keepalive:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_check_is_refused_alone_and_an_unreadable_plan_keeps_the_last_good_one() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = Upstream::start().await;
    let good = tcp_plan("node-b", port, 2);
    upstream.set_plan(&good);
    let dir = tempfile::tempdir().unwrap();
    let _agent = Agent::start("node-b", &[upstream.url()], dir.path());
    eventually("the good plan runs", WAIT, || {
        last_keepalive(&upstream.entries()).filter(|k| k.plan.hash == good.hash())
    })
    .await;

    // One bad check: refused alone, reported UNKNOWN with the reason; the plan is taken.
    let mut with_bad_check = good.clone();
    let mut bad = good.checks[0].clone();
    bad.timeout_seconds = 30; // longer than its 2 s interval
    bad.id.rule = "renamed".into();
    with_bad_check.checks.push(bad);
    upstream.set_plan(&with_bad_check);
    let refused = eventually("the refused check reports UNKNOWN", WAIT, || {
        upstream.entries().into_iter().find_map(|e| match e.report {
            Report::StateChange(r) if r.check.rule == "renamed" => Some(r),
            _ => None,
        })
    })
    .await;
    assert_eq!(refused.state, CheckState::Unknown);
    assert!(refused.hard, "a refused check is hard at once");
    assert!(
        refused.output.contains("check refused by this agent")
            && refused.output.contains("timeoutSeconds 30"),
        "{}",
        refused.output
    );
    let running = eventually("the plan with the refused check runs", WAIT, || {
        last_keepalive(&upstream.entries()).filter(|k| k.plan.hash == with_bad_check.hash())
    })
    .await;
    assert!(!running.plan.held, "{running:?}");

    // A plan that cannot be read as a whole (two checks with one id): the last good is held.
    let mut unreadable = with_bad_check.clone();
    unreadable.checks.push(good.checks[0].clone());
    upstream.set_plan(&unreadable);
    let held = eventually("keepalive says the plan is held", WAIT, || {
        last_keepalive(&upstream.entries()).filter(|k| k.plan.held)
    })
    .await;
    assert_eq!(
        held.plan.hash,
        with_bad_check.hash(),
        "still running the last good plan"
    );
    assert!(
        held.plan.reason.contains("appears twice"),
        "reason: {}",
        held.plan.reason
    );

    // Still checking with the good checks: a failure is noticed.
    drop(listener);
    eventually("CRITICAL from the held plan", WAIT, || {
        states_of(&upstream.entries(), "listener")
            .iter()
            .find(|s| s.1 == CheckState::Critical)
            .copied()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_survived_with_failover_and_an_ordered_replay() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let primary = Upstream::start().await;
    let standby = Upstream::start().await;
    let plan = tcp_plan("node-c", port, 2);
    primary.set_plan(&plan);
    standby.set_plan(&plan);
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::start("node-c", &[primary.url(), standby.url()], dir.path());
    eventually("first state upstream", WAIT, || {
        states_of(&primary.entries(), "listener").first().copied()
    })
    .await;

    // Both upstreams fail: state changes stay in the spool.
    primary.set_failing(true);
    standby.set_failing(true);
    drop(listener);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // The agent dies mid-outage; a new one starts on the same spool.
    agent.kill();
    let _agent = Agent::start("node-c", &[primary.url(), standby.url()], dir.path());
    // Only the standby comes back: the agent fails over to it and replays in order.
    standby.set_failing(false);
    let replayed = eventually("CRITICAL then OK replayed on the standby", WAIT, || {
        let states = states_of(&standby.entries(), "listener");
        let critical = states.iter().position(|s| s.1 == CheckState::Critical)?;
        states[critical..]
            .iter()
            .any(|s| s.1 == CheckState::Ok)
            .then_some(states)
    })
    .await;
    let mut sorted = replayed.clone();
    sorted.sort();
    assert_eq!(replayed, sorted, "state changes arrive in sequence order");
    let sequences: Vec<u64> = standby.entries().iter().map(|e| e.sequence).collect();
    let unique: std::collections::BTreeSet<u64> = sequences.iter().copied().collect();
    assert_eq!(unique.len(), sequences.len(), "no entry stored twice");
}

/// When a report was made, Unix ms (keepalives included).
fn made_at(envelope: &Envelope) -> u64 {
    envelope.report.at_ms()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_backlog_is_replayed_at_its_rate_beside_live_sends() {
    const REPLAY_PER_SECOND: usize = 20;
    /// Most backlog entries the first 3 s after the outage may carry: a full token bucket
    /// (one second's worth), 3 s of the rate, and slack for timer granularity.
    const REPLAY_BOUND: usize = REPLAY_PER_SECOND * 4 + 40;
    let port = closed_port();
    let mut plan = tcp_plan("node-r", port, 2);
    // 50 checks every 2 s, every result spooled: an 8 s outage leaves a backlog of ~200.
    plan.checks = (0..50)
        .map(|i| {
            let mut check = common::tcp_check(&format!("c{i}"), port, 2);
            check.retry_interval_seconds = 2;
            check.spool_every_result = true;
            check
        })
        .collect();
    let upstream = Upstream::start().await;
    upstream.set_plan(&plan);
    let dir = tempfile::tempdir().unwrap();
    let _agent = Agent::start_with(
        "node-r",
        &[upstream.url()],
        dir.path(),
        &["--replay-per-second", &REPLAY_PER_SECOND.to_string()],
    );
    eventually("results upstream", WAIT, || {
        (upstream.entries().len() > 50).then_some(())
    })
    .await;

    upstream.set_failing(true);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let back = unix_ms();
    let before = upstream.entries().len();
    upstream.set_failing(false);
    // The agent's backoff decides when it tries again; count from its first send that lands.
    eventually(
        "the first send after the outage",
        Duration::from_secs(40),
        || (upstream.entries().len() > before).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = upstream.entries();
    let replayed = received[before..]
        .iter()
        .filter(|e| made_at(e) < back)
        .count();
    let live = received[before..].len() - replayed;
    assert!(
        replayed <= REPLAY_BOUND,
        "{replayed} backlog entries in the first 3 s after the outage: a burst, not a replay"
    );
    assert!(
        live >= 20,
        "only {live} live entries in 3 s: the replay held live sends back"
    );

    // In the end everything arrives: no sequence is missing once the replay is through.
    let all = eventually("the whole backlog", Duration::from_secs(60), || {
        let entries = upstream.entries();
        let sequences: std::collections::BTreeSet<u64> =
            entries.iter().map(|e| e.sequence).collect();
        let (first, last) = (*sequences.first()?, *sequences.last()?);
        let complete = sequences.len() as u64 == last - first + 1;
        let replayed = entries.iter().any(|e| made_at(e) > back + 10_000);
        (complete && replayed).then_some(entries)
    })
    .await;
    let backlog = all.iter().filter(|e| made_at(e) < back).count() - before;
    assert!(
        backlog > REPLAY_BOUND,
        "the outage left only {backlog} entries: too few to tell a replay from a burst"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_plan_file_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = tcp_plan("node-d", closed_port(), 5);
    plan.checks[0].critical = Some("20:10".into());
    let path = dir.path().join("plan.json");
    std::fs::write(&path, serde_json::to_vec(&plan).unwrap()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vedette-agent"))
        .args(["check", "--once", "--plan"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "the refused check is UNKNOWN"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("critical: range \"20:10\": start 20 is greater than end 10"),
        "{stdout}"
    );
    let dry_run = std::process::Command::new(env!("CARGO_BIN_EXE_vedette-agent"))
        .args(["check", "--dry-run", "--plan"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !dry_run.status.success(),
        "a dry run fails on a refused check"
    );
    let stderr = String::from_utf8_lossy(&dry_run.stderr);
    assert!(
        stderr.contains("start 20 is greater than end 10"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_once_exits_with_the_worst_states_nagios_code() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let run = |plan: &vedette_protocol::plan::Plan, name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec(plan).unwrap()).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_vedette-agent"))
            .args(["check", "--once", "--plan"])
            .arg(&path)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let healthy = tcp_plan("node-e", open, 5);
    let (code, table) = run(&healthy, "ok.json");
    assert_eq!(code, Some(0), "{table}");
    let mut failing = tcp_plan("node-e", open, 5);
    let mut refused = failing.checks[0].clone();
    refused.id.rule = "refused".into();
    refused.check.tcp.as_mut().unwrap().port =
        vedette_crds::check::PortOrParameter::Int(i64::from(closed_port()));
    failing.checks.push(refused);
    let (code, table) = run(&failing, "critical.json");
    assert_eq!(code, Some(2), "one check CRITICAL, one OK: {table}");
    assert!(table.contains("CRITICAL"), "{table}");
}

/// Finish times (Unix ms) of every run of `rule` the upstream received.
fn runs_of(entries: &[Envelope], rule: &str) -> Vec<u64> {
    let mut runs: Vec<u64> = entries
        .iter()
        .filter_map(|e| match &e.report {
            Report::Result(r) | Report::StateChange(r) if r.check.rule == rule => Some(r.at_ms),
            _ => None,
        })
        .collect();
    runs.sort_unstable();
    runs.dedup();
    runs
}

/// Asserts that any two of `runs` (Unix ms) are a whole number of `cycles` × `cycle_ms`
/// apart, give or take the run's own duration and timer slack.
fn assert_on_cycles(runs: &[u64], cycles: u64, cycle_ms: u64) {
    let period = cycles * cycle_ms;
    for &at in &runs[1..] {
        let off = (at - runs[0]) % period;
        assert!(
            off.min(period - off) < 150,
            "runs not a whole number of {cycles} cycles apart: {runs:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_on_cycles_run_in_their_own_wall_clock_cycles() {
    const CYCLE_MS: u64 = 2_000;
    let port = closed_port();
    let mut plan = tcp_plan("node-a", port, 2);
    plan.settings.cycle_seconds = 2;
    let mut every_cycle = common::tcp_check("every-cycle", port, 2);
    every_cycle.every_cycles = Some(1);
    let mut third_cycle = common::tcp_check("third-cycle", port, 6);
    third_cycle.every_cycles = Some(3);
    for check in [&mut every_cycle, &mut third_cycle] {
        check.spool_every_result = true;
        // Every run is a hard CRITICAL, so no retry takes the check off its cycles.
        check.retry_interval_seconds = check.interval_seconds;
    }
    plan.checks = vec![every_cycle, third_cycle];
    let upstream = Upstream::start().await;
    upstream.set_plan(&plan);
    let dir = tempfile::tempdir().unwrap();

    // Two agents' lives, started at different moments: cycles are the wall clock's, so the
    // checks keep the same place in them, where a schedule counted from the agent's start
    // would shift with it. Each life first runs every check once early (within the first-run
    // spread, off the cycles), then on its cycles.
    let mut seen = 0;
    let mut starts = Vec::new();
    for life in 0..2 {
        starts.push(unix_ms());
        let mut agent = Agent::start("node-a", &[upstream.url()], dir.path());
        seen = eventually(
            "the early run and two runs on every third cycle",
            Duration::from_secs(40),
            || {
                let runs = runs_of(&upstream.entries(), "third-cycle");
                (runs.len() >= seen + 3).then_some(runs.len())
            },
        )
        .await;
        agent.kill();
        tokio::time::sleep(Duration::from_millis(700 + 300 * life)).await;
    }
    let on_cycles = |rule: &str| {
        let runs = runs_of(&upstream.entries(), rule);
        let early: Vec<u64> = starts
            .iter()
            .filter_map(|start| runs.iter().copied().find(|at| at >= start))
            .collect();
        for (at, start) in early.iter().zip(&starts) {
            assert!(
                at - start < vedette_agent::schedule::FIRST_RUN_SPREAD_MS + 1_500,
                "{rule}: the first run of a life came {} ms after its start",
                at - start
            );
        }
        runs.into_iter()
            .filter(|at| !early.contains(at))
            .collect::<Vec<u64>>()
    };
    let every = on_cycles("every-cycle");
    let third = on_cycles("third-cycle");
    assert!(
        every.len() >= 6,
        "every-cycle ran {} times: {every:?}",
        every.len()
    );
    assert_on_cycles(&every, 1, CYCLE_MS);
    assert_on_cycles(&third, 3, CYCLE_MS);
    // Within one life, no cycle is skipped.
    let consecutive = every
        .windows(2)
        .filter(|p| p[1] - p[0] < CYCLE_MS + 150)
        .count();
    assert!(consecutive >= 4, "{every:?}");
}

fn changes_of(entries: &[Envelope], rule: &str) -> Vec<vedette_protocol::report::CheckReport> {
    entries
        .iter()
        .filter_map(|e| match &e.report {
            Report::StateChange(r) if r.check.rule == rule => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_state_survives_a_restart_without_a_second_hard_change() {
    let upstream = Upstream::start().await;
    let mut plan = tcp_plan("node-a", closed_port(), 2);
    plan.checks[0].max_attempts = 3;
    upstream.set_plan(&plan);
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::start("node-a", &[upstream.url()], dir.path());
    eventually("hard CRITICAL upstream", WAIT, || {
        changes_of(&upstream.entries(), "listener")
            .into_iter()
            .find(|r| r.hard && r.state == CheckState::Critical)
    })
    .await;
    // The states are saved at most every 10 s: let one save pass after the hard change.
    tokio::time::sleep(Duration::from_secs(12)).await;
    agent.kill();
    let before = upstream.entries().len();

    let _agent = Agent::start("node-a", &[upstream.url()], dir.path());
    let first = eventually("the first report of the new life", WAIT, || {
        changes_of(&upstream.entries()[before..], "listener")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(first.state, CheckState::Critical, "{first:?}");
    assert!(first.hard, "still hard after the restart: {first:?}");
    assert_eq!(first.attempt, 3, "{first:?}");
    assert_eq!(first.previous_state, CheckState::Critical, "{first:?}");
    // Not a soft attempt 1 after an assumed OK, then a second hard change.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = changes_of(&upstream.entries()[before..], "listener");
    assert!(
        later
            .iter()
            .all(|r| r.hard && r.previous_state == CheckState::Critical),
        "{later:?}"
    );
}

/// `/readyz` of `agent`: the status and the body.
async fn readyz(agent: &Agent) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://{}/readyz", agent.metrics))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_is_ready_once_it_runs_a_plan_and_stays_ready_on_a_held_one() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // No plan for this host yet: the upstream answers 404.
    let mut agent = Agent::start("node-ready", &[upstream.url()], dir.path());
    let (status, body) =
        eventually("an answer from /readyz", WAIT, || block_on(readyz(&agent))).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no plan yet"), "{body}");

    upstream.set_plan(&tcp_plan("node-ready", closed_port(), 2));
    eventually("ready with a plan", WAIT, || {
        block_on(readyz(&agent)).filter(|(status, _)| *status == 200)
    })
    .await;

    // Restarted with its upstream gone: the stored plan is held, and the agent is ready.
    agent.kill();
    let agent = Agent::start(
        "node-ready",
        &[format!("http://127.0.0.1:{}", closed_port())],
        dir.path(),
    );
    let (status, body) = eventually("an answer from /readyz after the restart", WAIT, || {
        block_on(readyz(&agent))
    })
    .await;
    assert_eq!(status, 200, "a held plan is run: {body}");
}

/// Runs `future` to completion on the current multi-threaded runtime from a sync closure.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}
