//! The node agent as a real process against a real HTTP upstream: state changes decided on the
//! agent reach the upstream and the agent's own /metrics; an invalid plan is refused while the
//! last good one keeps running; an unreachable upstream is survived through the spool, with
//! failover to a standby and an in-order replay; a SIGKILLed agent resends what it spooled.

mod common;

use std::time::Duration;

use common::{Agent, Upstream, closed_port, eventually, tcp_plan};
use vedette_agent::report::{Envelope, Report};
use vedette_crds::template::CheckState;

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

fn last_keepalive(entries: &[Envelope]) -> Option<vedette_agent::report::Keepalive> {
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
async fn an_invalid_plan_is_refused_and_the_last_good_plan_keeps_running() {
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

    let mut bad = good.clone();
    bad.checks[0].timeout_seconds = 30; // longer than its 2 s interval
    bad.checks[0].id.rule = "renamed".into();
    upstream.set_plan(&bad);
    let held = eventually("keepalive says the plan is held", WAIT, || {
        last_keepalive(&upstream.entries()).filter(|k| k.plan.held)
    })
    .await;
    assert_eq!(held.plan.hash, good.hash(), "still running the good plan");
    assert!(
        held.plan.reason.contains("timeoutSeconds 30"),
        "reason: {}",
        held.plan.reason
    );

    // Still checking with the good plan: a failure is noticed.
    drop(listener);
    eventually("CRITICAL from the held plan", WAIT, || {
        states_of(&upstream.entries(), "listener")
            .iter()
            .find(|s| s.1 == CheckState::Critical)
            .copied()
    })
    .await;
    assert!(
        states_of(&upstream.entries(), "renamed").is_empty(),
        "the invalid plan never ran"
    );
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
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("critical: range \"20:10\": start 20 is greater than end 10"),
        "{stderr}"
    );
}
