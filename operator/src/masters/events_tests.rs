use super::*;

fn change(host: &str, state: CheckState) -> HardChange {
    HardChange {
        host: host.into(),
        check: CheckId {
            namespace: "shop".into(),
            rule_set: "web".into(),
            rule: "tcp".into(),
        },
        state,
        previous: CheckState::Ok,
        output: "connection refused".into(),
        at_ms: 1,
    }
}

#[test]
fn one_event_per_check_per_interval_with_the_latest_state() {
    let start = Instant::now();
    let mut limiter = Limiter::new(Duration::from_secs(60), 10, start);
    limiter.offer(change("n1", CheckState::Critical));
    assert_eq!(limiter.due(start).len(), 1);
    // Flapping within the minute: only the latest state is sent, when the minute is over.
    limiter.offer(change("n1", CheckState::Ok));
    limiter.offer(change("n1", CheckState::Warning));
    assert!(limiter.due(start + Duration::from_secs(30)).is_empty());
    let later = limiter.due(start + Duration::from_secs(60));
    assert_eq!(
        later.iter().map(|c| c.state).collect::<Vec<_>>(),
        [CheckState::Warning]
    );
    // Back to the state last sent: nothing new to say.
    limiter.offer(change("n1", CheckState::Warning));
    assert!(limiter.due(start + Duration::from_secs(200)).is_empty());
}

#[test]
fn at_most_the_overall_rate() {
    let start = Instant::now();
    let mut limiter = Limiter::new(Duration::from_secs(60), 10, start);
    for i in 0..25 {
        limiter.offer(change(&format!("n{i}"), CheckState::Critical));
    }
    assert_eq!(limiter.due(start).len(), 10);
    assert_eq!(limiter.due(start + Duration::from_millis(500)).len(), 5);
    assert_eq!(limiter.due(start + Duration::from_secs(2)).len(), 10);
}

#[test]
fn reasons_and_notes_name_host_check_and_output() {
    let critical = change("n1", CheckState::Critical);
    assert_eq!(reason(&critical).0, "CheckCritical");
    assert_eq!(reason(&change("n1", CheckState::Ok)).0, "CheckRecovered");
    assert_eq!(note(&critical), "tcp on n1: CRITICAL: connection refused");
}
